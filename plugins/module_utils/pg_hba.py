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

A host's lines carry every address the address model (module_utils/address.py) knows for it
(``cluster_addresses``): a dual-stack host gets a ``/32`` and a ``/128`` line, a DNS name is
resolved on the controller (an error naming the host when it does not resolve).

Order (PostgreSQL uses the FIRST line whose type, database, user and address match; a later
line never sees that connection):

1. the role's own local lines: ``local all <superuser> peer``, ``local replication
   <superuser> peer`` and Patroni's loopback replication line;
2. *restricting* extras: every extra whose method is ``reject``, and every extra with
   ``position: first``, in the order of the extra list;
3. the generated lines (members, application roles, monitoring roles);
4. every other extra (``position: last``, the default for a non-reject method), in list order.

So a ``reject`` extra for a host wins over the generated allow for that host. An extra that
can never match because an earlier line matches every connection it would (``shadowed``) is
reported with the line that shadows it; the role refuses it in preflight.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.hardened.stack.plugins.module_utils import address as am

FORBIDDEN_METHODS = ("trust", "md5", "password", "ident")
APP_GROUPS = ("app", "loadbalancers")
MONITORING_GROUPS = ("monitoring",)
MEMBER_GROUP = "postgres"
POSITIONS = ("first", "last")
EXTRA_NAME = "postgresql_pg_hba_extra"

# Connection classes each line type matches: a unix socket, or a TCP connection that is
# SSL-encrypted, GSSAPI-encrypted or plain (never both SSL and GSS).
_CLASSES = {
    "local": frozenset(["local"]),
    "host": frozenset(["ssl", "gss", "plain"]),
    "hostssl": frozenset(["ssl"]),
    "hostnossl": frozenset(["gss", "plain"]),
    "hostgssenc": frozenset(["gss"]),
    "hostnogssenc": frozenset(["ssl", "plain"]),
}
_DB_KEYWORDS = ("all", "sameuser", "samerole", "samegroup", "replication")
_USER_KEYWORDS = ("all",)
_ADDRESS_KEYWORDS = ("all", "samehost", "samenet")


class PgHbaError(ValueError):
    """The inputs cannot give a safe pg_hba; the message says which value is wrong."""


def _ip(value):
    try:
        return ipaddress.ip_address(u"%s" % value)
    except ValueError:
        return None


def _network(value):
    """``ip_network`` of a CIDR (host bits allowed, as PostgreSQL does), else ``None``."""
    text = u"%s" % value
    if "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _cidrs(host, hostvars, resolver=None):
    """Every ``/32`` and ``/128`` of an inventory host, from the address model."""
    try:
        return [am.host_cidr(a) for a in am.cluster_addresses(host, hostvars, resolver)]
    except am.AddressError as exc:
        raise PgHbaError("pg_hba: %s" % exc)


def _hosts(groups, names):
    out = set()
    for name in names:
        out.update(groups.get(name, []) or [])
    return sorted(out)


def _line(kind, database, user, address, method):
    return {"type": kind, "database": database, "user": user, "address": address, "method": method}


def _method(rule):
    return (u"%s" % (rule.get("method") or "")).split()[0] if (rule.get("method") or "").strip() else ""


def _extra_rule(index, rule):
    """The rule dict of ``extra[index]`` and its position (``first`` or ``last``)."""
    if not isinstance(rule, dict):
        raise PgHbaError("%s[%d] must be a dict (type, database, user, address, method), not %r"
                         % (EXTRA_NAME, index, rule))
    missing = [k for k in ("database", "user") if not rule.get(k)]
    if missing:
        raise PgHbaError("%s[%d] %r has no %s" % (EXTRA_NAME, index, rule, " or ".join(missing)))
    line = _line(rule.get("type") or "hostssl", u"%s" % rule["database"], u"%s" % rule["user"],
                 u"%s" % (rule.get("address") or ""), rule.get("method") or "scram-sha-256")
    position = rule.get("position")
    if position in (None, ""):
        position = "first" if _method(line) == "reject" else "last"
    if position not in POSITIONS:
        raise PgHbaError("%s[%d]: position must be first or last, not %r" % (EXTRA_NAME, index, position))
    return line, position


def ordered(port_map, groups, hostvars, replication_user, superuser="postgres", rewind_user=None,
            app_roles=None, monitoring_roles=None, extra=None, service="postgresql",
            members_group=MEMBER_GROUP, resolver=None):
    """The rules in pg_hba order as ``(rule, origin)`` pairs: ``origin`` is ``None`` for a
    generated line and the index in ``extra`` for an extra (see the module doc for the order)."""
    if service not in port_map:
        raise PgHbaError("the port map has no '%s' service" % service)
    allowed = set(port_map[service].get("from") or [])
    if not replication_user:
        raise PgHbaError("a replication user name is required")
    head = [
        _line("local", "all", superuser, "", "peer"),
        _line("local", "replication", superuser, "", "peer"),
        # Patroni checks its own replication connection over loopback (not a remote line).
        _line("host", "replication", replication_user, "127.0.0.1/32", "scram-sha-256"),
    ]
    generated = []
    if MEMBER_GROUP in allowed:
        for host in _hosts(groups, [members_group]):
            for cidr in _cidrs(host, hostvars, resolver):
                generated.append(_line("hostssl", "replication", replication_user, cidr, "scram-sha-256"))
                if rewind_user:
                    generated.append(_line("hostssl", "postgres", rewind_user, cidr, "scram-sha-256"))
    app_hosts = _hosts(groups, [g for g in APP_GROUPS if g in allowed])
    for role in app_roles or []:
        dbs = ",".join(role.get("databases") or [role["name"]])
        for host in app_hosts:
            for cidr in _cidrs(host, hostvars, resolver):
                generated.append(_line("hostssl", dbs, role["name"], cidr, "scram-sha-256"))
    mon_hosts = _hosts(groups, [g for g in MONITORING_GROUPS if g in allowed])
    for role in monitoring_roles or []:
        dbs = ",".join(role.get("databases") or ["postgres"])
        for host in mon_hosts:
            for cidr in _cidrs(host, hostvars, resolver):
                generated.append(_line("hostssl", dbs, role["name"], cidr, "scram-sha-256"))
    unique = []
    for rule in generated:
        if rule not in unique:
            unique.append(rule)
    first, last = [], []
    for index, rule in enumerate(extra or []):
        line, position = _extra_rule(index, rule)
        (first if position == "first" else last).append((line, index))
    out = ([(r, None) for r in head] + first + [(r, None) for r in unique] + last)
    check([r for r, _origin in out])
    return out


def rules(port_map, groups, hostvars, replication_user, superuser="postgres", rewind_user=None,
          app_roles=None, monitoring_roles=None, extra=None, service="postgresql",
          members_group=MEMBER_GROUP, resolver=None):
    """Return the pg_hba rules as a list of dicts (type, database, user, address, method), in
    the order of the module doc.

    ``app_roles`` is a list of ``{"name": role, "databases": [db, ...]}``; so is
    ``monitoring_roles``. ``extra`` are user rules in the same dict form plus an optional
    ``position`` (``first``: before the generated lines; ``last``: after them; default
    ``first`` for ``method: reject``, else ``last``), checked for forbidden methods.
    ``members_group`` is the inventory group of this cluster's members (the port map's
    ``postgres`` stands for "the members"). ``resolver`` replaces ``socket.getaddrinfo``
    for DNS names (tests).
    """
    return [rule for rule, _origin in ordered(
        port_map, groups, hostvars, replication_user, superuser=superuser, rewind_user=rewind_user,
        app_roles=app_roles, monitoring_roles=monitoring_roles, extra=extra, service=service,
        members_group=members_group, resolver=resolver)]


def _tokens(field, keywords):
    """``(kind, value)`` of each comma-separated token: kind ``kw`` for an unquoted keyword,
    ``opaque`` for an ``@file`` inclusion, ``name`` otherwise (quoted names are names)."""
    out = []
    for raw in (u"%s" % field).split(","):
        token = raw.strip()
        if len(token) >= 2 and token[0] == token[-1] == '"':
            out.append(("name", token[1:-1]))
        elif token in keywords:
            out.append(("kw", token))
        elif token.startswith("@"):
            out.append(("opaque", token))
        else:
            out.append(("name", token))
    return out


def _database_covers(earlier, later):
    """True when every database (or physical replication) connection the ``later``
    database field matches is also matched by the ``earlier`` one. ``all`` does not match a
    physical replication connection, which only ``replication`` matches."""
    first = _tokens(earlier, _DB_KEYWORDS)
    has_all = ("kw", "all") in first
    for token in _tokens(later, _DB_KEYWORDS):
        if token in first:
            continue
        if token in (("kw", "replication"), ("kw", "all")) or token[0] == "opaque":
            # An @file may list `replication`: only the same inclusion covers it.
            return False
        if not has_all:
            return False
    return True


def _user_covers(earlier, later):
    first = _tokens(earlier, _USER_KEYWORDS)
    if ("kw", "all") in first:
        return True
    return all(token in first for token in _tokens(later, _USER_KEYWORDS))


def _address_covers(earlier, later):
    """True when every client address the ``later`` address field matches is matched by the
    ``earlier`` one (a CIDR only matches its own IP version)."""
    first, second = (u"%s" % earlier).strip(), (u"%s" % later).strip()
    if first.lower() == "all":
        return True
    if second.lower() == "all":
        return False
    net1, net2 = _network(first), _network(second)
    if net1 is not None and net2 is not None:
        return net1.version == net2.version and net2.subnet_of(net1)
    if net1 is not None or net2 is not None:
        return False
    first, second = first.lower(), second.lower()
    if first == second:
        return True
    # `.example.net` matches every host name ending with it.
    return (first.startswith(".") and second not in _ADDRESS_KEYWORDS
            and not second.startswith(".") and second.endswith(first))


def covers(earlier, later):
    """True when the ``earlier`` rule matches every connection the ``later`` rule would match,
    so that PostgreSQL (first match wins) never reaches ``later``. Conservative: only what
    can be proved from the two lines counts (an ``@file`` or a regular expression is
    compared as written)."""
    kinds1, kinds2 = _CLASSES.get(earlier["type"]), _CLASSES.get(later["type"])
    if kinds1 is None or kinds2 is None or not kinds2 <= kinds1:
        return False
    if not _database_covers(earlier["database"], later["database"]):
        return False
    if not _user_covers(earlier["user"], later["user"]):
        return False
    if later["type"] == "local":
        return True
    return _address_covers(earlier["address"], later["address"])


def shadowed(ordered_rules):
    """``(index, rule, earlier_rule, earlier_origin)`` for every extra (origin not ``None``)
    that an earlier line shadows, from the pairs :func:`ordered` returns."""
    found = []
    for pos, (rule, origin) in enumerate(ordered_rules):
        if origin is None:
            continue
        for earlier, earlier_origin in ordered_rules[:pos]:
            if covers(earlier, rule):
                found.append((origin, rule, earlier, earlier_origin))
                break
    return found


def shadowed_messages(ordered_rules, name=EXTRA_NAME):
    """One message per shadowed extra: both lines, ``name[i]`` and what to do."""
    def one(rule):
        return " ".join(render([rule])[0].split())

    out = []
    for index, rule, earlier, earlier_origin in shadowed(ordered_rules):
        where = ("the generated line" if earlier_origin is None
                 else "%s[%d]" % (name, earlier_origin))
        out.append(
            "%s[%d] '%s' can never match: %s '%s' comes before it and matches every connection "
            "it would (PostgreSQL uses the first matching pg_hba line). Remove it, narrow the "
            "earlier line, or order them: extras with method reject or position: first go before "
            "the generated lines, the others after them, each group in list order."
            % (name, index, one(rule), where, one(earlier)))
    return out


def _check_address(rule):
    address = (u"%s" % (rule.get("address") or "")).strip()
    text = render([rule])[0]
    if not address or len(address.split()) != 1:
        raise PgHbaError("pg_hba rule %r: a %s line needs one address (a CIDR such as "
                         "10.0.0.5/32, all, samehost, samenet or a host name)" % (text, rule["type"]))
    if address.lower() in _ADDRESS_KEYWORDS or _network(address) is not None:
        return
    if "/" in address:
        raise PgHbaError("pg_hba rule %r: '%s' is not a valid CIDR" % (text, address))
    ip = am.parse_ip(address)
    if ip is not None:
        raise PgHbaError("pg_hba rule %r: '%s' has no prefix length; write %s"
                         % (text, address, am.host_cidr(address)))
    if not am.is_name(address.lstrip(".")):
        raise PgHbaError("pg_hba rule %r: '%s' is neither a CIDR nor a host name" % (text, address))


def check(rule_list):
    """Refuse unsafe rules: forbidden methods, remote lines that are not hostssl, and remote
    lines without a usable address."""
    for rule in rule_list:
        method = _method(rule)
        if not method:
            raise PgHbaError("pg_hba rule %r has no method" % render([rule])[0])
        if method in FORBIDDEN_METHODS:
            raise PgHbaError("pg_hba rule %r uses '%s': only scram-sha-256, cert, peer or reject "
                             "are allowed" % (render([rule])[0], method))
        if rule["type"] not in ("local", "hostssl", "host"):
            raise PgHbaError("pg_hba rule %r: type must be local, host or hostssl" % render([rule])[0])
        if rule["type"] != "local":
            _check_address(rule)
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
