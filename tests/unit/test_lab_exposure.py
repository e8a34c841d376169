"""The expectation of ``python -m lab exposure`` (lab/exposure.py): which flows the port map,
the inventory's groups and the firewall's rules allow, on a small inventory; no container
engine needed."""

import ipaddress
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from lab import exposure, report  # noqa: E402

# ansible-inventory --list of a small stack: etcd co-located with postgres (children), the
# backup repository on the monitoring host, no redis tier.
INVENTORY = {
    "_meta": {"hostvars": {
        "lb1": {"hardened_stack_address": "10.0.2.10"},
        "app1": {"hardened_stack_address": "10.0.2.21"},
        "db1": {"hardened_stack_address": ["10.0.2.31", "fd00::31"]},
        "mon1": {"hardened_stack_address": "10.0.2.50"},
    }},
    "all": {"children": ["ungrouped", "loadbalancers", "app", "postgres", "etcd", "monitoring", "backup"]},
    "loadbalancers": {"hosts": ["lb1"]},
    "app": {"hosts": ["app1"]},
    "postgres": {"hosts": ["db1"]},
    "etcd": {"children": ["postgres"]},
    "monitoring": {"hosts": ["mon1"]},
    "backup": {"hosts": ["mon1"]},
}
ADDR = {"lb1": "10.0.2.10", "app1": "10.0.2.21", "db1": "10.0.2.31", "mon1": "10.0.2.50"}
OUTSIDER = "10.0.2.254"
ADMIN = "192.0.2.7"


def stack(overrides=None, options=None):
    groups = exposure.groups_of(INVENTORY)
    maps = {h: exposure.effective_port_map(report.port_map(), overrides or {}, groups) for h in groups["all"]}
    fw = {h: dict(options or {}) for h in groups["all"]}
    rules = exposure.rulesets(maps, groups, INVENTORY["_meta"]["hostvars"], fw)

    def expect(source, target, port, cluster=True):
        return exposure.expectation(maps[target], groups, rules[target], target=target, source=source, port=port,
                                    cluster=cluster)
    return groups, expect


def test_groups_of_follows_children():
    groups = exposure.groups_of(INVENTORY)
    assert groups["etcd"] == ["db1"]
    assert groups["all"] == ["app1", "db1", "lb1", "mon1"]
    assert groups["ungrouped"] == []


def test_outsider_sees_only_http_and_https_on_the_load_balancer():
    _groups, expect = stack(options={"ssh_allow": ["192.0.2.0/24"]})
    ports = exposure.scan_ports(exposure.effective_port_map(report.port_map(), {}, exposure.groups_of(INVENTORY)))
    for host in ADDR:
        answering = [p for p in ports if expect(OUTSIDER, host, p) != "blocked"]
        assert answering == ([80, 443] if host == "lb1" else []), host
    assert expect(OUTSIDER, "lb1", 443) == "open"
    # SSH only from the allowed CIDR (and from stack members).
    assert expect(ADMIN, "db1", 22) == "open"
    assert expect(ADMIN, "db1", 5432) == "blocked"


def test_member_flows_follow_listen_and_from():
    _groups, expect = stack()
    assert expect(ADDR["app1"], "db1", 5432) == "open"          # postgresql from app
    assert expect(ADDR["app1"], "db1", 2379) == "blocked"       # etcd_client: not from app
    assert expect(ADDR["db1"], "db1", 2380) == "open"           # etcd via the etcd children group
    assert expect(ADDR["lb1"], "app1", 8000) == "open"          # app_http from loadbalancers
    assert expect(ADDR["app1"], "lb1", 8000) == "blocked"       # nothing of the map runs there
    assert expect(ADDR["mon1"], "app1", 9100) == "open"         # node_exporter listens on all
    assert expect(ADDR["app1"], "mon1", 9100) == "blocked"      # ...from monitoring only
    assert expect(ADDR["mon1"], "db1", 8432) == "open"          # pgbackrest: backup <-> postgres
    assert expect(ADDR["app1"], "lb1", 22) == "open"            # ssh from every stack member
    assert expect(ADDR["app1"], "db1", exposure.CONTROLS[0]) == "blocked"
    # Every address of a dual-stack source is admitted.
    assert expect("fd00::31", "mon1", 8432) == "open"


def test_management_address_promises_nothing():
    _groups, expect = stack(options={"ssh_allow": ["172.30.10.1/32"]})
    # A member reaches another host's management address from its own management address,
    # which is in no from-list: only 'any' services (and the SSH allow list) are admitted.
    assert expect("172.30.10.21", "db1", 5432, cluster=False) == "blocked"
    assert expect("172.30.10.21", "db1", 22, cluster=False) == "blocked"
    assert expect("172.30.10.1", "db1", 22, cluster=False) == "may"
    assert expect("172.30.10.21", "lb1", 443, cluster=False) == "may"


def test_overrides_and_extra_rules():
    _groups, expect = stack(overrides={"postgresql": {"port": 5433}},
                            options={"extra_rules": [{"name": "metrics", "port": 9999, "from": ["monitoring"]}]})
    assert expect(ADDR["app1"], "db1", 5433) == "open"
    assert expect(ADDR["app1"], "db1", 5432) == "blocked"
    # An extra rule admits, but the map promises no listener.
    assert expect(ADDR["mon1"], "app1", 9999) == "may"
    assert expect(ADDR["lb1"], "app1", 9999) == "blocked"


@pytest.mark.parametrize("expected,observed,kind", [
    ("blocked", "filtered", "ok"),
    ("blocked", "open", "hole"),
    ("blocked", "closed", "hole"),       # a refusal: the firewall let the SYN in
    ("open", "open", "ok"),
    ("open", "closed", "idle"),
    ("open", "filtered", "filtered"),
    ("may", "open", "ok"),
    ("may", "closed", "ok"),
    ("may", "filtered", "ok"),
])
def test_classify(expected, observed, kind):
    assert exposure.classify(expected, observed) == kind


def test_scan_ports_and_networks():
    pmap = exposure.effective_port_map(report.port_map(), {"myapi": {"port": 9000, "protocol": "tcp",
                                                                     "listen": ["app"], "from": ["loadbalancers"]},
                                                           "syslog": {"port": 514, "protocol": "udp",
                                                                      "listen": ["all"], "from": ["all"]}},
                                       exposure.groups_of(INVENTORY))
    ports = exposure.scan_ports(pmap)
    assert {22, 80, 443, 9000, *exposure.CONTROLS} <= set(ports) and 514 not in ports
    assert not set(exposure.CONTROLS) & {e.get("port") for e in report.port_map().values()}
    nets = [ipaddress.ip_network("172.30.10.0/24"), ipaddress.ip_network("172.30.20.0/24"), None]
    own = ["172.30.10.21", "172.30.20.21"]
    assert exposure.same_network("172.30.20.31", own, nets) == "172.30.20.21"
    assert exposure.same_network("172.30.10.31", own, nets) == "172.30.10.21"
    assert exposure.same_network("fd00::31", own, nets) is None
    assert exposure.free_address(ipaddress.ip_network("172.30.10.0/24"), {"172.30.10.254"}) == "172.30.10.253"


def test_parse_nmap():
    xml = """<?xml version="1.0"?><nmaprun><host><status state="up"/>
      <address addr="172.30.10.10" addrtype="ipv4"/><ports>
      <port protocol="tcp" portid="22"><state state="filtered"/></port>
      <port protocol="tcp" portid="443"><state state="open"/></port>
      <port protocol="tcp" portid="80"><state state="closed"/></port></ports></host></nmaprun>"""
    assert exposure.parse_nmap(xml) == {"172.30.10.10": {22: "filtered", 443: "open", 80: "closed"}}
