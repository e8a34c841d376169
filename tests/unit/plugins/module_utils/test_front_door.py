"""The front door (issue 19): the load balancers' virtual address is the one answer for what
clients dial (stack endpoints, the app's PostgreSQL hosts, certificates), keepalived's VRRP
instance comes from the address model, and the port map's portless ``vrrp`` entry reaches the
firewall as IP protocol 112 between the pair only."""

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter import address as flt
from ansible_collections.hardened.stack.plugins.module_utils import address as am
from ansible_collections.hardened.stack.plugins.module_utils import firewall_rules as fr
from ansible_collections.hardened.stack.plugins.module_utils import inventory_checks as ic
from ansible_collections.hardened.stack.plugins.module_utils import pki
from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm
from ansible_collections.hardened.stack.plugins.module_utils import stack

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def _port_map():
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["_common_port_map_defaults"]


def _iface(device, ipv4=None, *, netmask="255.255.255.0", ipv6=(), prefix="64", secondaries=()):
    data = {"device": device, "ipv6": [{"address": a, "prefix": prefix, "scope": "global"} for a in ipv6]
            + [{"address": "fe80::42:acff:fe1e:220a", "prefix": "64", "scope": "link"}]}
    if ipv4:
        data["ipv4"] = {"address": ipv4, "netmask": netmask}
    if secondaries:
        data["ipv4_secondaries"] = [{"address": a, "netmask": "255.255.255.255"} for a in secondaries]
    return data


def _lb_facts(mgmt, cluster, cluster6=(), secondaries=()):
    """Gathered facts of a lab load balancer: eth0 management, eth1 cluster."""
    return {"interfaces": ["lo", "eth0", "eth1"],
            "lo": _iface("lo", "127.0.0.1", netmask="255.0.0.0", ipv6=["::1"], prefix="128"),
            "eth0": _iface("eth0", mgmt),
            "eth1": _iface("eth1", cluster, ipv6=cluster6, secondaries=secondaries)}


def _inventory(vip=None, lbs=("lb1", "lb2"), v6=False):
    groups = {"all": list(lbs) + ["app1", "pg1", "mon1"], "loadbalancers": list(lbs), "app": ["app1"],
              "postgres": ["pg1"], "monitoring": ["mon1"], "ungrouped": []}
    hostvars = {}
    for index, lb in enumerate(lbs):
        v4 = "172.30.20.%d" % (10 + index)
        six = "fd00:172:30:20::%d" % (10 + index)
        hostvars[lb] = {"hardened_stack_address": [six, v4] if v6 else v4,
                        "ansible_host": "%s.mgmt.hslab" % lb,
                        "ansible_facts": _lb_facts("172.30.10.%d" % (10 + index), v4, [six] if v6 else ())}
        if vip is not None:
            hostvars[lb]["hardened_stack_virtual_address"] = vip
    hostvars["app1"] = {"hardened_stack_address": "172.30.20.21"}
    hostvars["pg1"] = {"hardened_stack_address": "172.30.20.31"}
    hostvars["mon1"] = {"hardened_stack_address": "172.30.20.40"}
    return groups, hostvars


# -- the virtual address itself --------------------------------------------------------------

def test_virtual_addresses_ipv4_and_ipv6_compressed_in_order():
    groups, hostvars = _inventory(["172.30.20.100", "fd00:172:30:20:0:0:0:100"])
    assert am.virtual_addresses(groups, hostvars) == ["172.30.20.100", "fd00:172:30:20::100"]


def test_no_virtual_address_gives_the_hosts_own_addresses():
    groups, hostvars = _inventory(None, lbs=("lb1",))
    assert am.virtual_addresses(groups, hostvars) == []
    assert am.front_door(groups, hostvars) == ["172.30.20.10"]
    groups, hostvars = _inventory("", lbs=("lb1", "lb2"))
    assert am.front_door(groups, hostvars) == ["172.30.20.10", "172.30.20.11"]


@pytest.mark.parametrize("value, needle", [
    ("front.example.org", "is not an IP address"),
    ("[fd00::100]", "is not an IP address"),
    (["172.30.20.100", "172.30.20.101"], "two IPv4 addresses"),
    (["fd00::100", "fd00::101"], "two IPv6 addresses"),
    (100, "is not an IP address"),
])
def test_a_bad_virtual_address_is_named(value, needle):
    groups, hostvars = _inventory(value)
    with pytest.raises(am.AddressError, match="hardened_stack_virtual_address") as err:
        am.virtual_addresses(groups, hostvars)
    assert needle in str(err.value)


def test_hosts_that_disagree_are_an_error():
    groups, hostvars = _inventory("172.30.20.100")
    hostvars["lb2"]["hardened_stack_virtual_address"] = "172.30.20.101"
    with pytest.raises(am.AddressError, match="'lb1' and 'lb2'.*set it once"):
        am.virtual_addresses(groups, hostvars)
    with pytest.raises(AnsibleFilterError, match="front_door"):
        flt.front_door(groups, hostvars)


def test_inventory_checks_name_the_virtual_address_defects():
    groups, hostvars = _inventory(["172.30.20.100", "fd00:172:30:20::100"])
    assert ic.virtual_address_checks(groups, hostvars) == []
    groups, hostvars = _inventory("172.30.20.21")          # app1's address
    assert ic.virtual_address_checks(groups, hostvars) == [
        "loadbalancers: hardened_stack_virtual_address 172.30.20.21 is already an address of host app1 (a virtual "
        "address must be one no host has: keepalived adds it to whichever load balancer holds it). Fix: choose an "
        "unused address of the load balancers' cluster subnet."]
    groups, hostvars = _inventory(None)
    hostvars["mon1"]["hardened_stack_virtual_address"] = "172.30.20.100"
    assert [p.split(":")[0] for p in ic.virtual_address_checks(groups, hostvars)] == ["mon1"]
    groups, hostvars = _inventory(["172.30.20.100", "172.30.20.101"])
    assert "two IPv4 addresses" in ic.virtual_address_checks(groups, hostvars)[0]
    # one load balancer, no virtual address: nothing to say
    assert ic.virtual_address_checks(*_inventory(None, lbs=("lb1",))) == []
    # one load balancer with a virtual address: no peer to move it to (keepalived.conf would have
    # an empty unicast_peer block)
    assert ic.virtual_address_checks(*_inventory("172.30.20.100", lbs=("lb1",))) == [
        "loadbalancers: hardened_stack_virtual_address is set but the group has 1 host(s); the address moves "
        "between two or more load balancers (unicast VRRP between them). Fix: add the second load balancer, or "
        "leave hardened_stack_virtual_address unset (clients then dial the load balancer's own address)."]


# -- keepalived's instance -------------------------------------------------------------------

def test_vrrp_instance_of_each_node_unicast_to_the_other():
    groups, hostvars = _inventory("172.30.20.100")
    one = am.vrrp_instance("lb1", groups, hostvars, hostvars["lb1"]["ansible_facts"])
    two = flt.vrrp_instance("lb2", groups, hostvars, hostvars["lb2"]["ansible_facts"])
    assert one == {"interface": "eth1", "src": "172.30.20.10", "peers": ["172.30.20.11"],
                   "virtual": ["172.30.20.100"], "excluded": [], "priority": 150, "outside": []}
    assert (two["src"], two["peers"], two["priority"]) == ("172.30.20.11", ["172.30.20.10"], 140)
    assert am.vrrp_instance("lb2", groups, hostvars, hostvars["lb2"]["ansible_facts"], priority=200)["priority"] == 200


def test_vrrp_instance_of_the_holder_still_finds_the_cluster_interface():
    # keepalived added the VIP as a secondary /32: the interface and subnet stay eth1's
    groups, hostvars = _inventory("172.30.20.100")
    facts = _lb_facts("172.30.10.10", "172.30.20.10", secondaries=["172.30.20.100"])
    assert am.vrrp_instance("lb1", groups, hostvars, facts)["outside"] == []


def test_ipv6_cluster_addresses_carry_the_ipv4_vip_alongside():
    groups, hostvars = _inventory(["172.30.20.100", "fd00:172:30:20::100"], v6=True)
    one = am.vrrp_instance("lb1", groups, hostvars, hostvars["lb1"]["ansible_facts"])
    assert one["src"] == "fd00:172:30:20::10" and one["peers"] == ["fd00:172:30:20::11"]
    assert one["virtual"] == ["fd00:172:30:20::100"] and one["excluded"] == ["172.30.20.100"]
    assert one["interface"] == "eth1" and one["outside"] == []


def test_a_vip_outside_the_cluster_subnet_is_reported():
    groups, hostvars = _inventory(["10.9.9.9", "fd00:dead::1"])
    assert am.vrrp_instance("lb1", groups, hostvars, hostvars["lb1"]["ansible_facts"])["outside"] == [
        "10.9.9.9", "fd00:dead::1"]


def test_no_interface_holds_the_cluster_address():
    groups, hostvars = _inventory("172.30.20.100")
    facts = _lb_facts("172.30.10.10", "172.30.99.10")
    with pytest.raises(AnsibleFilterError, match="no interface holds its cluster address 172.30.20.10"):
        flt.vrrp_instance("lb1", groups, hostvars, facts)


# -- consumers: stack endpoints, the app, certificates ----------------------------------------

def test_front_door_services_point_at_the_vip_only():
    groups, hostvars = _inventory(["172.30.20.100", "fd00:172:30:20::100"])
    pmap = pm.validate(_port_map(), groups)
    facts = stack.connection_facts(pmap, groups, hostvars)
    assert facts["pg_write_hosts"] == "172.30.20.100,fd00:172:30:20::100"
    assert facts["pg_read_hosts"] == facts["pg_write_hosts"]
    assert [e["endpoint"] for e in facts["https"]] == ["172.30.20.100:443", "[fd00:172:30:20::100]:443"]
    assert all(e["host"] is None for e in facts["pg_write"])
    # per-host services of the load balancers stay per host (Prometheus scrapes each)
    assert [e["host"] for e in stack.endpoints(pmap, groups, hostvars, "nginx_exporter")] == ["lb1", "lb2"]
    assert [e["address"] for e in stack.endpoints(pmap, groups, hostvars, "https", per_host=True)] == [
        "172.30.20.10", "172.30.20.11"]


def test_without_vip_the_app_dials_every_load_balancer():
    groups, hostvars = _inventory(None)
    facts = stack.connection_facts(pm.validate(_port_map(), groups), groups, hostvars)
    assert facts["pg_write_hosts"] == "172.30.20.10,172.30.20.11"


def test_certificates_carry_the_vip():
    groups, hostvars = _inventory(["172.30.20.100", "fd00:172:30:20::100"])
    lb = pki.endpoint_sans("lb1", groups, hostvars, {"postgres": "loadbalancers"})
    assert "IP:172.30.20.100" in lb and "IP:fd00:172:30:20::100" in lb
    pg = pki.endpoint_sans("pg1", groups, hostvars, {"postgres": "loadbalancers"})
    # libpq verify-full through HAProxy dials the VIP: the member's certificate must name it
    assert "IP:172.30.20.100" in pg and "IP:172.30.20.10" in pg
    assert "IP:172.30.20.100" not in pki.endpoint_sans("app1", groups, hostvars, {"postgres": "loadbalancers"})


# -- the port map's vrrp entry and the firewall -----------------------------------------------

def test_vrrp_entry_is_portless_and_validated():
    pmap = pm.validate(_port_map())
    assert pmap["vrrp"]["port"] is None and pmap["vrrp"]["protocol"] == "vrrp"
    assert [r for r in pm.edges(pmap, {}) if r["service"] == "vrrp"] == [
        {"service": "vrrp", "port": None, "protocol": "vrrp", "from": "loadbalancers", "to": "loadbalancers"}]


@pytest.mark.parametrize("entry, needle", [
    ({"protocol": "vrrp", "port": 112, "listen": ["loadbalancers"], "from": ["loadbalancers"]}, "has no port"),
    ({"protocol": "tcp", "listen": ["loadbalancers"], "from": ["any"]}, "missing key(s) port"),
    ({"protocol": "gre", "listen": ["loadbalancers"], "from": ["any"]}, "is not one of tcp, udp, vrrp"),
])
def test_bad_protocol_entries_are_named(entry, needle):
    with pytest.raises(pm.PortMapError, match="entry 'x'") as err:
        pm.validate({"x": entry})
    assert needle in str(err.value)


def _ruleset(host, groups, hostvars):
    addresses = dict((h, am.cluster_addresses(h, hostvars)) for h in groups["all"])
    by_host = dict((h, fr.by_family(a)) for h, a in addresses.items())
    return fr.compute(_port_map(), host, groups, by_host, {"input_policy": "DROP"})


def test_firewall_admits_vrrp_from_the_other_load_balancer_only():
    groups, hostvars = _inventory("172.30.20.100")
    rules = _ruleset("lb1", groups, hostvars)
    assert any(r.startswith("-s 172.30.20.11/32 -p vrrp -m comment") for r in rules["ipv4"]["chains"][fr.CHAIN])
    assert fr.admits(rules, "172.30.20.11", None, "vrrp")
    assert not fr.admits(rules, "172.30.20.21", None, "vrrp")   # the app host
    assert not fr.admits(rules, "172.30.20.40", None, "vrrp")   # monitoring
    # a tcp rule does not admit VRRP and the VRRP rule admits no tcp port
    assert not fr.admits(rules, "172.30.20.11", 112, "tcp")
    # an app host gets no VRRP rule at all
    app = _ruleset("app1", groups, hostvars)
    assert not any("-p vrrp" in r for r in app["ipv4"]["chains"][fr.CHAIN])


def test_firewall_vrrp_over_ipv6():
    groups, hostvars = _inventory(["fd00:172:30:20::100"], v6=True)
    rules = _ruleset("lb2", groups, hostvars)
    assert fr.admits(rules, "fd00:172:30:20::10", None, "vrrp")
    assert not fr.admits(rules, "fd00:172:30:20::21", None, "vrrp")


def test_vrrp_instance_refuses_a_virtual_address_only_of_the_other_family():
    # IPv4 cluster addresses carry the adverts: an IPv6-only virtual address would leave the
    # instance with nothing in virtual_ipaddress (the new-user tryout's case).
    groups, hostvars = _inventory("fd00:172:30:20::100")
    with pytest.raises(am.AddressError, match="has no IPv4 address.*add an IPv4 virtual address"):
        am.vrrp_instance("lb1", groups, hostvars, hostvars["lb1"]["ansible_facts"])
    with pytest.raises(AnsibleFilterError, match="vrrp_instance"):
        flt.vrrp_instance("lb1", groups, hostvars, hostvars["lb1"]["ansible_facts"])
