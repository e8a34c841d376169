# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules of one host computed from the port map and the inventory (pure, unit-tested).

``compute()`` returns the desired state ``hardened.stack.iptables_apply`` takes:
``{"ipv4": {"chains": {"HS-INPUT": [...]}, "policies": {...}, "jumps": {...}}, "ipv6": {...}}``.

For every service of the port map that listens on the host (its ``listen`` groups), the
service port is opened to the addresses of the hosts in its ``from`` groups, or to the world
for ``any``. ``all`` in ``from`` means every host that is a member of the stack, i.e. in at
least one group: a host in no group (Ansible's ``ungrouped``) is not trusted by any entry.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm

CHAIN = "HS-INPUT"
PROTOCOLS = ("tcp", "udp")
ICMP4_ACCEPT = ("3", "11", "12")            # unreachable (incl. fragmentation needed), time exceeded, parameter problem
ICMP6_ACCEPT = ("1", "2", "3", "4")         # unreachable, packet too big, time exceeded, parameter problem
ICMP6_ND = ("133", "134", "135", "136")     # router/neighbour solicitation and advertisement
ICMP6_MLD = ("130", "131", "132", "143")    # multicast listener query/report/done, MLDv2 report
DEFAULTS = {
    "ssh_service": "ssh",
    "ssh_allow": [],
    "extra_rules": [],
    "input_policy": "DROP",
    "forward_policy": "DROP",
    "log_drops": True,
    "log_limit": "5/min",
    "log_prefix": "hs-fw-drop: ",
    "ping_limit": "10/sec",
    "comment_prefix": "hs:",
}


class FirewallError(ValueError):
    """Bad firewall input; the message names the offending value."""


def _network(value, what):
    if not isinstance(value, str):
        raise FirewallError("%s: %r is not a CIDR string" % (what, value))
    try:
        net = ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise FirewallError("%s: %r is not a valid address or CIDR (%s)" % (what, value, exc))
        raise FirewallError("%s: %r has host bits set (did you mean %s?)" % (what, value, loose))
    return net


def _fmt(net):
    return "%s/%d" % (net.network_address.compressed, net.prefixlen)


def _family(net):
    return "ipv4" if net.version == 4 else "ipv6"


def _port(value, what):
    """A port (int) or range ("lo:hi") -> the iptables spelling."""
    if isinstance(value, bool):
        raise FirewallError("%s: port %r is not in 1..65535" % (what, value))
    if isinstance(value, str) and ":" in value:
        lo, hi = value.split(":", 1)
        a, b = _port(lo, what), _port(hi, what)
        if int(a) >= int(b):
            raise FirewallError("%s: port range %r is empty or reversed" % (what, value))
        return "%s:%s" % (a, b)
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise FirewallError("%s: port %r is not in 1..65535" % (what, value))
    if str(port) != str(value).strip() or not 1 <= port <= 65535:
        raise FirewallError("%s: port %r is not in 1..65535" % (what, value))
    return str(port)


def by_family(addresses):
    """``{"ipv4": [...], "ipv6": [...]}`` of a list of IP literals (the address model's
    ``cluster_addresses``), in order, without duplicates."""
    out = {"ipv4": [], "ipv6": []}
    for value in addresses or []:
        try:
            addr = ipaddress.ip_address(str(value).strip())
        except ValueError:
            raise FirewallError("%r is not an IP address" % (value,))
        fam = "ipv4" if addr.version == 4 else "ipv6"
        if addr.compressed not in out[fam]:
            out[fam].append(addr.compressed)
    return out


def _members(groups):
    ungrouped = set(groups.get("ungrouped", []))
    return sorted(h for h in groups.get("all", []) if h not in ungrouped)


def _sources(names, groups, what):
    """Hosts of the groups ``names``; ``all`` = stack members (hosts in some group)."""
    hosts = set()
    for name in names:
        if name == pm.ANY:
            continue
        if name == pm.ALL:
            hosts.update(_members(groups))
        elif name in groups:
            hosts.update(groups[name])
        elif name not in pm.CONTRACT_GROUPS:
            raise FirewallError("%s: group %r is not in the inventory" % (what, name))
    return sorted(hosts)


def _extra(rule, index, groups):
    """Check one user-declared rule; return (name, protocol, port, [source tokens])."""
    what = "firewall_extra_rules[%d]" % index
    if not isinstance(rule, dict):
        raise FirewallError("%s: must be a dict, got %r" % (what, rule))
    unknown = sorted(set(rule) - {"name", "port", "protocol", "from", "comment"})
    if unknown:
        raise FirewallError("%s: unknown key(s) %s" % (what, ", ".join(unknown)))
    name = rule.get("name")
    if not name or not isinstance(name, str):
        raise FirewallError("%s: 'name' is required" % what)
    what = "firewall_extra_rules '%s'" % name
    protocol = rule.get("protocol", "tcp")
    if protocol not in PROTOCOLS:
        raise FirewallError("%s: unsupported protocol %r (one of %s)"
                            % (what, protocol, ", ".join(PROTOCOLS)))
    if "port" not in rule:
        raise FirewallError("%s: 'port' is required" % what)
    port = _port(rule["port"], what)
    sources = rule.get("from")
    if not isinstance(sources, (list, tuple)) or not sources:
        raise FirewallError("%s: 'from' must be a non-empty list of CIDRs, groups or 'any'" % what)
    tokens = []
    for src in sources:
        if not isinstance(src, str):
            raise FirewallError("%s: source %r is not a string" % (what, src))
        if src in (pm.ANY, pm.ALL) or ("/" not in src and ":" not in src and not src[:1].isdigit()):
            if src not in (pm.ANY, pm.ALL) and src not in groups:
                raise FirewallError("%s: group %r is not in the inventory" % (what, src))
            tokens.append(("group", src))
        else:
            tokens.append(("net", _network(src if "/" in src else src + ("/128" if ":" in src else "/32"), what)))
    return name, protocol, port, tokens


def _accept(protocol, port, comment, source=None):
    src = "-s %s " % source if source else ""
    if protocol in pm.PORTLESS:
        # by name, as iptables-save prints it (Debian's netbase /etc/protocols: vrrp 112)
        return "%s-p %s -m comment --comment \"%s\" -j ACCEPT" % (src, protocol, comment)
    return "%s-p %s -m %s --dport %s -m comment --comment \"%s\" -j ACCEPT" % (
        src, protocol, protocol, port, comment)


def _base(family, opts):
    rules = ["-i lo -j ACCEPT", "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"]
    limit = opts["ping_limit"]
    if family == "ipv4":
        for icmp in ICMP4_ACCEPT:
            rules.append("-p icmp -m icmp --icmp-type %s -j ACCEPT" % icmp)
        rules.append("-p icmp -m icmp --icmp-type 8 -m limit --limit %s --limit-burst 20 -j ACCEPT" % limit)
    else:
        for icmp in ICMP6_ACCEPT:
            rules.append("-p ipv6-icmp -m icmp6 --icmpv6-type %s -j ACCEPT" % icmp)
        # Neighbour discovery must keep working (conntrack leaves it untracked): only from the
        # link itself (hop limit 255, as RFC 4861 requires).
        for icmp in ICMP6_ND:
            rules.append("-p ipv6-icmp -m icmp6 --icmpv6-type %s -m hl --hl-eq 255 -j ACCEPT" % icmp)
        for icmp in ICMP6_MLD:
            rules.append("-s fe80::/10 -p ipv6-icmp -m icmp6 --icmpv6-type %s -j ACCEPT" % icmp)
        rules.append("-p ipv6-icmp -m icmp6 --icmpv6-type 128 -m limit --limit %s --limit-burst 20 -j ACCEPT"
                     % limit)
    rules.append("-m conntrack --ctstate INVALID -j DROP")
    return rules


def compute(port_map, host, groups, addresses, options=None):
    """Desired iptables state of ``host``; raise :class:`FirewallError` on bad input."""
    opts = dict(DEFAULTS)
    opts.update(dict((k, v) for k, v in (options or {}).items() if v is not None))
    for key in ("input_policy", "forward_policy"):
        if str(opts[key]).upper() not in ("ACCEPT", "DROP"):
            raise FirewallError("firewall_%s: %r is not ACCEPT or DROP" % (key, opts[key]))
    try:
        pmap = pm.validate(port_map, groups)
    except pm.PortMapError as exc:
        raise FirewallError(str(exc))
    if host not in groups.get("all", []):
        raise FirewallError("host %r is not in the inventory" % host)

    def addrs(name):
        found = addresses.get(name) or {}
        if not found.get("ipv4") and not found.get("ipv6"):
            raise FirewallError("host %r has no known address (set hardened_stack_address)" % name)
        return found

    ssh_allow = opts["ssh_allow"] or []
    if not isinstance(ssh_allow, (list, tuple)):
        raise FirewallError("firewall_ssh_allow: must be a list of CIDRs, got %r" % (ssh_allow,))
    allow_nets = []
    for value in ssh_allow:
        net = _network(value, "firewall_ssh_allow")
        if net in allow_nets:
            raise FirewallError("firewall_ssh_allow: duplicate entry %r" % value)
        allow_nets.append(net)
    if opts["ssh_service"] not in pmap:
        raise FirewallError("the port map has no entry %r (the SSH service)" % opts["ssh_service"])

    rules = {"ipv4": _base("ipv4", opts), "ipv6": _base("ipv6", opts)}
    claimed = {}
    for service, entry in sorted(pmap.items()):
        if host not in _sources(entry["listen"], groups, "port map entry '%s'" % service) \
                and pm.ALL not in entry["listen"]:
            continue
        proto, port = entry["protocol"], str(entry["port"])
        claimed[(proto, port)] = "port map entry '%s'" % service
        comment = opts["comment_prefix"] + service
        if pm.ANY in entry["from"]:
            for chain in rules.values():
                chain.append(_accept(proto, port, comment))
            continue
        seen = {"ipv4": set(), "ipv6": set()}
        for src in _sources(entry["from"], groups, "port map entry '%s'" % service):
            found = addrs(src)
            for family in ("ipv4", "ipv6"):
                for address in found.get(family, []):
                    if address in seen[family]:
                        continue
                    seen[family].add(address)
                    mask = 32 if family == "ipv4" else 128
                    rules[family].append(_accept(proto, port, comment, "%s/%d" % (address, mask)))
        if service == opts["ssh_service"]:
            for net in allow_nets:
                fam = _family(net)
                if net.prefixlen == net.max_prefixlen and str(net.network_address) in seen[fam]:
                    continue
                rules[fam].append(_accept(proto, port, opts["comment_prefix"] + "ssh-allow", _fmt(net)))

    names = set()
    extra = opts["extra_rules"] or []
    if not isinstance(extra, (list, tuple)):
        raise FirewallError("firewall_extra_rules: must be a list, got %r" % (extra,))
    for index, rule in enumerate(extra):
        name, proto, port, tokens = _extra(rule, index, groups)
        if name in names:
            raise FirewallError("firewall_extra_rules: duplicate name %r" % name)
        names.add(name)
        key = (proto, port)
        if key in claimed:
            raise FirewallError("firewall_extra_rules '%s': %s/%s conflicts with %s on this host (a "
                                "map entry is changed with _common_port_map_overrides)"
                                % (name, proto, port, claimed[key]))
        claimed[key] = "firewall_extra_rules '%s'" % name
        comment = opts["comment_prefix"] + name
        seen = {"ipv4": set(), "ipv6": set()}
        for kind, value in tokens:
            if kind == "group" and value == pm.ANY:
                for chain in rules.values():
                    chain.append(_accept(proto, port, comment))
                continue
            if kind == "net":
                fam, src = _family(value), _fmt(value)
                if src not in seen[fam]:
                    seen[fam].add(src)
                    rules[fam].append(_accept(proto, port, comment, src))
                continue
            for member in _sources([value], groups, "firewall_extra_rules '%s'" % name):
                found = addrs(member)
                for family in ("ipv4", "ipv6"):
                    mask = 32 if family == "ipv4" else 128
                    for address in found.get(family, []):
                        src = "%s/%d" % (address, mask)
                        if src not in seen[family]:
                            seen[family].add(src)
                            rules[family].append(_accept(proto, port, comment, src))

    input_policy = str(opts["input_policy"]).upper()
    out = {}
    for family in ("ipv4", "ipv6"):
        chain = list(rules[family])
        if input_policy == "DROP":
            if opts["log_drops"]:
                chain.append('-m limit --limit %s --limit-burst 10 -j LOG --log-prefix "%s"'
                             % (opts["log_limit"], opts["log_prefix"]))
            chain.append("-j DROP")
        out[family] = {"chains": {CHAIN: chain},
                       "policies": {"INPUT": input_policy,
                                    "FORWARD": str(opts["forward_policy"]).upper()},
                       "jumps": {"INPUT": [CHAIN]}}
    return out


def _service_entry(port_map, service, groups):
    """The validated port map entry of ``service`` (FirewallError when the map is bad or has
    no such entry)."""
    try:
        pmap = pm.validate(port_map, groups)
    except pm.PortMapError as exc:
        raise FirewallError(str(exc))
    if service not in pmap:
        raise FirewallError("the port map has no entry %r" % service)
    return pmap[service]


def sources_hosts(port_map, service, groups):
    """Inventory hosts of the ``from`` groups of the port map ``service`` (none for ``any``)."""
    entry = _service_entry(port_map, service, groups)
    return _sources(entry["from"], groups, "port map entry '%s'" % service)


def sources(port_map, service, groups, addresses):
    """Source networks the firewall admits to ``service``, for a second gate in the service
    itself (e.g. nginx ``allow``): ``["any"]`` when the port map opens it to the world, else
    one ``/32`` or ``/128`` per address of every host of its ``from`` groups (the addresses
    :func:`compute` uses). Raise :class:`FirewallError` on bad input."""
    entry = _service_entry(port_map, service, groups)
    if pm.ANY in entry["from"]:
        return [pm.ANY]
    out = []
    for src in _sources(entry["from"], groups, "port map entry '%s'" % service):
        found = addresses.get(src) or {}
        if not found.get("ipv4") and not found.get("ipv6"):
            raise FirewallError("host %r has no known address (set hardened_stack_address)" % src)
        for family, mask in (("ipv4", 32), ("ipv6", 128)):
            for address in found.get(family, []):
                net = "%s/%d" % (address, mask)
                if net not in out:
                    out.append(net)
    return out


def admits(desired, address, port, protocol="tcp", chain=CHAIN):
    """Would ``desired`` (one host's :func:`compute` result) accept a new connection from
    ``address`` to ``port``? Reads the rules this module renders (source, protocol, port); for a
    portless protocol of the port map (``vrrp``) ``port`` is ignored."""
    addr = ipaddress.ip_address(str(address).strip())
    family = "ipv4" if addr.version == 4 else "ipv6"
    state = desired.get(family) or {}
    if state.get("policies", {}).get("INPUT", "ACCEPT") == "ACCEPT" and \
            "-j DROP" not in state.get("chains", {}).get(chain, []):
        return True
    for rule in state.get("chains", {}).get(chain, []):
        tokens = rule.split()
        if not rule.endswith("-j ACCEPT") or "-p" not in tokens:
            continue
        if protocol in pm.PORTLESS:
            # a portless protocol (VRRP): ``port`` is not used
            if tokens[tokens.index("-p") + 1] not in (protocol, str(pm.PORTLESS[protocol])):
                continue
            if "-s" in tokens and addr not in ipaddress.ip_network(tokens[tokens.index("-s") + 1]):
                continue
            return True
        if "--dport" not in tokens or tokens[tokens.index("-p") + 1] != protocol:
            continue
        spec = tokens[tokens.index("--dport") + 1]
        lo, hi = (spec.split(":", 1) + [""])[:2]
        if not int(lo) <= int(port) <= int(hi or lo):
            continue
        if "-s" in tokens and addr not in ipaddress.ip_network(tokens[tokens.index("-s") + 1]):
            continue
        return True
    return False
