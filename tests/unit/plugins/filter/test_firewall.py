"""Rule computation from the port map and the inventory (firewall_rules + the filter)."""

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.stack.plugins.filter import firewall as flt
from ansible_collections.hardened.stack.plugins.module_utils import firewall_rules as fr

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
    PORT_MAP = yaml.safe_load(fh)["_common_port_map_defaults"]

GROUPS = {
    "all": ["lb1", "app1", "pg1", "pg2", "mon1", "stranger"],
    "ungrouped": ["stranger"],
    "loadbalancers": ["lb1"],
    "app": ["app1"],
    "postgres": ["pg1", "pg2"],
    "etcd": ["pg1", "pg2"],
    "redis": ["app1"],            # app1 is in two groups
    "monitoring": ["mon1"],
    "backup": ["mon1"],
}
ADDR = {
    "lb1": {"ipv4": ["10.0.0.10"], "ipv6": ["2001:db8::10"]},
    "app1": {"ipv4": ["10.0.0.21"], "ipv6": []},
    "pg1": {"ipv4": ["10.0.0.31"], "ipv6": ["2001:db8::31"]},
    "pg2": {"ipv4": ["10.0.0.32"], "ipv6": []},
    "mon1": {"ipv4": ["10.0.0.50"], "ipv6": ["2001:db8::50"]},
    "stranger": {"ipv4": ["10.9.9.9"], "ipv6": []},
}


def rules(host, family="ipv4", **opts):
    return fr.compute(PORT_MAP, host, GROUPS, ADDR, opts)[family]["chains"]["HS-INPUT"]


def sources(host, port, family="ipv4", **opts):
    out = set()
    for rule in rules(host, family, **opts):
        tokens = rule.split()
        if "--dport" in tokens and tokens[tokens.index("--dport") + 1] == str(port):
            out.add(tokens[tokens.index("-s") + 1] if "-s" in tokens else "any")
    return out


def test_postgres_open_to_the_groups_the_map_names():
    assert sources("pg1", 5432) == {"10.0.0.10/32", "10.0.0.21/32", "10.0.0.31/32", "10.0.0.32/32",
                                    "10.0.0.50/32"}


def test_patroni_rest_not_open_to_app():
    assert sources("pg1", 8008) == {"10.0.0.10/32", "10.0.0.31/32", "10.0.0.32/32", "10.0.0.50/32"}


def test_exporters_only_to_monitoring():
    assert sources("pg1", 9187) == {"10.0.0.50/32"}
    assert sources("lb1", 9100) == {"10.0.0.50/32"}
    assert sources("app1", 9121) == {"10.0.0.50/32"}
    # mtail on the nginx logs: on the load balancers, from monitoring only.
    assert sources("lb1", 3903) == {"10.0.0.50/32"}
    assert sources("lb1", 3903, "ipv6") == {"2001:db8::50/128"}
    assert sources("pg1", 3903) == set()


def test_a_host_in_two_groups_gets_the_services_of_both():
    assert sources("app1", 8000) == {"10.0.0.10/32", "10.0.0.50/32"}         # app
    assert sources("app1", 6379) == {"10.0.0.21/32", "10.0.0.50/32"}         # redis
    assert sources("app1", 5432) == set()                                    # not postgres


def test_world_ports_only_on_loadbalancers_in_both_families():
    assert sources("lb1", 443) == {"any"} and sources("lb1", 443, "ipv6") == {"any"}
    assert sources("pg1", 443) == set()


def test_ssh_from_members_and_allow_list_not_from_ungrouped():
    got = sources("pg1", 22, ssh_allow=["192.0.2.0/24", "2001:db8:ffff::/48"])
    assert "192.0.2.0/24" in got and "10.9.9.9/32" not in got and "10.0.0.21/32" in got
    assert sources("pg1", 22, "ipv6", ssh_allow=["2001:db8:ffff::/48"]) == {
        "2001:db8::10/128", "2001:db8::31/128", "2001:db8::50/128", "2001:db8:ffff::/48"}


def test_ipv6_rules_and_neighbour_discovery():
    v6 = rules("pg1", "ipv6")
    assert "-s 2001:db8::50/128 -p tcp -m tcp --dport 5432 -m comment --comment \"hs:postgresql\" -j ACCEPT" in v6
    for icmp in ("133", "134", "135", "136"):
        assert "-p ipv6-icmp -m icmp6 --icmpv6-type %s -m hl --hl-eq 255 -j ACCEPT" % icmp in v6
    # ND comes before the INVALID drop
    nd = v6.index("-p ipv6-icmp -m icmp6 --icmpv6-type 135 -m hl --hl-eq 255 -j ACCEPT")
    assert nd < v6.index("-m conntrack --ctstate INVALID -j DROP")


def test_chain_shape_policies_and_jump():
    state = fr.compute(PORT_MAP, "pg1", GROUPS, ADDR, {})["ipv4"]
    chain = state["chains"]["HS-INPUT"]
    assert chain[0] == "-i lo -j ACCEPT" and "RELATED,ESTABLISHED" in chain[1]
    assert chain[-1] == "-j DROP" and "-j LOG" in chain[-2]
    assert state["policies"] == {"INPUT": "DROP", "FORWARD": "DROP"}
    assert state["jumps"] == {"INPUT": ["HS-INPUT"]}


def test_accept_policy_ends_without_drop():
    state = fr.compute(PORT_MAP, "pg1", GROUPS, ADDR, {"input_policy": "ACCEPT", "forward_policy": "ACCEPT"})
    assert state["ipv4"]["chains"]["HS-INPUT"][-1] != "-j DROP"


def test_a_new_map_entry_is_followed():
    pmap = dict(PORT_MAP, myapi={"port": 9000, "protocol": "udp", "listen": ["app"], "from": ["loadbalancers"]})
    chain = fr.compute(pmap, "app1", GROUPS, ADDR, {})["ipv4"]["chains"]["HS-INPUT"]
    assert '-s 10.0.0.10/32 -p udp -m udp --dport 9000 -m comment --comment "hs:myapi" -j ACCEPT' in chain


def test_extra_rules_with_cidrs_groups_any_and_ranges():
    extra = [{"name": "syslog", "port": 6514, "from": ["monitoring", "192.0.2.0/24", "2001:db8:1::/64"]},
             {"name": "rtp", "port": "10000:10100", "protocol": "udp", "from": ["any"]}]
    assert sources("pg1", 6514, extra_rules=extra) == {"10.0.0.50/32", "192.0.2.0/24"}
    assert sources("pg1", 6514, "ipv6", extra_rules=extra) == {"2001:db8::50/128", "2001:db8:1::/64"}
    assert sources("pg1", "10000:10100", extra_rules=extra) == {"any"}


@pytest.mark.parametrize("opts, needle", [
    ({"ssh_allow": ["10.0.0.300/24"]}, "'10.0.0.300/24' is not a valid"),
    ({"ssh_allow": ["10.0.0.1/24"]}, "host bits set"),
    ({"ssh_allow": ["10.0.0.0/24", "10.0.0.0/24"]}, "duplicate entry '10.0.0.0/24'"),
    ({"extra_rules": [{"name": "x", "port": 70000, "from": ["any"]}]}, "port 70000 is not in 1..65535"),
    ({"extra_rules": [{"name": "x", "port": 0, "from": ["any"]}]}, "port 0"),
    ({"extra_rules": [{"name": "x", "port": 80, "protocol": "sctp", "from": ["any"]}]}, "unsupported protocol 'sctp'"),
    ({"extra_rules": [{"name": "x", "port": 5432, "from": ["app"]}]}, "conflicts with port map entry 'postgresql'"),
    ({"extra_rules": [{"name": "x", "port": 7000, "from": ["any"]},
                      {"name": "x", "port": 7001, "from": ["any"]}]}, "duplicate name 'x'"),
    ({"extra_rules": [{"name": "x", "port": 7000, "from": ["any"]},
                      {"name": "y", "port": 7000, "from": ["app"]}]}, "conflicts with firewall_extra_rules 'x'"),
    ({"extra_rules": [{"name": "x", "port": 7000, "from": ["nosuch"]}]}, "group 'nosuch' is not in the inventory"),
    ({"extra_rules": [{"name": "x", "port": 7000, "from": ["10.0.0.256/32"]}]}, "10.0.0.256/32"),
    ({"input_policy": "REJECT"}, "'REJECT'"),
])
def test_bad_input_names_the_value(opts, needle):
    with pytest.raises(fr.FirewallError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        fr.compute(PORT_MAP, "pg1", GROUPS, ADDR, opts)


@pytest.mark.parametrize("entry, needle", [
    ({"port": 9999, "protocol": "tcp", "listen": ["postgres"], "from": ["nosuchgroup"]}, "nosuchgroup"),
    ({"port": 99999, "protocol": "tcp", "listen": ["postgres"], "from": ["app"]}, "99999"),
    ({"port": 9999, "protocol": "icmp", "listen": ["postgres"], "from": ["app"]}, "'icmp'"),
    ({"port": 5432, "protocol": "tcp", "listen": ["postgres"], "from": ["app"]}, "both claim tcp/5432"),
])
def test_bad_port_map_names_the_value(entry, needle):
    with pytest.raises(fr.FirewallError, match=needle):
        fr.compute(dict(PORT_MAP, broken=entry), "pg1", GROUPS, ADDR, {})


def test_missing_address_is_named():
    addr = dict(ADDR, mon1={"ipv4": [], "ipv6": []})
    with pytest.raises(fr.FirewallError, match="'mon1' has no known address"):
        fr.compute(PORT_MAP, "pg1", GROUPS, addr, {})


def test_by_family_splits_and_dedups():
    assert fr.by_family(["10.0.0.1", "2001:db8::1", "10.0.0.1"]) == {"ipv4": ["10.0.0.1"], "ipv6": ["2001:db8::1"]}
    with pytest.raises(fr.FirewallError, match="'nope'"):
        fr.by_family(["nope"])


def test_admits():
    ruleset = fr.compute(PORT_MAP, "pg1", GROUPS, ADDR, {"ssh_allow": ["192.0.2.0/24"]})
    assert fr.admits(ruleset, "192.0.2.7", 22)
    assert fr.admits(ruleset, "10.0.0.21", 22)
    assert not fr.admits(ruleset, "10.9.9.9", 22)
    assert not fr.admits(ruleset, "198.51.100.1", 22)


def test_filter_reads_hostvars_and_reports_errors():
    hostvars = {h: {"ansible_host": a["ipv4"][0]} for h, a in ADDR.items()}
    got = flt.firewall_ruleset(PORT_MAP, "pg1", GROUPS, hostvars, {"ssh_allow": ["192.0.2.0/24"]})
    assert '-s 10.0.0.50/32 -p tcp -m tcp --dport 9187 -m comment --comment "hs:postgres_exporter" -j ACCEPT' \
        in got["ipv4"]["chains"]["HS-INPUT"]
    with pytest.raises(AnsibleFilterError, match="'ghost.example' .from ansible_host. does not resolve"):
        flt.firewall_ruleset(PORT_MAP, "pg1", GROUPS, dict(hostvars, mon1={"ansible_host": "ghost.example"}), {})
    with pytest.raises(AnsibleFilterError, match="10.0.0.300/24"):
        flt.firewall_ruleset(PORT_MAP, "pg1", GROUPS, hostvars, {"ssh_allow": ["10.0.0.300/24"]})


def test_sources_give_the_services_own_gate_the_firewalls_networks():
    # nginx in front of mtail allows exactly what the firewall admits to nginx_log_exporter.
    assert fr.sources(PORT_MAP, "nginx_log_exporter", GROUPS, ADDR) == ["10.0.0.50/32", "2001:db8::50/128"]
    assert fr.sources_hosts(PORT_MAP, "nginx_log_exporter", GROUPS) == ["mon1"]
    ruleset = fr.compute(PORT_MAP, "lb1", GROUPS, ADDR)
    for net in fr.sources(PORT_MAP, "nginx_log_exporter", GROUPS, ADDR):
        assert fr.admits(ruleset, net.split("/", maxsplit=1)[0], 3903)
    assert not fr.admits(ruleset, "10.0.0.21", 3903)      # app1: not monitoring
    assert fr.sources(PORT_MAP, "https", GROUPS, ADDR) == ["any"]
    with pytest.raises(fr.FirewallError, match="no entry 'nope'"):
        fr.sources(PORT_MAP, "nope", GROUPS, ADDR)
    with pytest.raises(fr.FirewallError, match="'mon1' has no known address"):
        fr.sources(PORT_MAP, "nginx_log_exporter", GROUPS, dict(ADDR, mon1={"ipv4": [], "ipv6": []}))


def test_sources_filter_reads_the_address_model(dns):
    hostvars = {h: {"ansible_host": a["ipv4"][0]} for h, a in ADDR.items()}
    assert flt.firewall_sources("nginx_log_exporter", PORT_MAP, GROUPS, hostvars) == ["10.0.0.50/32"]
    # hardened_stack_address (a dual-stack list) replaces ansible_host, and every entry is admitted.
    dual = dict(hostvars, mon1={"ansible_host": "192.0.2.50", "hardened_stack_address": ["10.0.5.5", "2001:db8::5"]})
    assert flt.firewall_sources("nginx_log_exporter", PORT_MAP, GROUPS, dual) == ["10.0.5.5/32", "2001:db8::5/128"]
    # A DNS name is resolved on the controller: every address it has is admitted.
    dns["mon.example"] = ["10.0.5.7", "2001:db8::7"]
    named = dict(hostvars, mon1={"ansible_host": "mon.example"})
    assert flt.firewall_sources("nginx_log_exporter", PORT_MAP, GROUPS, named) == ["10.0.5.7/32", "2001:db8::7/128"]
    with pytest.raises(AnsibleFilterError, match="mon1"):
        flt.firewall_sources("nginx_log_exporter", PORT_MAP, GROUPS,
                             dict(hostvars, mon1={"ansible_host": "unknown.example"}))
