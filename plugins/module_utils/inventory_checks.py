# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory-wide checks run by the site preflight before any host is touched.

Pure functions over plain data (the inventory's ``groups``, each host's user-set variables,
the port map), so every defect can be unit-tested and each message names the host or group,
the variable and the fix. Checks that need facts (memory, release) stay in each role's own
``preflight.yml``, which the site preflight also runs before any change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import os
import re

from ansible_collections.hardened.stack.plugins.module_utils import address as am
from ansible_collections.hardened.stack.plugins.module_utils import encode
from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm
from ansible_collections.hardened.stack.plugins.module_utils import secrets as sm

# Passwords that must never reach a production inventory: vendor defaults, the usual guesses
# and the placeholders of inventories/example.
WEAK_PASSWORDS = frozenset((
    "", "admin", "changeme", "change-me", "changeit", "default", "letmein", "pass", "passw0rd",
    "password", "password1", "postgres", "qwerty", "redis", "root", "secret", "test", "welcome",
    "123456", "12345678", "replace-me", "replace-me-from-vault", "example", "demo",
))
# Below this length a given password is refused outside the lab.
MIN_PASSWORD_LENGTH = 12
# Variables whose names end like this carry a secret.
SECRET_SUFFIXES = ("_password", "_passphrase", "_secret", "_token")
# Secrets whose names end otherwise.
SECRET_NAMES = ("backup_repo_cipher_pass",)
# The secrets each role needs when its generate switch is false: role -> (the groups the site
# playbook applies it to, the switch, the variables). An entry is a variable name, or
# "VARIABLE[].FIELD" for every item of a list of mappings (the item's FIELD). One table for the
# inventory check below and for every role's own preflight (the required_secret_problems filter),
# so the switches, the names and the message exist once. prometheus_auth_password and
# alertmanager_auth_password (and their switches) default to the exporters role's.
REQUIRED_SECRETS = {
    "postgresql": (("postgres",), "postgresql_generate_passwords",
                   ("postgresql_superuser_password", "postgresql_replication_password",
                    "postgresql_rewind_password", "postgresql_patroni_api_password", "postgresql_users[].password")),
    "redis": (("redis",), "redis_generate_passwords",
              ("redis_app_password", "redis_replication_password", "redis_sentinel_password",
               "redis_exporter_password", "redis_admin_password")),
    "exporters": (("all",), "exporters_generate_passwords", ("exporters_auth_password",)),
    "prometheus": (("monitoring",), "prometheus_generate_passwords", ("prometheus_auth_password",)),
    "alertmanager": (("monitoring",), "alertmanager_generate_passwords", ("alertmanager_auth_password",)),
    # the backup role runs on the repository host and on the PostgreSQL members (the pg_dump role)
    "backup": (("backup", "postgres"), "backup_generate_passwords",
               ("backup_repo_cipher_pass", "backup_pg_dump_password")),
}
# Groups Ansible itself defines.
BUILTIN_GROUPS = ("all", "ungrouped")


class Unresolved(object):
    """A value Ansible could not template for a host (the preflight filter puts this marker in
    its place): unresolved_checks names the variable, and no other check reads it (a check that
    meets one skips what depends on it rather than judging a value it does not know)."""

    def __init__(self, undefined=None, pending=False):
        self.undefined = undefined  # the undefined name the template uses, when Ansible said it
        # a hardened.stack.secret lookup of a secret the run has not produced yet: resolved when a
        # role uses it, after its producer ran (not reported, still not judged)
        self.pending = pending

    def __repr__(self):
        return "<unresolved>"


def _unknown(*values):
    """True when one of ``values`` is a value Ansible could not template (Unresolved)."""
    return any(isinstance(value, Unresolved) for value in values)


def _members(groups, name):
    return list(groups.get(name) or [])


# A role default that only names another variable: "{{ exporters_auth_password | default('') }}".
_ALIAS = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\|\s*default\((.*)\)\s*\}\}$")
_LITERALS = {"''": "", '""': "", "true": True, "True": True, "false": False, "False": False}


def _value(hostvars, defaults, host, name, _seen=()):
    """A host's value for ``name``: what the inventory sets, else the role default. A default
    that is another variable (``{{ other | default(x) }}``) is that variable's value for the
    host (or ``x``), as Ansible would render it."""
    hv = hostvars.get(host) or {}
    if name in hv:
        return hv[name]
    value = defaults.get(name)
    match = _ALIAS.match(value) if isinstance(value, str) else None
    if match is None or match.group(1) in _seen + (name,):
        return value
    other = match.group(1)
    if other in hv or other in defaults:
        return _value(hostvars, defaults, host, other, _seen + (name,))
    literal = match.group(2).strip()
    return _LITERALS.get(literal, literal.strip("'\""))


def _is_true(value):
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _is_false(value):
    if isinstance(value, bool):
        return not value
    return str(value).strip().lower() in ("0", "false", "no", "off", "n", "f")


def _as_int(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def group_checks(groups, hostvars, defaults):
    """Sizes, parity and quorum of the tiers, and groups that are needed together."""
    out = []
    etcd = _members(groups, "etcd")
    postgres = _members(groups, "postgres")
    redis = _members(groups, "redis")
    app = _members(groups, "app")
    lbs = _members(groups, "loadbalancers")
    backup = _members(groups, "backup")
    if etcd and len(etcd) % 2 == 0:
        out.append("group 'etcd': %d members (%s); etcd needs an odd count (1, 3 or 5) to keep a "
                   "quorum. Fix: add or remove one etcd member." % (len(etcd), ", ".join(etcd)))
    if postgres and not etcd:
        out.append("group 'postgres': %d host(s) but group 'etcd' is empty; Patroni keeps its leader "
                   "lock in etcd. Fix: add 3 hosts to 'etcd' (they may be the postgres hosts)."
                   % len(postgres))
    if redis:
        first = redis[0]
        sentinel = _is_true(_value(hostvars, defaults, first, "redis_sentinel_enabled"))
        fewer_ok = _is_true(_value(hostvars, defaults, first, "redis_sentinel_allow_fewer_than_three"))
        quorum = _as_int(_value(hostvars, defaults, first, "redis_sentinel_quorum"), 0)
        master = _value(hostvars, defaults, first, "redis_initial_master")
        if _unknown(*(_value(hostvars, defaults, first, name) for name in (
                "redis_sentinel_enabled", "redis_sentinel_allow_fewer_than_three", "redis_sentinel_quorum"))):
            sentinel = False  # unresolved (unresolved_checks names it): no conclusion about Sentinel
        if sentinel and len(redis) < 3 and not fewer_ok:
            out.append("group 'redis': %d Sentinel(s) (%s); Sentinel needs at least 3 to survive the "
                       "loss of one. Fix: add hosts to 'redis' (or set "
                       "redis_sentinel_allow_fewer_than_three: true for a test setup)."
                       % (len(redis), ", ".join(redis)))
        if sentinel and quorum is not None and quorum > len(redis):
            out.append("%s: redis_sentinel_quorum is %d but group 'redis' has only %d Sentinel(s); no "
                       "failover could ever be agreed. Fix: set redis_sentinel_quorum to at most %d "
                       "(0 = a majority)." % (first, quorum, len(redis), len(redis)))
        if sentinel and quorum is not None and quorum < 0:
            out.append("%s: redis_sentinel_quorum is %d. Fix: use 0 (a majority) or a positive count."
                       % (first, quorum))
        if master and not _unknown(master) and master not in redis:
            out.append("%s: redis_initial_master '%s' is not a host of group 'redis' (%s). Fix: name "
                       "one of them or leave it empty (the first host)." % (first, master, ", ".join(redis)))
    if lbs and not app:
        out.append("group 'loadbalancers' (%s) has no 'app' hosts to send traffic to: the nginx "
                   "upstream would be empty. Fix: add the application servers to group 'app'."
                   % ", ".join(lbs))
    if app and postgres and not lbs:
        out.append("group 'app' reaches PostgreSQL through the HAProxy endpoints on "
                   "'loadbalancers', and that group is empty. Fix: add a load balancer host.")
    if backup:
        if not postgres:
            out.append("group 'backup' (%s) has nothing to back up: group 'postgres' is empty. Fix: "
                       "remove the backup group or add the database hosts." % ", ".join(backup))
        if len(backup) > 1:
            out.append("group 'backup' has %d hosts (%s); the pgBackRest repository lives on exactly "
                       "one. Fix: keep one host in 'backup'." % (len(backup), ", ".join(backup)))
        for host in backup:
            if host in postgres:
                out.append("%s: is both the backup repository and a PostgreSQL member; losing it would "
                           "lose the data and its backups together. Fix: put the 'backup' group on "
                           "another host." % host)
    return out


def contract_checks(groups):
    """Inventory groups that look like a misspelt contract group."""
    out = []
    for name in sorted(groups):
        if name in pm.CONTRACT_GROUPS or name in BUILTIN_GROUPS:
            continue
        close = difflib.get_close_matches(name, pm.CONTRACT_GROUPS, n=1, cutoff=0.75)
        if close and not _members(groups, close[0]):
            out.append("group '%s' is not part of the inventory contract and group '%s' is empty; "
                       "nothing would be deployed on %s. Fix: rename the group to '%s'."
                       % (name, close[0], ", ".join(_members(groups, name)) or "its hosts", close[0]))
    return out


# Variables the address model replaced: each used to be a second answer to "what is this
# host's address". Set anywhere, they would be silently ignored; refuse them instead.
RETIRED_ADDRESS_VARS = ("redis_address", "exporters_listen_address", "prometheus_listen_address",
                        "alertmanager_listen_address", "app_bind_address", "firewall_host_addresses")


def address_checks(groups, hostvars, resolver=None):
    """Every host has a usable, unique cluster address (the address model, module_utils/address),
    and no retired address variable is set."""
    out = []
    seen = {}
    for host in _members(groups, "all"):
        hv = hostvars.get(host) or {}
        for name in RETIRED_ADDRESS_VARS:
            if hv.get(name) not in (None, "", {}, []):
                out.append("%s: %s is retired; every service binds and is dialled on the host's cluster "
                           "address. Fix: remove it and set %s (see docs/addresses.md)."
                           % (host, name, am.OVERRIDE_VAR))
        ansible_host = hv.get("ansible_host")
        if _unknown(ansible_host, hv.get(am.OVERRIDE_VAR), hv.get(am.INTERFACE_VAR)):
            continue  # unresolved (unresolved_checks names it)
        if ansible_host is not None and not (am.parse_ip(ansible_host) or am.is_name(str(ansible_host).strip())):
            out.append("%s: ansible_host '%s' is neither an IP address nor a host name. Fix: set "
                       "the host's address." % (host, ansible_host))
            continue
        if hv.get(am.OVERRIDE_VAR) in (None, "", []) and hv.get(am.INTERFACE_VAR):
            continue  # the interface's address needs the host's facts: the role preflights check it
        try:
            addresses = am.cluster_addresses(host, hostvars, resolver)
        except am.AddressError as exc:
            out.append("%s. Fix: see docs/addresses.md." % exc)
            continue
        for address in addresses:
            if host not in seen.setdefault(address, []):
                seen[address].append(host)
    for address, hosts in sorted(seen.items()):
        if len(hosts) > 1:
            out.append("address %s belongs to more than one host (%s): the firewall and pg_hba would trust "
                       "one for the other. Fix: give every host its own addresses (%s)."
                       % (address, ", ".join(hosts), am.OVERRIDE_VAR))
    return out


def virtual_address_checks(groups, hostvars, resolver=None):
    """The load balancers' virtual address (``hardened_stack_virtual_address``): IP literals, at
    most one per family, the same on every load balancer, set on no other host, and no host's
    own address. (Its subnet needs the hosts' facts: the keepalived role's preflight checks it.)"""
    out = []
    lbs = _members(groups, am.FRONT_DOOR_GROUP)
    for host in _members(groups, "all"):
        value = (hostvars.get(host) or {}).get(am.VIRTUAL_VAR)
        if host not in lbs and value not in (None, "", []) and not _unknown(value):
            out.append("%s: %s is set on a host outside the %s group; it is the load balancers' shared "
                       "address. Fix: set it as a variable of the %s group only (docs/addresses.md)."
                       % (host, am.VIRTUAL_VAR, am.FRONT_DOOR_GROUP, am.FRONT_DOOR_GROUP))
    if any(_unknown((hostvars.get(h) or {}).get(am.VIRTUAL_VAR)) for h in lbs):
        return out  # unresolved (unresolved_checks names it)
    try:
        virtual = am.virtual_addresses(groups, hostvars)
    except am.AddressError as exc:
        return out + ["%s. Fix: see docs/addresses.md." % exc]
    if virtual and len(lbs) < 2:
        out.append("%s: %s is set but the group has %d host(s); the address moves between two or more load "
                   "balancers (unicast VRRP between them). Fix: add the second load balancer, or leave %s "
                   "unset (clients then dial the load balancer's own address)."
                   % (am.FRONT_DOOR_GROUP, am.VIRTUAL_VAR, len(lbs), am.VIRTUAL_VAR))
    for host in _members(groups, "all"):
        hv = hostvars.get(host) or {}
        if _unknown(hv.get("ansible_host"), hv.get(am.OVERRIDE_VAR), hv.get(am.INTERFACE_VAR)):
            continue
        if hv.get(am.OVERRIDE_VAR) in (None, "", []) and hv.get(am.INTERFACE_VAR):
            continue  # from the host's facts only
        try:
            own = am.cluster_addresses(host, hostvars, resolver)
        except am.AddressError:
            continue  # address_checks names it
        for address in virtual:
            if address in own:
                out.append("%s: %s %s is already an address of host %s (a virtual address must be one no "
                           "host has: keepalived adds it to whichever load balancer holds it). Fix: choose an unused address of the load balancers' "
                           "cluster subnet." % (am.FRONT_DOOR_GROUP, am.VIRTUAL_VAR, address, host))
    return out


def port_checks(port_map, groups):
    """The port map is valid for this inventory and no host gets one port twice."""
    try:
        port_map = pm.validate(port_map, groups)
    except pm.PortMapError as exc:
        return ["_common_port_map_overrides: %s. Fix: correct the override." % exc]
    out = []
    used = {}
    for service in sorted(port_map):
        entry = port_map[service]
        for host in pm.hosts_of(groups, entry["listen"]):
            key = (host, entry["port"], entry["protocol"])
            if key in used and used[key] != service:
                out.append("%s: services '%s' and '%s' both listen on %s. Fix: move one with "
                           "_common_port_map_overrides."
                           % (host, used[key], service, pm.label(entry["protocol"], entry["port"])))
            used.setdefault(key, service)
    return out


def required_secret_variables(role):
    """The variables a role's required-secrets check reads: its generate switch first, then each
    variable of its REQUIRED_SECRETS entry (a list's name once)."""
    _groups, flag, names = REQUIRED_SECRETS[role]
    out = [flag]
    for name in names:
        variable = name.split("[]", 1)[0]
        if variable not in out:
            out.append(variable)
    return out


def _is_empty(value):
    return value is None or (not isinstance(value, (dict, list)) and encode.native_text(value) == u"")


def missing_secrets(role, values):
    """The role's required secrets (REQUIRED_SECRETS) empty in ``values`` (``{variable: value}``),
    in the table's order; a list entry (``postgresql_users[].password``) gives one name per item
    without the field (``postgresql_users[app].password``). Names only, never a value."""
    out = []
    for name in REQUIRED_SECRETS[role][2]:
        if "[]." in name:
            variable, field = name.split("[].", 1)
            items = values.get(variable)
            for index, item in enumerate(items if isinstance(items, list) else []):
                if isinstance(item, dict) and _is_empty(item.get(field)):
                    out.append("%s[%s].%s" % (variable, item.get("name", index), field))
        elif _is_empty(values.get(name)):
            out.append(name)
    return out


def required_secret_message(where, role, missing):
    """The one message for secrets missing while the role's generate switch is false."""
    flag = REQUIRED_SECRETS[role][1]
    them = "it" if len(missing) == 1 else "them"
    return ("%s: %s empty while %s is false. Fix: set %s from a vault, or let the role generate %s (%s: true)."
            % (where, ", ".join(missing), flag, them, them, flag))


def required_secret_problems(role, values, where):
    """``[message]`` when the role's switch (in ``values``) is false and a required secret is
    empty, else ``[]``: the check of one host, as the role's own preflight runs it."""
    flag = REQUIRED_SECRETS[role][1]
    if not _is_false(values.get(flag, True)):
        # true, or not a boolean at all (the argument_specs validation names that one)
        return []
    missing = missing_secrets(role, values)
    return [required_secret_message(where, role, missing)] if missing else []


# What a weak secret is (no value in the message; the check sees the value as Ansible rendered it,
# and a vault value containing "{{" or "{%" is rendered as a template unless it is tagged !unsafe).
_WEAK = "a default or demo password"
_SHORT = ("short (< %d characters as Ansible rendered it: a vault value containing {{ or {%% is rendered "
          "as a template unless it is tagged !unsafe in the vault file, see docs/secrets.md)" % MIN_PASSWORD_LENGTH)


def _weakness(value):
    if value.strip().lower() in WEAK_PASSWORDS:
        return _WEAK
    if len(value) < MIN_PASSWORD_LENGTH:
        return _SHORT
    return None


def secret_checks(groups, hostvars, defaults, lab):
    """Required secrets present when they may not be generated; no weak or demo password
    outside the lab. One message per variable (and defect), naming every host it applies to."""
    everyone = _members(groups, "all")
    out = []
    for role in sorted(REQUIRED_SECRETS):
        role_groups, _flag, _names = REQUIRED_SECRETS[role]
        hosts = []
        for group in role_groups:
            hosts += [h for h in _members(groups, group) if h not in hosts]
        found = {}
        order = []
        for host in hosts:
            values = dict((name, _value(hostvars, defaults, host, name)) for name in required_secret_variables(role))
            if _unknown(*values.values()) or not required_secret_problems(role, values, host):
                continue
            missing = tuple(missing_secrets(role, values))
            if missing not in found:
                found[missing] = []
                order.append(missing)
            found[missing].append(host)
        for missing in order:
            out.append(required_secret_message(_hosts_text(found[missing], everyone), role, list(missing)))
    if lab:
        return out
    weak = {}
    order = []
    per_host = dict((host, _weak_secrets(hostvars.get(host) or {})) for host in everyone)
    sources = set(source for found in per_host.values() for _name, source, _reason in found if source)
    for host in everyone:
        for name, source, reason in per_host[host]:
            if source is None and name in sources:
                continue  # a vault variable another host's variable is set from: reported under that one
            key = (source or name, reason)
            if key not in weak:
                weak[key] = ([], [])
                order.append(key)
            names, hosts = weak[key]
            if source and name not in names:
                names.append(name)
            if host not in hosts:
                hosts.append(host)
    for key in order:
        # The value itself is never part of the message.
        names, hosts = weak[key]
        if names:
            out.append("%s: %s (set from %s) %s %s. Fix: put a strong value in %s (the vault)."
                       % (_hosts_text(hosts, everyone), ", ".join(names), key[0], "is" if len(names) == 1 else "are",
                          key[1], key[0]))
        elif key[0].startswith(_VAULT_PREFIX):
            out.append("%s: %s is %s. Fix: put a strong value in %s (the vault)."
                       % (_hosts_text(hosts, everyone), key[0], key[1], key[0]))
        else:
            out.append("%s: %s is %s. Fix: set a strong value (from a vault), or leave it empty where the role "
                       "generates it (docs/secrets.md)." % (_hosts_text(hosts, everyone), key[0], key[1]))
    return out


_VAULT_PREFIX = "vault_"


def _weak_secrets(hv):
    """``[(variable, vault variable it comes from or None, reason)]`` for one host's weak secrets,
    each value once: a vault variable (vault_*) is reported under the variable that is set from it
    (the same value: ``vault_`` + its name, else the one vault variable holding that value), and
    only alone when nothing uses it."""
    values = {}
    for name in sorted(hv):
        value = hv[name]
        if (name.endswith(SECRET_SUFFIXES) or name in SECRET_NAMES) and isinstance(value, str) and value != "":
            reason = _weakness(value)
            if reason is not None:
                values[name] = (value, reason)
    vaults = [name for name in values if name.startswith(_VAULT_PREFIX)]
    used = set()
    out = []
    for name, (value, reason) in values.items():
        if name.startswith(_VAULT_PREFIX):
            continue
        sources = [v for v in vaults if values[v][0] == value]
        used.update(sources)
        if _VAULT_PREFIX + name in sources:
            source = _VAULT_PREFIX + name
        else:
            source = sources[0] if len(sources) == 1 else None
        out.append((name, source, reason))
    out += [(name, None, values[name][1]) for name in vaults if name not in used]
    return sorted(out)


def lockout_checks(groups, hostvars, defaults):
    """A connection the baseline role would close."""
    out = []
    for host in _members(groups, "all"):
        hv = hostvars.get(host) or {}
        user = hv.get("ansible_user")
        read = [_value(hostvars, defaults, host, name) for name in
                ("baseline_ssh_permit_root_login", "baseline_ssh", "baseline_ssh_allow_users")]
        if _unknown(user, hv.get("ansible_connection"), *read):
            continue  # unresolved (unresolved_checks names it)
        root_login = str(read[0]).lower()
        enforced = _is_true(read[1])
        if user == "root" and enforced and root_login == "no" and hv.get("ansible_connection", "ssh") == "ssh":
            out.append("%s: ansible_user is root but baseline_ssh_permit_root_login is 'no': the next "
                       "run could not log in. Fix: connect as an admin user with sudo "
                       "(ansible_user + ansible_become: true)." % host)
        allow = read[2] or []
        if enforced and user and allow and user not in allow:
            out.append("%s: ansible_user '%s' is not in baseline_ssh_allow_users (%s): sshd would "
                       "refuse the next run. Fix: add it to baseline_ssh_allow_users."
                       % (host, user, ", ".join(allow)))
    return out


def file_checks(groups, hostvars, defaults, exists=os.path.isfile, readable=None):
    """User-provided certificate and key files exist and are readable on the controller."""
    readable = readable or (lambda path: os.access(path, os.R_OK))
    out = []
    seen = set()
    for host in _members(groups, "all"):
        certificates = _value(hostvars, defaults, host, "pki_certificates")
        if _unknown(certificates) or not isinstance(certificates, list):
            continue  # unresolved (unresolved_checks names it), or not a list (argument_specs names it)
        for cert in certificates:
            if not isinstance(cert, dict):
                continue
            for key in ("cert_src", "key_src", "chain_src"):
                path = cert.get(key)
                if not path or (host, path) in seen:
                    continue
                seen.add((host, path))
                expanded = os.path.expanduser(str(path))
                if not exists(expanded):
                    out.append("%s: pki_certificates '%s' %s %s does not exist on the controller. Fix: "
                               "correct the path or drop %s to use the internal CA."
                               % (host, cert.get("name", "?"), key, path, key))
                elif not readable(expanded):
                    out.append("%s: pki_certificates '%s' %s %s is not readable by the user running "
                               "Ansible. Fix: adjust its permissions." % (host, cert.get("name", "?"), key, path))
    return out


def app_checks(groups, hostvars, defaults):
    """The application's database user exists in the cluster it connects to."""
    out = []
    app = _members(groups, "app")
    postgres = _members(groups, "postgres")
    redis = _members(groups, "redis")
    if app and redis:
        wanted = _value(hostvars, defaults, redis[0], "redis_master_name")
        asked = _value(hostvars, defaults, app[0], "app_redis_master_name")
        if wanted and asked and not _unknown(wanted, asked) and wanted != asked:
            out.append("%s: app_redis_master_name '%s' differs from redis_master_name '%s' of group "
                       "'redis': the app would ask Sentinel for a master it does not monitor. Fix: set "
                       "both to the same name." % (app[0], asked, wanted))
    if not app or not postgres:
        return out
    host = app[0]
    read = [_value(hostvars, defaults, postgres[0], "postgresql_users"),
            _value(hostvars, defaults, postgres[0], "postgresql_databases"),
            _value(hostvars, defaults, host, "app_source"),
            _value(hostvars, defaults, host, "app_db_user"),
            _value(hostvars, defaults, host, "app_db_name")]
    if _unknown(*read):
        return out  # a value Ansible could not template (unresolved_checks names it): no conclusion
    users = [u.get("name") for u in (read[0] if isinstance(read[0], list) else []) if isinstance(u, dict)]
    dbs = [d.get("name") for d in (read[1] if isinstance(read[1], list) else []) if isinstance(d, dict)]
    # Only the demo app is known to use PostgreSQL; a user's command wires its own database.
    if read[2] not in (None, "demo"):
        return out
    user, name = read[3], read[4]
    if user and user not in users:
        out.append("%s: app_db_user '%s' is not in postgresql_users (%s) of the postgres group: the "
                   "application could not log in. Fix: add {name: %s, databases: [%s], access: "
                   "readwrite} to postgresql_users." % (host, user, ", ".join(u for u in users if u) or "none",
                                                        user, name))
    if name and name not in dbs:
        out.append("%s: app_db_name '%s' is not in postgresql_databases (%s). Fix: add {name: %s, "
                   "owner: ...} to postgresql_databases." % (host, name, ", ".join(d for d in dbs if d) or "none",
                                                             name))
    return out


# The demo app's connections that need a password: (the group it connects to, the password
# variable, the variable naming the cluster whose generated password the app reads instead,
# the service, the variable that cluster name must equal).
APP_CONNECTION_SECRETS = (
    ("postgres", "app_db_password", "app_db_password_secret_cluster", "PostgreSQL", "postgresql_cluster_name"),
    ("redis", "app_redis_password", "app_redis_password_secret_cluster", "Redis", "redis_cluster_name"),
)


def app_secret_checks(groups, hostvars, defaults):
    """Every connection of the demo app has a password, or a cluster whose generated password it
    reads (roles/app/tasks/passwords.yml): with neither the app would get no password at all."""
    everyone = _members(groups, "all")
    out = []
    for group, password, cluster, service, cluster_var in APP_CONNECTION_SECRETS:
        if not _members(groups, group):
            continue
        hosts = []
        for host in _members(groups, "app"):
            values = [_value(hostvars, defaults, host, name) for name in ("app_source", password, cluster)]
            if _unknown(*values) or values[0] not in (None, "demo"):
                continue  # unresolved (unresolved_checks names it); a command wires its own connections
            if _is_empty(values[1]) and _is_empty(values[2]):
                hosts.append(host)
        if hosts:
            out.append("%s: %s is empty and %s is not set: the application would connect to %s without a "
                       "password. Fix: set %s from the vault (inventories/example: vault_%s), or set %s to the "
                       "%s whose generated password the app reads."
                       % (_hosts_text(hosts, everyone), password, cluster, service, password,
                          "app_db_password" if group == "postgres" else "redis_app_password", cluster, cluster_var))
    return out


# Every secret or user string the inventory gives, and the formats of the files (and the
# protocols) it is written into: the encoder of each format (module_utils/encode.py) must
# accept the value, or the preflight refuses it before any host is changed. Shapes: "value"
# (a string), "values" (a mapping: every value, named VARIABLE.KEY), "items.FIELD" (a list of
# mappings: every item's FIELD, named VARIABLE[NAME].FIELD).
# patroni.yml, Patroni's pgpass file, Patroni's ALTER ROLE at bootstrap
_PG_ROLE = ("yaml_string", "patroni_pgpass_field", "patroni_role_password")
_BASIC_AUTH = ("prometheus_password", "bcrypt_password")              # Prometheus' password_file, bcrypt hashes
SECRET_FORMATS = (
    # variable, shape, formats, where the value is written
    ("postgresql_superuser_password", "value", _PG_ROLE, "patroni.yml, Patroni's pgpass file, Patroni's bootstrap"),
    ("postgresql_replication_password", "value", _PG_ROLE, "patroni.yml, Patroni's pgpass file, Patroni's bootstrap"),
    ("postgresql_rewind_password", "value", _PG_ROLE, "patroni.yml, Patroni's pgpass file, Patroni's bootstrap"),
    ("postgresql_patroni_api_password", "value", ("yaml_string",), "patroni.yml"),
    ("postgresql_users", "items.password", ("libpq_conninfo_value",), "PostgreSQL (ALTER ROLE)"),
    ("redis_admin_password", "value", ("redis_string",), "the Redis ACL files, REDISCLI_AUTH"),
    ("redis_app_password", "value", ("redis_string", "systemd_env_value"),
     "the Redis ACL files, the app's environment file"),
    ("redis_replication_password", "value", ("redis_string",), "Redis masterauth"),
    ("redis_sentinel_password", "value", ("redis_string", "redis_sentinel_token"), "sentinel.conf"),
    ("redis_exporter_password", "value", ("redis_string", "systemd_env_value"),
     "the Redis ACL files, the redis exporter's environment file"),
    ("app_db_password", "value", ("systemd_env_value",), "the app's environment file"),
    ("app_redis_password", "value", ("systemd_env_value",), "the app's environment file"),
    ("app_sentinel_password", "value", ("systemd_env_value",), "the app's environment file"),
    # the old passwords the app keeps as a fallback during a password change
    ("app_db_password_previous", "value", ("systemd_env_value",), "the app's environment file"),
    ("app_redis_password_previous", "value", ("systemd_env_value",), "the app's environment file"),
    ("app_sentinel_password_previous", "value", ("systemd_env_value",), "the app's environment file"),
    ("app_environment", "values", ("systemd_env_value",), "the app's environment file"),
    ("app_secret_environment", "values", ("systemd_env_value",), "the app's environment file"),
    ("exporters_auth_password", "value", _BASIC_AUTH, "Prometheus' password file, the bcrypt hashes"),
    ("prometheus_auth_password", "value", _BASIC_AUTH, "Prometheus' password file, the bcrypt hashes"),
    ("alertmanager_auth_password", "value", _BASIC_AUTH, "Prometheus' password file, the bcrypt hashes"),
    ("exporters_auth_user", "value", ("basic_auth_user", "htpasswd_user", "yaml_string"),
     "the exporters' web configuration, nginx's htpasswd file"),
    ("prometheus_auth_user", "value", ("basic_auth_user", "yaml_string"), "prometheus.yml, the web configuration"),
    ("alertmanager_auth_user", "value", ("basic_auth_user", "yaml_string"), "prometheus.yml, the web configuration"),
    ("alertmanager_smtp_auth_password", "value", ("yaml_string",), "alertmanager.yml (SMTP AUTH)"),
    ("exporters_redis_password", "value", ("systemd_env_value",), "the redis exporter's environment file"),
    ("backup_repo_cipher_pass", "value", ("pgbackrest_value",), "pgBackRest's configuration file"),
    ("backup_pg_dump_password", "value", ("pgpass_field",), "the pg_dump password file"),
    ("backup_pg_dump_user", "value", ("pgpass_field",), "the pg_dump password file"),
)
# Variables the encoding checks read (the preflight filter passes them through).
ENCODED_VARS = tuple(name for name, _shape, _formats, _where in SECRET_FORMATS)

# What a value may not hold, told by running the encoders (docs/secrets.md and the vault file
# template list it, generated by `python -m lab docs`). A feature is (words, position, samples):
# "anywhere" and "whole" samples are values, refused when an encoder refuses one of them;
# "start" and "end" samples are characters, refused when a value beginning (ending) with one is
# refused for a reason the same character inside the value is not (a line feed refused anywhere
# is not also "white space at the end"). tests/unit check that every reason an encoder gives is
# met by one of these samples (a new refusal cannot go undocumented).
LIMIT_PROBES = (
    ("a NUL character", "anywhere", (u"ab\x00cd",)),
    ("text that is not valid UTF-8", "anywhere", (u"ab\udcffcd",)),
    ("a line feed", "anywhere", (u"ab\ncd",)),
    ("a carriage return", "anywhere", (u"ab\rcd",)),
    ("a space", "anywhere", (u"ab cd",)),
    ("a tab", "anywhere", (u"ab\tcd",)),
    ("a vertical tab or form feed", "anywhere", (u"ab\x0bcd", u"ab\x0ccd")),
    ("another control character", "anywhere", (u"ab\x01cd", u"ab\x7fcd")),
    ("a double quote", "anywhere", (u'ab"cd',)),
    ("a single quote", "anywhere", (u"ab'cd",)),
    ("a colon", "anywhere", (u"ab:cd",)),
    ("a character outside ASCII", "anywhere", (u"ab\u00e4cd", u"ab\u20accd")),
    ("white space at the start", "start", (u" ", u"\t", u"\r", u"\n", u"\x0b", u"\x0c", u"\u00a0", u"\u3000")),
    ("white space at the end", "end", (u" ", u"\t", u"\r", u"\n", u"\x0b", u"\x0c", u"\u00a0", u"\u3000")),
    ("# as its first character", "start", (u"#",)),
    ("more than %d bytes" % encode.BCRYPT_MAX_BYTES, "whole", (u"a" * (encode.BCRYPT_MAX_BYTES + 1),)),
)
_PROBE_BODY = (u"ab", u"cd")


def probe_values(position, sample):
    """``[(value, the value it is compared with or None)]`` for one sample of LIMIT_PROBES."""
    inside = _PROBE_BODY[0] + sample + _PROBE_BODY[1]
    if position == "start":
        return [(sample + u"".join(_PROBE_BODY), inside)]
    if position == "end":
        return [(u"".join(_PROBE_BODY) + sample, inside)]
    return [(sample, None)]


def refused_features(formats):
    """The LIMIT_PROBES features the encoders of ``formats`` refuse, in the table's order."""
    out = []
    for text, position, samples in LIMIT_PROBES:
        for sample in samples:
            for value, inside in probe_values(position, sample):
                reasons = set(encode.refusals(value, formats))
                if inside is not None:
                    reasons -= set(encode.refusals(inside, formats))
                if reasons and text not in out:
                    out.append(text)
    return out


def _shown(name, shape):
    if shape == "values":
        return "%s (every value)" % name
    if shape.startswith("items."):
        return "%s[].%s" % (name, shape.split(".", 1)[1])
    return name


def secret_limits():
    """``(common, rows)`` for the docs: the features every entry of SECRET_FORMATS refuses, and
    per entry ``(shown name, where it is written, the further features its formats refuse)``."""
    refused = [(_shown(name, shape), where, refused_features(formats))
               for name, shape, formats, where in SECRET_FORMATS]
    common = [text for text, _position, _samples in LIMIT_PROBES
              if all(text in features for _name, _where, features in refused)]
    return common, [(shown, where, [f for f in features if f not in common]) for shown, where, features in refused]


def _named_values(name, shape, value):
    """``(display name, value)`` pairs of one variable, by its shape."""
    if shape == "value":
        return [(name, value)]
    if shape == "values":
        if not isinstance(value, dict):
            return []
        return [("%s.%s" % (name, key), value[key]) for key in sorted(value, key=str)]
    field = shape.split(".", 1)[1]
    out = []
    for index, item in enumerate(value if isinstance(value, list) else []):
        if isinstance(item, dict) and field in item:
            out.append(("%s[%s].%s" % (name, item.get("name", index), field), item[field]))
    return out


def _hosts_text(hosts, everyone):
    if len(hosts) == len(everyone) and len(hosts) > 1:
        return "every host"
    if len(hosts) > 4:
        return "%s and %d more hosts" % (", ".join(hosts[:3]), len(hosts) - 3)
    return ", ".join(hosts)


def _is_secret_entry(name, shape):
    """A SECRET_FORMATS entry that carries secrets (a password variable, the secret
    environment, the users' passwords), not user names or plain settings."""
    return (name.endswith(SECRET_SUFFIXES) or name in SECRET_NAMES or name == "app_secret_environment"
            or shape == "items.password")


def _non_string(value):
    """What YAML made of a value that is not a string ("a list", "a mapping", ...), else None."""
    if isinstance(value, str):
        return None
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return None  # another text type (a vault value): the encoders read it as text


def encoding_checks(groups, hostvars):
    """Values a file format cannot carry (SECRET_FORMATS): one message per variable (and set
    of reasons), naming the hosts, the variable, the files and every reason, never the value."""
    everyone = _members(groups, "all")
    found = {}
    order = []
    for host in everyone:
        hv = hostvars.get(host) or {}
        for name, shape, formats, where in SECRET_FORMATS:
            if name not in hv or hv[name] is None:
                continue
            secret = _is_secret_entry(name, shape)
            for shown, value in _named_values(name, shape, hv[name]):
                if value is None or isinstance(value, Unresolved):
                    continue  # unresolved: unresolved_checks names it
                kind = _non_string(value)
                if kind and (secret or isinstance(value, (dict, list))):
                    # argument_specs' type: str would turn it into its Python form ("['a', 'b']")
                    reasons = ["it is %s, not a string (quote the value in the vault or inventory)" % kind]
                elif isinstance(value, (dict, list)) or encode.native_text(value) == u"":
                    continue
                else:
                    reasons = encode.refusals(value, formats)
                if not reasons:
                    continue
                key = (shown, tuple(reasons))
                if key not in found:
                    found[key] = (where, [])
                    order.append(key)
                found[key][1].append(host)
    out = []
    for shown, reasons in order:
        where, hosts = found[(shown, reasons)]
        out.append("%s: %s cannot be written to %s: %s. Fix: choose another value (in the vault); the value "
                   "itself is never shown." % (_hosts_text(hosts, everyone), shown, where, "; ".join(reasons)))
    return out


def unresolved_checks(groups, hostvars):
    """Values Ansible could not template (Unresolved): one message per variable (and undefined
    name), naming the hosts, the variable and the undefined name when Ansible gave it; never the
    value. The other checks skip what depends on such a value."""
    everyone = _members(groups, "all")
    found = {}
    order = []
    for host in everyone:
        hv = hostvars.get(host) or {}
        for name in sorted(hv):
            if not isinstance(hv[name], Unresolved) or hv[name].pending:
                continue
            key = (name, hv[name].undefined)
            if key not in found:
                found[key] = []
                order.append(key)
            found[key].append(host)
    out = []
    for name, undefined in order:
        where = _hosts_text(found[(name, undefined)], everyone)
        if undefined:
            out.append("%s: %s cannot be resolved: it uses %s, which is undefined (a vault file not loaded, or a "
                       "variable missing from it?). Fix: define %s (e.g. in group_vars/all/vault.yml, run with "
                       "--ask-vault-pass or --vault-password-file) or correct %s. The checks that read %s were "
                       "skipped; its value is never shown." % (where, name, undefined, undefined, name, name))
        else:
            out.append("%s: %s cannot be resolved: Ansible could not template it (an undefined variable or a "
                       "failing lookup or filter in it). Fix: correct %s. The checks that read %s were skipped; its "
                       "value is never shown."
                       % (where, name, name, name))
    return out


def retired_dir_checks(groups, hostvars):
    """The per-role secret directories replaced by the one secrets directory (secrets.py)."""
    everyone = _members(groups, "all")
    out = []
    for name in sm.RETIRED_DIR_VARS:
        hosts = [h for h in everyone if (hostvars.get(h) or {}).get(name) not in (None, "")]
        if hosts:
            out.append("%s: %s is retired; every generated secret lives under %s (layout: docs/secrets.md). "
                       "Fix: remove %s and set %s if the directory is not %s."
                       % (_hosts_text(hosts, everyone), name, sm.DIR_VAR, name, sm.DIR_VAR, sm.DEFAULT_DIR))
    return out


def inventory_problems(groups, hostvars, port_map, defaults=None, lab=False, exists=os.path.isfile,
                       readable=None):
    """Every problem found in the inventory, as messages naming host/group, variable and fix.

    ``groups``: the inventory's groups; ``hostvars``: ``{host: {variable: value}}`` with the
    values the inventory sets; ``defaults``: role defaults (plain values) used where a host
    sets nothing; ``lab``: the inventory is the local lab (demo secrets allowed).
    """
    defaults = defaults or {}
    groups = dict((k, list(v or [])) for k, v in (groups or {}).items())
    if "all" not in groups:
        groups["all"] = sorted(set(h for v in groups.values() for h in v))
    out = []
    out += contract_checks(groups)
    out += unresolved_checks(groups, hostvars)
    out += group_checks(groups, hostvars, defaults)
    out += address_checks(groups, hostvars)
    out += virtual_address_checks(groups, hostvars)
    out += port_checks(port_map, groups)
    out += secret_checks(groups, hostvars, defaults, lab)
    out += retired_dir_checks(groups, hostvars)
    out += encoding_checks(groups, hostvars)
    out += lockout_checks(groups, hostvars, defaults)
    out += file_checks(groups, hostvars, defaults, exists=exists, readable=readable)
    out += app_checks(groups, hostvars, defaults)
    out += app_secret_checks(groups, hostvars, defaults)
    return out
