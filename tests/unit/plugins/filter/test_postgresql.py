"""pg_hba from the inventory and the port map, tuning and preflight filters
(plugins/filter/postgresql.py and module_utils/pg_hba.py, pg_tune.py, pg_params.py)."""

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter import postgresql as flt
from ansible_collections.hardened.stack.plugins.module_utils import pg_hba, pg_params, pg_tune

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

GROUPS = {
    "all": ["lb", "app1", "pg1", "pg2", "pg3", "mon1", "outsider"],
    "loadbalancers": ["lb"],
    "app": ["app1"],
    "postgres": ["pg1", "pg2", "pg3"],
    "etcd": ["pg1", "pg2", "pg3"],
    "monitoring": ["mon1"],
    "backup": [],
}
HOSTVARS = {
    "lb": {"ansible_host": "10.0.0.10"},
    "app1": {"ansible_host": "10.0.0.21"},
    "pg1": {"ansible_host": "10.0.0.11"},
    "pg2": {"ansible_host": "10.0.0.12"},
    "pg3": {"ansible_host": "pg3.example.net", "ansible_facts": {"default_ipv4": {"address": "10.0.0.13"}}},
    "mon1": {"ansible_host": "10.0.0.30"},
    "outsider": {"ansible_host": "10.0.0.99"},
}


@pytest.fixture(name="port_map")
def fixture_port_map():
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["_common_port_map_defaults"]


def lines(port_map, **kw):
    kw.setdefault("rewind_user", "rewind")
    kw.setdefault("app_roles", [{"name": "app", "databases": ["appdb"]}])
    kw.setdefault("monitoring_roles", [{"name": "monitor"}])
    return flt.pg_hba_rules(port_map, GROUPS, HOSTVARS, "replicator", **kw)


def test_replication_only_between_members_plus_loopback(port_map):
    out = lines(port_map)
    repl = [ln.split() for ln in out if ln.split()[1] == "replication"]
    assert ["host", "replication", "replicator", "127.0.0.1/32", "scram-sha-256"] in repl
    remote = sorted(r[3] for r in repl if r[0] == "hostssl")
    assert remote == ["10.0.0.11/32", "10.0.0.12/32", "10.0.0.13/32"]


def test_app_roles_only_from_app_and_loadbalancers(port_map):
    app = [ln.split() for ln in lines(port_map) if ln.split()[2] == "app"]
    assert sorted(a[3] for a in app) == ["10.0.0.10/32", "10.0.0.21/32"]
    assert all(a[0] == "hostssl" and a[1] == "appdb" and a[4] == "scram-sha-256" for a in app)


def test_monitoring_only_from_monitoring(port_map):
    mon = [ln.split() for ln in lines(port_map) if ln.split()[2] == "monitor"]
    assert [m[3] for m in mon] == ["10.0.0.30/32"]


def test_no_weak_methods_and_remote_lines_are_hostssl(port_map):
    for ln in lines(port_map):
        fields = ln.split()
        assert fields[-1] not in ("trust", "md5", "password")
        if fields[0] == "host":
            assert fields[3].startswith("127.")
    assert not any("10.0.0.99" in ln for ln in lines(port_map))


def test_a_group_removed_from_the_port_map_loses_access(port_map):
    port_map["postgresql"]["from"] = ["postgres", "app"]
    out = lines(port_map)
    assert not any("10.0.0.10/32" in ln for ln in out)
    assert not any("10.0.0.30/32" in ln for ln in out)


@pytest.mark.parametrize("rule", [
    {"type": "hostssl", "database": "all", "user": "all", "address": "0.0.0.0/0", "method": "trust"},
    {"type": "hostssl", "database": "all", "user": "x", "address": "10.0.0.5/32", "method": "md5"},
    {"type": "host", "database": "all", "user": "x", "address": "10.0.0.5/32", "method": "scram-sha-256"},
    {"type": "hostssl", "database": "all", "user": "x", "address": "10.0.0.5/32", "method": "password"},
])
def test_unsafe_extra_rules_are_refused(port_map, rule):
    with pytest.raises(AnsibleFilterError):
        lines(port_map, extra=[rule])


def test_host_without_address_is_a_clear_error(port_map):
    hv = dict(HOSTVARS)
    hv["pg2"] = {"ansible_host": "pg2.example.net"}
    with pytest.raises(AnsibleFilterError, match="host 'pg2' has no IP address"):
        flt.pg_hba_rules(port_map, GROUPS, hv, "replicator")


def test_render_keeps_local_lines_without_address():
    out = pg_hba.render([{"type": "local", "database": "all", "user": "postgres", "address": "", "method": "peer"}])
    assert out[0].split() == ["local", "all", "postgres", "peer"]


def test_tune_small_host():
    p = pg_tune.tune(1024, 2)
    assert p["shared_buffers"] == "256MB"
    assert p["effective_cache_size"] == "768MB"
    assert p["maintenance_work_mem"] == "64MB"
    assert p["work_mem"] == "4MB"
    assert p["max_connections"] == 100


def test_tune_big_host_and_overrides():
    p = pg_tune.tune(131072, 32, 400, {"work_mem": "64MB"})
    assert p["shared_buffers"] == "16GB"
    assert p["maintenance_work_mem"] == "2GB"
    assert p["work_mem"] == "64MB"
    assert p["max_parallel_workers_per_gather"] == 4
    assert p["max_worker_processes"] == 32


def test_tune_refuses_nonsense():
    with pytest.raises(AnsibleFilterError, match="too small"):
        flt.pg_tune_parameters(100, 1)
    with pytest.raises(AnsibleFilterError, match="integers"):
        flt.pg_tune_parameters("lots", 1)


def test_unknown_parameters():
    assert flt.pg_unknown_parameters({"shared_buffers": "1GB", "shared_bufers": "1GB"}, 15) == ["shared_bufers"]
    assert flt.pg_unknown_parameters(["pg_stat_statements.max", "Work_Mem"], 17) == []
    # summarize_wal exists in 17 only
    assert pg_params.unknown_parameters(["summarize_wal"], 15) == ["summarize_wal"]
    assert pg_params.unknown_parameters(["summarize_wal"], 17) == []
    assert pg_params.unknown_parameters(["anything"], 99) == []


@pytest.mark.parametrize("ttl, loop_wait, retry, ok", [
    (30, 10, 10, True), (20, 5, 5, True), (10, 2, 4, True), (20, 10, 6, False), (10, 0, 3, False), (20, 5, 2, False),
])
def test_timings(ttl, loop_wait, retry, ok):
    assert (flt.patroni_timings_problems(ttl, loop_wait, retry) == []) is ok


def test_members_group_other_than_postgres(port_map):
    groups = dict(GROUPS, pg13=["pg1"])
    out = flt.pg_hba_rules(port_map, groups, HOSTVARS, "replicator", members_group="pg13")
    remote = [ln.split()[3] for ln in out if ln.split()[1] == "replication" and ln.startswith("hostssl")]
    assert remote == ["10.0.0.11/32"]
