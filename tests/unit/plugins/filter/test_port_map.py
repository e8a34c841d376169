"""Port map validation and queries (plugins/module_utils/port_map.py, filter wrappers)."""

import copy
import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter import port_map as flt
from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

GROUPS = {
    "all": ["lb1", "app1", "app2", "pg1", "pg2", "pg3", "redis1", "mon1"],
    "ungrouped": [],
    "loadbalancers": ["lb1"],
    "app": ["app1", "app2"],
    "postgres": ["pg1", "pg2", "pg3"],
    "etcd": ["pg1", "pg2", "pg3"],
    "redis": ["redis1"],
    "monitoring": ["mon1"],
    "backup": ["mon1"],
}


@pytest.fixture(name="shipped")
def fixture_shipped():
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["_common_port_map_defaults"]


def test_shipped_map_is_valid_for_the_lab_groups(shipped):
    out = pm.validate(shipped, GROUPS)
    assert out["postgresql"]["port"] == 5432
    assert out["https"]["from"] == ["any"]


def test_no_two_services_share_a_port_on_a_group(shipped):
    bad = copy.deepcopy(shipped)
    bad["other"] = {"port": 5432, "protocol": "tcp", "listen": ["postgres"], "from": ["app"]}
    with pytest.raises(pm.PortMapError, match="'other' both claim tcp/5432|both claim tcp/5432"):
        pm.validate(bad, GROUPS)


def test_same_port_other_protocol_is_fine(shipped):
    ok = copy.deepcopy(shipped)
    ok["dns"] = {"port": 5432, "protocol": "udp", "listen": ["postgres"], "from": ["app"]}
    assert pm.validate(ok, GROUPS)["dns"]["protocol"] == "udp"


@pytest.mark.parametrize("entry, message", [
    ({"port": 0, "protocol": "tcp", "listen": ["app"], "from": []}, "port 0 is not in 1..65535"),
    ({"port": 70000, "protocol": "tcp", "listen": ["app"], "from": []}, "port 70000"),
    ({"port": "http", "protocol": "tcp", "listen": ["app"], "from": []}, "port 'http'"),
    ({"port": True, "protocol": "tcp", "listen": ["app"], "from": []}, "port True"),
    ({"port": 80, "protocol": "sctp", "listen": ["app"], "from": []}, "protocol 'sctp'"),
    ({"port": 80, "protocol": "tcp", "listen": ["apps"], "from": []}, "group 'apps', which is not in the inventory"),
    ({"port": 80, "protocol": "tcp", "listen": ["app"], "from": ["monitor"]}, "group 'monitor'"),
    ({"port": 80, "protocol": "tcp", "listen": [], "from": []}, "names no group"),
    ({"port": 80, "protocol": "tcp", "listen": ["any"], "from": []}, "cannot be 'any'"),
    ({"port": 80, "protocol": "tcp", "listen": "app", "from": []}, "must be a list"),
    ({"port": 80, "protocol": "tcp", "listen": ["app"]}, "missing key"),
    ({"port": 80, "protocol": "tcp", "listen": ["app"], "from": [], "proto": "x"}, "unknown key"),
])
def test_bad_entries_name_the_value(entry, message):
    with pytest.raises(pm.PortMapError, match="entry 'svc'") as err:
        pm.validate({"svc": entry}, GROUPS)
    assert message in str(err.value)


def test_contract_groups_may_be_absent(shipped):
    partial = {"all": ["app1"], "app": ["app1"]}
    assert pm.services_on(pm.validate(shipped, partial), "app1", partial).keys() >= {"app_http", "ssh"}


def test_string_port_is_normalised():
    out = pm.validate({"svc": {"port": "8080", "protocol": "tcp", "listen": ["app"], "from": []}}, GROUPS)
    assert out["svc"]["port"] == 8080


def test_services_on_host_in_several_groups(shipped):
    vm = pm.validate(shipped, GROUPS)
    on_pg1 = pm.services_on(vm, "pg1", GROUPS)  # postgres + etcd
    assert {"postgresql", "patroni_api", "etcd_client", "etcd_peer", "ssh", "node_exporter"} <= set(on_pg1)
    assert "https" not in on_pg1
    on_mon1 = pm.services_on(vm, "mon1", GROUPS)  # monitoring + backup
    assert {"prometheus", "pgbackrest", "node_exporter"} <= set(on_mon1)


def test_hosts_of_all_and_any():
    assert pm.hosts_of(GROUPS, ["all"]) == sorted(GROUPS["all"])
    assert pm.hosts_of(GROUPS, ["any"]) == []
    assert pm.hosts_of(GROUPS, ["app", "loadbalancers", "app"]) == ["app1", "app2", "lb1"]


def test_filter_wraps_errors_as_ansible_errors():
    with pytest.raises(AnsibleFilterError, match="protocol 'icmp'"):
        flt.port_map_validate({"svc": {"port": 1, "protocol": "icmp", "listen": ["app"], "from": []}}, GROUPS)


def test_edges_lists_every_source(shipped):
    rows = flt.port_map_edges(shipped, GROUPS)
    pg = [r for r in rows if r["service"] == "postgresql"]
    assert {r["from"] for r in pg} == set(shipped["postgresql"]["from"])
    assert all(r["to"] == "postgres" for r in pg)


def test_filter_plugin_exports():
    names = flt.FilterModule().filters()
    assert {"port_map_validate", "port_map_services_on", "port_map_hosts", "port_map_edges"} <= set(names)
