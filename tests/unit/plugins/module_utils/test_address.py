"""The address model (plugins/module_utils/address.py): one answer per host, and every consumer
(binds, dialled endpoints, pg_hba, firewall, scrape targets, certificates) agrees with it.

Three production-shaped hosts of each tier, as issue 15 found them breaking:
- multi-homed: Ansible connects to a management address, the default route leaves through a
  third one, and ``hardened_stack_address`` names the cluster side;
- DNS-named: ``ansible_host`` is a name (resolved on the controller);
- IPv6: the cluster address is an IPv6 literal (bracketed in every host:port and URL).
"""

import os
import socket

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter import address as flt
from ansible_collections.hardened.stack.plugins.filter.firewall import firewall_ruleset, firewall_sources
from ansible_collections.hardened.stack.plugins.module_utils import address as am
from ansible_collections.hardened.stack.plugins.module_utils import nginx as ng
from ansible_collections.hardened.stack.plugins.module_utils import pg_hba
from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm
from ansible_collections.hardened.stack.plugins.module_utils import prometheus_config as pc
from ansible_collections.hardened.stack.plugins.module_utils import stack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

TIERS = ("loadbalancers", "app", "postgres", "redis", "monitoring")
SHAPES = ("multihomed", "named", "v6")


def _facts(*addresses):
    return {"all_ipv4_addresses": [a for a in addresses if ":" not in a],
            "all_ipv6_addresses": [a for a in addresses if ":" in a],
            "default_ipv4": {"address": [a for a in addresses if ":" not in a][-1]}}


def _inventory(dns):
    """Hosts ``<tier>-<shape>`` and the cluster address each must get."""
    groups = {"all": [], "ungrouped": [], "etcd": [], "backup": []}
    hostvars, expected = {}, {}
    for t_index, tier in enumerate(TIERS, start=1):
        groups[tier] = []
        for shape in SHAPES:
            host = "%s-%s" % (tier, shape)
            groups[tier].append(host)
            groups["all"].append(host)
            if shape == "multihomed":
                cluster = "10.0.%d.11" % t_index
                hostvars[host] = {"ansible_host": "198.51.100.%d" % t_index, "hardened_stack_address": cluster,
                                  "ansible_facts": _facts("198.51.100.%d" % t_index, cluster, "192.0.2.%d" % t_index)}
            elif shape == "named":
                cluster = "10.0.%d.12" % t_index
                name = "%s.cluster.example" % host
                dns[name] = [cluster]
                hostvars[host] = {"ansible_host": name, "ansible_facts": _facts(cluster, "192.0.2.1%d" % t_index)}
            else:
                cluster = "fd00:%d::13" % t_index
                hostvars[host] = {"ansible_host": "203.0.113.%d" % t_index, "hardened_stack_address": cluster,
                                  "ansible_facts": _facts("203.0.113.%d" % t_index, cluster)}
            expected[host] = cluster
    groups["etcd"] = list(groups["postgres"])
    return groups, hostvars, expected


@pytest.fixture(name="port_map")
def fixture_port_map():
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["_common_port_map_defaults"]


@pytest.fixture(name="inv")
def fixture_inv(dns):
    return _inventory(dns)


def _hp(address, port):
    return "[%s]:%d" % (address, port) if ":" in address else "%s:%d" % (address, port)


def test_bind_address_is_the_cluster_address_for_every_shape(inv):
    """What every role binds (``inventory_hostname | hardened.stack.cluster_address(hostvars)``)."""
    groups, hostvars, expected = inv
    for host, address in expected.items():
        assert flt.cluster_address(host, hostvars) == address
        assert flt.cluster_address_problem(host, hostvars) == ""


def test_every_role_binds_through_the_filter():
    """The roles' bind variables are the filter, not a Jinja default of their own."""
    found = {}
    for role in ("redis", "exporters", "prometheus", "alertmanager", "app"):
        with open(os.path.join(ROOT, "roles", role, "vars", "main.yml"), encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
        found[role] = data["_%s_address" % role]
    assert set(found.values()) == {"{{ inventory_hostname | hardened.stack.cluster_address(hostvars) }}"}
    for role in ("redis", "exporters", "prometheus", "alertmanager", "app", "etcd", "postgresql", "haproxy"):
        for sub in ("defaults", "vars", "tasks", "templates"):
            folder = os.path.join(ROOT, "roles", role, sub)
            for name in os.listdir(folder) if os.path.isdir(folder) else []:
                with open(os.path.join(folder, name), encoding="utf-8") as fh:
                    text = fh.read()
                assert "default_ipv4" not in text, "%s/%s/%s answers the address question itself" % (role, sub, name)


def test_dialled_endpoints_agree(inv, port_map):
    groups, hostvars, expected = inv
    facts = stack.connection_facts(port_map, groups, hostvars)
    # The app's environment: Sentinels, PostgreSQL endpoints (HAProxy on the load balancers).
    assert facts["sentinels"] == [_hp(expected[h], 26379) for h in groups["redis"]]
    assert facts["pg_write_hosts"].split(",") == [expected[h] for h in groups["loadbalancers"]]
    assert [e["endpoint"] for e in facts["patroni_api"]] == [_hp(expected[h], 8008) for h in groups["postgres"]]
    # nginx upstreams: the app servers at the address they bind.
    assert ng.upstream_servers({"name": "app"}, groups, hostvars, port_map) == \
        sorted(_hp(expected[h], 8000) for h in groups["app"])
    # Prometheus targets: every exporter at the address it binds.
    jobs = pc.scrape_configs(pm.validate(port_map, groups), groups, hostvars, ["node", "postgres", "redis"],
                             {"ca_file": "c", "cert_file": "c", "key_file": "k", "username": "u",
                              "password_file": "p", "cluster": "x"})
    node = {c["labels"]["instance"]: c["targets"][0] for c in jobs[0]["static_configs"]}
    assert node == dict((h, _hp(a, 9100)) for h, a in expected.items())
    # HAProxy's servers and Patroni's URLs use the filter forms.
    assert [flt.cluster_address(h, hostvars, port=5432) for h in groups["postgres"]] == \
        [_hp(expected[h], 5432) for h in groups["postgres"]]
    assert flt.cluster_address("postgres-v6", hostvars, port=2380, scheme="https") == "https://[fd00:3::13]:2380"


def test_admitted_addresses_agree(inv, port_map):
    groups, hostvars, expected = inv
    cidr = {h: "%s/%d" % (a, 128 if ":" in a else 32) for h, a in expected.items()}
    # The firewall: PostgreSQL admits the app servers and the load balancers at their cluster addresses.
    assert sorted(firewall_sources("postgresql", port_map, groups, hostvars)) == \
        sorted(cidr[h] for h in groups["app"] + groups["loadbalancers"] + groups["postgres"] + groups["monitoring"]
               if h in set(pm.hosts_of(groups, pm.validate(port_map, groups)["postgresql"]["from"])))
    ruleset = firewall_ruleset(port_map, "redis-v6", groups, hostvars, {"ssh_allow": ["192.0.2.0/24"]})
    v6_rules = "\n".join(ruleset["ipv6"]["chains"]["HS-INPUT"])
    assert "-s fd00:2::13/128 -p tcp -m tcp --dport 6379" in v6_rules
    # Neither the management address nor the default-route address is admitted.
    v4_rules = "\n".join(ruleset["ipv4"]["chains"]["HS-INPUT"])
    assert "198.51.100.2/32" not in v4_rules and "192.0.2.2/32" not in v4_rules
    assert "-s 10.0.2.11/32 -p tcp -m tcp --dport 6379" in v4_rules
    # pg_hba: every line for an app host is its cluster address.
    lines = pg_hba.render(pg_hba.rules(port_map, groups, hostvars, "replicator",
                                       app_roles=[{"name": "app", "databases": ["appdb"]}]))
    for host in groups["app"]:
        assert any(cidr[host] in line and " app " in line for line in lines), host
    assert not any("198.51.100." in line or "192.0.2." in line for line in lines)


def test_order_of_preference(dns):
    dns["pg1.example"] = ["10.1.0.1", "2001:db8::1"]
    facts = {"eth1": {"device": "eth1", "ipv4": {"address": "10.2.0.1"}},
             "eth2": {"device": "eth2", "ipv6": [{"address": "fe80::1", "scope": "link"},
                                                 {"address": "2001:db8:2::1", "scope": "global"}]},
             "interfaces": ["eth0", "eth1", "eth2", "lo"]}
    hv = {"a": {"hardened_stack_address": "10.3.0.1", "hardened_stack_cluster_interface": "eth1",
                "ansible_host": "10.4.0.1", "ansible_facts": facts},
          "b": {"hardened_stack_cluster_interface": "eth1", "ansible_host": "10.4.0.2", "ansible_facts": facts},
          "c": {"hardened_stack_cluster_interface": "eth2", "ansible_facts": facts},
          "d": {"ansible_host": "pg1.example"},
          "pg1.example": {}}
    assert am.cluster_address("a", hv) == "10.3.0.1"          # the override wins
    assert am.cluster_address("b", hv) == "10.2.0.1"          # then the cluster interface
    assert am.cluster_address("c", hv) == "2001:db8:2::1"     # its global IPv6 when it has no IPv4
    assert am.cluster_address("d", hv) == "10.1.0.1"          # a name: IPv4 first
    assert am.cluster_addresses("d", hv) == ["10.1.0.1", "2001:db8::1"]
    assert am.cluster_address("pg1.example", hv) == "10.1.0.1"  # the inventory name last


def test_dual_stack_list(dns):
    hv = {"a": {"hardened_stack_address": ["10.0.0.1", "2001:db8::1"]}}
    assert am.cluster_address("a", hv) == "10.0.0.1"
    assert am.cluster_addresses("a", hv) == ["10.0.0.1", "2001:db8::1"]
    assert flt.cluster_address("a", hv, form="all") == ["10.0.0.1", "2001:db8::1"]
    assert flt.cluster_address("a", hv, form="cidr") == "10.0.0.1/32"


@pytest.mark.parametrize("hv,fragment", [
    ({"a": {"hardened_stack_address": "10.0.0.300"}}, "hardened_stack_address = '10.0.0.300' is neither"),
    ({"a": {"hardened_stack_address": ["10.0.0.1", "http://x"]}}, r"hardened_stack_address\[1\] = 'http://x'"),
    ({"a": {"ansible_host": "nowhere.invalid"}}, "'nowhere.invalid' .from ansible_host. does not resolve"),
    ({"a": {"hardened_stack_cluster_interface": "eth1"}}, "facts are not gathered"),
    ({"a": {"hardened_stack_cluster_interface": "eth9",
            "ansible_facts": {"interfaces": ["eth0"], "eth0": {"device": "eth0"}}}}, "'eth9' is not an interface"),
    ({"a": {"hardened_stack_cluster_interface": "eth0",
            "ansible_facts": {"eth0": {"device": "eth0", "ipv6": [{"address": "fe80::1", "scope": "link"}]}}}},
     "has no IPv4 or global IPv6 address"),
    ({"b": {}}, "host 'a' is not in the inventory"),
])
def test_errors_name_the_host_and_the_variable(hv, fragment):
    with pytest.raises(am.AddressError, match=fragment):
        am.cluster_address("a", hv)
    with pytest.raises(AnsibleFilterError, match=fragment):
        flt.cluster_address("a", hv)


def test_cluster_address_not_on_the_host_is_reported():
    hv = {"a": {"hardened_stack_address": "10.9.9.9", "ansible_facts": _facts("10.0.0.1")}}
    assert "10.9.9.9 (from hardened_stack_address) is not an address of the host (it has: 10.0.0.1)" in \
        flt.cluster_address_problem("a", hv)
    assert flt.cluster_address_problem("a", {"a": {"hardened_stack_address": "10.9.9.9"}}) == ""  # no facts


@pytest.mark.parametrize("address,port,scheme,path,expected", [
    ("10.0.0.1", 2380, None, "", "10.0.0.1:2380"),
    ("2001:db8::1", 2380, None, "", "[2001:db8::1]:2380"),
    ("2001:DB8:0::1", 2380, "https", "", "https://[2001:db8::1]:2380"),
    ("[2001:db8::1]", 8008, "https", "/health", "https://[2001:db8::1]:8008/health"),
    ("db.example", 5432, None, "", "db.example:5432"),
    ("10.0.0.1", None, "http", "metrics", "http://10.0.0.1/metrics"),
    ("*", 5000, None, "", "*:5000"),
])
def test_host_port_brackets_ipv6(address, port, scheme, path, expected):
    assert flt.host_port(address, port, scheme=scheme, path=path) == expected


def test_resolution_is_done_once_per_name(monkeypatch):
    calls = []

    def resolver(name, *args):
        calls.append(name)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    hv = {"a": {"ansible_host": "once.example"}}
    assert am.cluster_address("a", hv) == am.cluster_address("a", hv) == "10.0.0.7"
    assert calls == ["once.example"]
