# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The address model: the ONE answer to "what is this host's address".

Every inventory host has a *cluster address*: the address its services bind to and the
address its peers dial (etcd, Patroni, PostgreSQL, Redis, Sentinel, the app servers, the
exporters, Prometheus, HAProxy servers, nginx upstreams, pg_hba lines, firewall sources).
It is chosen once, in this order of preference:

1. ``hardened_stack_address`` (host variable): an IP literal or a DNS name; or a list whose
   first entry is the cluster address and whose other entries are further addresses of the
   same host (a dual-stack host: ``[192.0.2.11, "2001:db8::11"]``). The firewall admits all
   of them; services use the first.
2. ``hardened_stack_cluster_interface`` (host variable): the name of the host's cluster
   interface (``eth1``, ``ens19``); its IPv4 address from the host's gathered facts, or its
   first global IPv6 address when it has no IPv4 address.
3. ``ansible_host``: an IP literal or a DNS name.
4. The inventory name, as a DNS name.

A DNS name is resolved once, on the controller (``getaddrinfo``): the first IPv4 address it
resolves to, else the first IPv6 one. Services are given the resolved address, so every
consumer (and every runtime comparison, e.g. Sentinel's master address or Patroni's member
host) sees one spelling. A name that does not resolve is an error naming the host and the
variable it came from. The management address Ansible connects to is not part of the model:
a host reached by name on a management network and talking on a cluster network sets
``ansible_host`` to the name and ``hardened_stack_address`` (or the interface) to the cluster
side.

The formatting helpers bracket IPv6 literals wherever an address goes into ``host:port`` or a
URL (``[2001:db8::11]:2380``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
import socket

OVERRIDE_VAR = "hardened_stack_address"
INTERFACE_VAR = "hardened_stack_cluster_interface"

# RFC 1123 host names (labels of letters, digits and hyphens, dots between them).
_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                   r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")

_RESOLVED = {}


class AddressError(ValueError):
    """The inventory cannot give a host's address; the message names the host and variable."""


def parse_ip(value):
    """``ipaddress`` object of an IP literal (IPv6 may be bracketed), else ``None``."""
    if value is None or isinstance(value, bool):
        return None
    text = u"%s" % value
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_name(value):
    """True when ``value`` is a syntactically valid DNS name (and not an IP literal). A name
    whose last label is all digits (``10.0.0.300``) is a mistyped address, not a name."""
    text = u"%s" % value
    if parse_ip(text) is not None or not _NAME.match(text):
        return False
    return not text.rstrip(".").rsplit(".", 1)[-1].isdigit()


def _hostvars(host, hostvars):
    try:
        hv = hostvars[host]
    except (KeyError, TypeError):
        raise AddressError("host '%s' is not in the inventory" % host)
    return hv if hv is not None else {}


def _get(hv, key):
    try:
        return hv.get(key)
    except AttributeError:
        return None


def _interface_facts(facts, name):
    """The gathered facts of interface ``name`` (Ansible keys them with - and . as _), or ``{}``."""
    key = u"%s" % name
    data = facts.get(key.replace("-", "_").replace(".", "_")) or facts.get(key)
    return data if isinstance(data, dict) else {}


def _ipv4_entries(data):
    """An interface's IPv4 entries from its facts: the primary one and the secondaries."""
    ipv4 = data.get("ipv4")
    return ([ipv4] if isinstance(ipv4, dict) else list(ipv4 or [])) + list(data.get("ipv4_secondaries") or [])


def _interface_address(host, hv, interface):
    facts = _get(hv, "ansible_facts") or {}
    if not facts:
        raise AddressError("host '%s': %s is '%s' but the host's facts are not gathered "
                           "(run the play with gather_facts, or set %s)"
                           % (host, INTERFACE_VAR, interface, OVERRIDE_VAR))
    data = _interface_facts(facts, interface)
    if not data.get("device"):
        known = sorted(facts.get("interfaces") or [])
        raise AddressError("host '%s': %s '%s' is not an interface of the host (it has: %s)"
                           % (host, INTERFACE_VAR, interface, ", ".join(known) or "none gathered"))
    ipv4 = (data.get("ipv4") or {}).get("address")
    if ipv4:
        return ipv4
    for entry in data.get("ipv6") or []:
        if entry.get("scope") in ("global", None) and entry.get("address"):
            ip = parse_ip(entry["address"])
            if ip is not None and not ip.is_link_local:
                return ip.compressed
    raise AddressError("host '%s': interface '%s' (%s) has no IPv4 or global IPv6 address"
                       % (host, interface, INTERFACE_VAR))


def configured(host, hostvars):
    """``(value, source, extra)``: the host's address as the inventory spells it (IP literal
    or DNS name), the variable it came from, and further addresses (the rest of a
    ``hardened_stack_address`` list)."""
    hv = _hostvars(host, hostvars)
    override = _get(hv, OVERRIDE_VAR)
    if override not in (None, "", []):
        values = list(override) if isinstance(override, (list, tuple)) else [override]
        for index, value in enumerate(values):
            if not isinstance(value, str) or not (parse_ip(value) or is_name(value)):
                raise AddressError("host '%s': %s%s = %r is neither an IP address nor a DNS name"
                                   % (host, OVERRIDE_VAR, "[%d]" % index if len(values) > 1 else "",
                                      value))
        return values[0].strip(), OVERRIDE_VAR, [v.strip() for v in values[1:]]
    interface = _get(hv, INTERFACE_VAR)
    if interface:
        return _interface_address(host, hv, interface), INTERFACE_VAR, []
    ansible_host = _get(hv, "ansible_host")
    if ansible_host:
        value = u"%s" % ansible_host
        if not (parse_ip(value) or is_name(value)):
            raise AddressError("host '%s': ansible_host = %r is neither an IP address nor a DNS name"
                               % (host, value))
        return value.strip(), "ansible_host", []
    if not is_name(host):
        raise AddressError("host '%s': the inventory name is not a DNS name; set %s"
                           % (host, OVERRIDE_VAR))
    return u"%s" % host, "the inventory name", []


def resolve(name, resolver=None):
    """Every address ``name`` resolves to on the controller, IPv4 first, in resolver order,
    without duplicates (an IP literal gives itself). Raises ``socket.gaierror``."""
    ip = parse_ip(name)
    if ip is not None:
        return [ip.compressed]
    if resolver is None and name in _RESOLVED:
        return list(_RESOLVED[name])
    infos = (resolver or socket.getaddrinfo)(name, None, 0, socket.SOCK_STREAM)
    found = []
    for info in infos:
        addr = parse_ip(info[4][0].split("%", 1)[0])
        if addr is not None and addr.compressed not in found:
            found.append(addr.compressed)
    found = ([a for a in found if ":" not in a] + [a for a in found if ":" in a])
    if not found:
        raise socket.gaierror("no address")
    if resolver is None:
        _RESOLVED[name] = list(found)
    return found


def _resolve(host, value, source, resolver):
    try:
        return resolve(value, resolver)
    except (socket.gaierror, socket.herror, UnicodeError) as exc:
        raise AddressError("host '%s': '%s' (from %s) does not resolve on the controller (%s); "
                           "make it resolvable or set %s to the host's cluster IP address"
                           % (host, value, source, exc, OVERRIDE_VAR))


def cluster_address(host, hostvars, resolver=None):
    """The host's cluster address: an IP literal (compressed form), see the module doc."""
    value, source, _extra = configured(host, hostvars)
    return _resolve(host, value, source, resolver)[0]


def cluster_addresses(host, hostvars, resolver=None):
    """Every address of the host the stack knows: the cluster address first, then every
    other address a DNS name resolves to and the rest of a ``hardened_stack_address`` list.
    What the firewall admits for the host."""
    value, source, extra = configured(host, hostvars)
    out = []
    for index, item in enumerate([value] + list(extra)):
        what = source if index == 0 else "%s[%d]" % (OVERRIDE_VAR, index)
        for addr in _resolve(host, item, what, resolver):
            if addr not in out:
                out.append(addr)
    return out


def host_cidr(address):
    """``address/32`` or ``address/128``: a host route for an IP literal."""
    ip = parse_ip(address)
    if ip is None:
        raise AddressError("'%s' is not an IP address" % address)
    return "%s/%d" % (ip.compressed, 32 if ip.version == 4 else 128)


def host_port(address, port=None):
    """``address:port`` with an IPv6 literal bracketed (``[2001:db8::1]:5432``); with no
    port, the bracketed host alone (for URLs that carry the default port)."""
    ip = parse_ip(address)
    text = ip.compressed if ip is not None else u"%s" % address
    if ip is not None and ip.version == 6:
        text = "[%s]" % text
    if port in (None, ""):
        return text
    return "%s:%s" % (text, int(port))


def url(scheme, address, port=None, path=""):
    """``scheme://host[:port]path`` with an IPv6 literal bracketed."""
    path = u"%s" % (path or "")
    if path and not path.startswith("/"):
        path = "/" + path
    return "%s://%s%s" % (scheme, host_port(address, port), path)


def local_problem(host, hostvars, resolver=None):
    """A message when the host's cluster address is not one of the host's own addresses
    (from its gathered facts), else ``None``; ``None`` too when facts are not gathered."""
    hv = _hostvars(host, hostvars)
    facts = _get(hv, "ansible_facts") or {}
    if not facts.get("all_ipv4_addresses") and not facts.get("all_ipv6_addresses"):
        return None
    own = set()
    for value in list(facts.get("all_ipv4_addresses") or []) + list(facts.get("all_ipv6_addresses") or []):
        ip = parse_ip(u"%s" % value)
        if ip is not None:
            own.add(ip.compressed)
    value, source, _extra = configured(host, hostvars)
    address = cluster_address(host, hostvars, resolver)
    if address in own:
        return None
    return ("host '%s': its cluster address %s (from %s%s) is not an address of the host "
            "(it has: %s); services would fail to bind it. Set %s to one of the host's "
            "addresses, or %s to its cluster interface"
            % (host, address, source, "" if value == address else " = '%s'" % value,
               ", ".join(sorted(own)), OVERRIDE_VAR, INTERFACE_VAR))


# The front door: the load balancers' virtual address (keepalived/VRRP), one answer for every
# consumer (stack endpoints, certificates, docs, the keepalived role).
VIRTUAL_VAR = "hardened_stack_virtual_address"
FRONT_DOOR_GROUP = "loadbalancers"


def virtual_addresses(groups, hostvars, group=FRONT_DOOR_GROUP):
    """The virtual addresses of ``group`` (``hardened_stack_virtual_address`` on its hosts: an
    IP literal or a list of them, at most one IPv4 and one IPv6), compressed, in the order given;
    ``[]`` when the group sets none. Every host of the group must set the same value (it is a
    group variable): a difference, a DNS name or two addresses of one family are errors."""
    found = None
    first = None
    for host in sorted((groups or {}).get(group) or []):
        try:
            hv = _hostvars(host, hostvars)
        except AddressError:
            hv = {}  # a host without variables sets none
        raw = _get(hv, VIRTUAL_VAR)
        if raw in (None, "", []):
            values = []
        else:
            values = list(raw) if isinstance(raw, (list, tuple)) else [raw]
        out = []
        for index, value in enumerate(values):
            ip = parse_ip(value) if isinstance(value, str) else None
            if ip is None or u"%s" % value != value.strip() or value.strip().startswith("["):
                raise AddressError("host '%s': %s%s = %r is not an IP address (a virtual address is "
                                   "an IPv4 or IPv6 literal, no DNS name)"
                                   % (host, VIRTUAL_VAR, "[%d]" % index if len(values) > 1 else "", value))
            if any(parse_ip(o).version == ip.version for o in out):
                raise AddressError("host '%s': %s has two IPv%d addresses (at most one IPv4 and one IPv6)"
                                   % (host, VIRTUAL_VAR, ip.version))
            out.append(ip.compressed)
        if found is None:
            found, first = out, host
        elif out != found:
            raise AddressError("hosts '%s' and '%s' of group '%s' set different %s (%s / %s): set it once, "
                               "as a variable of the group"
                               % (first, host, group, VIRTUAL_VAR, ", ".join(found) or "none",
                                  ", ".join(out) or "none"))
    return found or []


def front_door(groups, hostvars, group=FRONT_DOOR_GROUP):
    """The addresses clients dial for a service on ``group``: its virtual addresses when set,
    else every host's cluster address (inventory order of the sorted group)."""
    virtual = virtual_addresses(groups, hostvars, group)
    if virtual:
        return virtual
    return [cluster_address(host, hostvars) for host in sorted((groups or {}).get(group) or [])]


def interface_of(address, facts):
    """The name of the interface that holds ``address`` (from gathered facts), else ``None``."""
    ip = parse_ip(address)
    if ip is None or not facts:
        return None
    for name in facts.get("interfaces") or []:
        data = _interface_facts(facts, name)
        held = [entry.get("address") for entry in _ipv4_entries(data) + list(data.get("ipv6") or [])]
        if any(parse_ip(h) == ip for h in held if h):
            return data.get("device") or name
    return None


def vrrp_instance(host, groups, hostvars, facts, group=FRONT_DOOR_GROUP, priority=0):
    """What keepalived needs on ``host`` (a member of ``group``): ``interface`` (the one holding
    the cluster address), ``src`` (the cluster address), ``peers`` (the other members' addresses
    of the same family), ``virtual`` (virtual addresses of that family: VRRP adverts carry one
    family) and ``excluded`` (the other family, configured alongside), ``priority`` (given, else
    from the sorted group: 150, 140 …, never below 1). Raises AddressError naming the problem."""
    members = sorted((groups or {}).get(group) or [])
    if host not in members:
        raise AddressError("host '%s' is not in group '%s'" % (host, group))
    src = cluster_address(host, hostvars)
    version = parse_ip(src).version
    interface = interface_of(src, facts)
    if interface is None:
        raise AddressError("host '%s': no interface holds its cluster address %s (facts gathered?)" % (host, src))
    peers = []
    for other in members:
        if other == host:
            continue
        same = [a for a in cluster_addresses(other, hostvars) if parse_ip(a).version == version]
        if not same:
            raise AddressError("host '%s' has no IPv%d address for VRRP with '%s' (its cluster address is %s)"
                               % (other, version, host, src))
        peers.append(same[0])
    virtual = virtual_addresses(groups, hostvars, group)
    if virtual and not any(parse_ip(a).version == version for a in virtual):
        raise AddressError("host '%s': %s has no IPv%d address, the family of the cluster address %s that "
                           "carries the VRRP adverts (an IPv%d address can only move alongside one). Fix: "
                           "add an IPv%d virtual address."
                           % (host, VIRTUAL_VAR, version, src, 10 - version, version))
    outside = [a for a in virtual if not _in_subnets(a, _subnets(facts, interface))]
    if not priority:
        priority = max(1, 150 - 10 * members.index(host))
    return {"interface": interface, "src": src, "peers": peers,
            "virtual": [a for a in virtual if parse_ip(a).version == version],
            "excluded": [a for a in virtual if parse_ip(a).version != version],
            "priority": int(priority), "outside": outside}


def _subnets(facts, interface):
    """The networks of ``interface``'s addresses (gathered facts), IPv4 and IPv6."""
    data = _interface_facts(facts or {}, interface)
    nets = []
    for entry in _ipv4_entries(data):
        if entry.get("address") and entry.get("netmask"):
            nets.append(ipaddress.ip_network(u"%s/%s" % (entry["address"], entry["netmask"]), strict=False))
    for entry in data.get("ipv6") or []:
        ip = parse_ip(entry.get("address"))
        if ip is not None and not ip.is_link_local and entry.get("prefix"):
            nets.append(ipaddress.ip_network(u"%s/%s" % (ip.compressed, entry["prefix"]), strict=False))
    # a /32 or /128 (a virtual address the node holds) is not the cluster network
    return [n for n in nets if n.num_addresses > 1]


def _in_subnets(address, nets):
    ip = parse_ip(address)
    return any(ip.version == n.version and ip in n for n in nets)
