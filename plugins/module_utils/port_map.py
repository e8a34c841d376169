# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stack's port map: pure functions shared by filters, modules and tests.

A port map is a dict ``{service: entry}``; an entry is::

    {"port": 5432,                 # 1..65535
     "protocol": "tcp",            # tcp | udp | vrrp (IP protocol 112: no port, none given)
     "listen": ["postgres"],       # inventory groups whose hosts run the service ("all" = every host)
     "from": ["app", "monitoring"],# inventory groups that may connect; "any" = the whole world
     "description": "..."}         # optional

Nothing else in the collection declares a port: roles, the firewall, Prometheus and the
README diagram all read this structure.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The inventory contract (README): these groups may be absent from an inventory that does
# not deploy that tier; any other group the map names must exist.
CONTRACT_GROUPS = ("loadbalancers", "app", "etcd", "postgres", "redis", "monitoring", "backup")
ANY = "any"
ALL = "all"
PROTOCOLS = ("tcp", "udp", "vrrp")
# Protocols without ports, and their IP protocol numbers (what the firewall matches): an entry
# of one of them gives no port; validate() normalises its port to None.
PORTLESS = {"vrrp": 112}
REQUIRED_KEYS = ("protocol", "listen", "from")
OPTIONAL_KEYS = ("port", "description")


class PortMapError(ValueError):
    """The port map (or the inventory it refers to) is wrong; the message names the value."""


def _as_list(service, key, value):
    if isinstance(value, (list, tuple)):
        return list(value)
    raise PortMapError("port map entry '%s': '%s' must be a list of group names, got %r"
                       % (service, key, value))


def validate(port_map, groups=None):
    """Check a port map; return a normalised copy.

    ``groups`` is the inventory's ``groups`` dict; when given, every group the map names
    must exist in it or be one of the contract groups (a tier the inventory does not deploy);
    anything else is a typo.
    """
    if not isinstance(port_map, dict) or not port_map:
        raise PortMapError("the port map must be a non-empty dict of service -> entry")
    known = set(groups or {}) | {ALL, ANY} | set(CONTRACT_GROUPS)
    seen = {}
    out = {}
    for service in sorted(port_map):
        entry = port_map[service]
        if not isinstance(entry, dict):
            raise PortMapError("port map entry '%s' must be a dict, got %r" % (service, entry))
        unknown = sorted(set(entry) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
        if unknown:
            raise PortMapError("port map entry '%s': unknown key(s) %s" % (service, ", ".join(unknown)))
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        if missing:
            raise PortMapError("port map entry '%s': missing key(s) %s" % (service, ", ".join(missing)))
        protocol = entry["protocol"]
        if protocol not in PROTOCOLS:
            raise PortMapError("port map entry '%s': protocol %r is not one of %s"
                               % (service, protocol, ", ".join(PROTOCOLS)))
        port = entry.get("port")
        if protocol in PORTLESS:
            if port is not None:
                raise PortMapError("port map entry '%s': protocol %s (IP protocol %d) has no port, got %r"
                                   % (service, protocol, PORTLESS[protocol], port))
        elif "port" not in entry:
            raise PortMapError("port map entry '%s': missing key(s) port" % service)
        elif isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            try:
                port = int(port)
            except (TypeError, ValueError):
                port = -1
            if not 1 <= port <= 65535 or isinstance(entry["port"], bool):
                raise PortMapError("port map entry '%s': port %r is not in 1..65535"
                                   % (service, entry["port"]))
        listen = _as_list(service, "listen", entry["listen"])
        sources = _as_list(service, "from", entry["from"])
        if not listen:
            raise PortMapError("port map entry '%s': 'listen' names no group" % service)
        if ANY in listen:
            raise PortMapError("port map entry '%s': 'listen' cannot be '%s'" % (service, ANY))
        if groups is not None:
            for group in listen + sources:
                if group not in known:
                    raise PortMapError("port map entry '%s' names group '%s', which is not in the "
                                       "inventory" % (service, group))
        key = (port, protocol)
        for group in listen:
            other = seen.get((key, group))
            if other:
                raise PortMapError("port map entries '%s' and '%s' both claim %s on group '%s'"
                                   % (other, service, label(protocol, port), group))
            seen[(key, group)] = service
        out[service] = {"port": port, "protocol": protocol, "listen": listen,
                        "from": sources, "description": entry.get("description", "")}
    return out


def label(protocol, port):
    """``tcp/5432``, or the protocol alone for a portless one (``vrrp``)."""
    return protocol if port is None else "%s/%d" % (protocol, port)


def hosts_of(groups, names):
    """Hosts in any of the groups ``names`` (``all`` = every host), sorted, no duplicates."""
    hosts = set()
    for name in names:
        if name == ALL:
            hosts.update(groups.get("all", []))
        elif name != ANY:
            hosts.update(groups.get(name, []))
    return sorted(hosts)


def services_on(port_map, host, groups):
    """The services (name -> entry) whose ``listen`` groups include ``host``."""
    return dict((name, entry) for name, entry in sorted(port_map.items())
                if host in hosts_of(groups, entry["listen"]))


def edges(port_map, groups):
    """Who talks to whom: one dict per (service, source group) for diagrams and docs."""
    rows = []
    for name, entry in sorted(port_map.items()):
        for src in entry["from"] or ["(nobody)"]:
            rows.append({"service": name, "port": entry["port"], "protocol": entry["protocol"],
                         "from": src, "to": ",".join(entry["listen"])})
    return rows
