# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_hba.conf rules derived from the inventory and the port map (pure functions).

Who may connect is decided by the port map's ``postgresql.from`` groups and by what each
group is for:

* replication (and pg_rewind's connection) only between the members of the cluster, plus
  ``host replication <repl user> 127.0.0.1/32`` (a Patroni replica checks its own
  replication connection over loopback; without it a leader loss can end with no leader);
* application roles only from the ``app`` hosts and the load balancers that proxy them;
* the monitoring role only from the ``monitoring`` hosts;
* every remote line is ``hostssl ... scram-sha-256``; local lines use ``peer``.
  ``trust``, ``md5`` and ``password`` are never produced (and refused in extra rules).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

FORBIDDEN_METHODS = ("trust", "md5", "password", "ident")
APP_GROUPS = ("app", "loadbalancers")
MONITORING_GROUPS = ("monitoring",)
MEMBER_GROUP = "postgres"


class PgHbaError(ValueError):
    """The inputs cannot give a safe pg_hba; the message says which value is wrong."""


def _ip(value):
    try:
        return ipaddress.ip_address(u"%s" % value)
    except ValueError:
        return None


def host_cidr(host, hostvars):
    """The /32 (or /128) of an inventory host: ansible_host when it is an address, else the
    default IPv4 address from gathered facts."""
    hv = hostvars.get(host, {}) if hasattr(hostvars, "get") else hostvars[host]
    candidates = [hv.get("ansible_host")]
    facts = hv.get("ansible_facts") or {}
    candidates.append((facts.get("default_ipv4") or {}).get("address"))
    candidates.append(hv.get("ansible_default_ipv4", {}).get("address") if isinstance(
        hv.get("ansible_default_ipv4"), dict) else None)
    for cand in candidates:
        ip = _ip(cand) if cand else None
        if ip is not None:
            return "%s/%d" % (ip.compressed, 32 if ip.version == 4 else 128)
    raise PgHbaError("host '%s' has no IP address: set ansible_host to an address or gather its "
                     "facts before rendering pg_hba" % host)


def _hosts(groups, names):
    out = set()
    for name in names:
        out.update(groups.get(name, []) or [])
    return sorted(out)


def _line(kind, database, user, address, method):
    return {"type": kind, "database": database, "user": user, "address": address, "method": method}


def rules(port_map, groups, hostvars, replication_user, superuser="postgres", rewind_user=None,
          app_roles=None, monitoring_roles=None, extra=None, service="postgresql", members_group=MEMBER_GROUP):
    """Return the pg_hba rules as a list of dicts (type, database, user, address, method).

    ``app_roles`` is a list of ``{"name": role, "databases": [db, ...]}``; so is
    ``monitoring_roles``. ``extra`` are user rules in the same dict form, appended after the
    generated ones and checked for forbidden methods. ``members_group`` is the inventory group
    of this cluster's members (the port map's ``postgres`` stands for "the members").
    """
    if service not in port_map:
        raise PgHbaError("the port map has no '%s' service" % service)
    allowed = set(port_map[service].get("from") or [])
    if not replication_user:
        raise PgHbaError("a replication user name is required")
    members = _hosts(groups, [members_group])
    out = [
        _line("local", "all", superuser, "", "peer"),
        _line("local", "replication", superuser, "", "peer"),
        # Patroni checks its own replication connection over loopback (not a remote line).
        _line("host", "replication", replication_user, "127.0.0.1/32", "scram-sha-256"),
    ]
    if MEMBER_GROUP in allowed:
        for host in members:
            cidr = host_cidr(host, hostvars)
            out.append(_line("hostssl", "replication", replication_user, cidr, "scram-sha-256"))
            if rewind_user:
                out.append(_line("hostssl", "postgres", rewind_user, cidr, "scram-sha-256"))
    app_hosts = _hosts(groups, [g for g in APP_GROUPS if g in allowed])
    for role in app_roles or []:
        dbs = ",".join(role.get("databases") or [role["name"]])
        for host in app_hosts:
            out.append(_line("hostssl", dbs, role["name"], host_cidr(host, hostvars), "scram-sha-256"))
    mon_hosts = _hosts(groups, [g for g in MONITORING_GROUPS if g in allowed])
    for role in monitoring_roles or []:
        dbs = ",".join(role.get("databases") or ["postgres"])
        for host in mon_hosts:
            out.append(_line("hostssl", dbs, role["name"], host_cidr(host, hostvars), "scram-sha-256"))
    for rule in extra or []:
        out.append(_line(rule.get("type", "hostssl"), rule["database"], rule["user"],
                         rule.get("address", ""), rule.get("method", "scram-sha-256")))
    check(out)
    return out


def check(rule_list):
    """Refuse unsafe rules: forbidden methods, and remote lines that are not hostssl."""
    for rule in rule_list:
        method = rule["method"].split()[0]
        if method in FORBIDDEN_METHODS:
            raise PgHbaError("pg_hba rule %r uses '%s': only scram-sha-256, cert, peer or reject "
                             "are allowed" % (render([rule])[0], method))
        if rule["type"] not in ("local", "hostssl", "host"):
            raise PgHbaError("pg_hba rule %r: type must be local, host or hostssl" % render([rule])[0])
        if rule["type"] == "host" and method != "reject":
            ip = _ip(rule["address"].split("/")[0]) if rule["address"] else None
            if ip is None or not ip.is_loopback:
                raise PgHbaError("pg_hba rule %r: remote lines must be hostssl" % render([rule])[0])
    return True


def render(rule_list):
    """pg_hba.conf lines (strings) of the rules, columns aligned."""
    lines = []
    for r in rule_list:
        address = r["address"] if r["type"] != "local" else ""
        lines.append("%-8s %-24s %-20s %-20s %s" % (r["type"], r["database"], r["user"], address, r["method"]))
    return [line.rstrip() for line in lines]
