# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site preflight's inventory-wide checks (see plugins/module_utils/inventory_checks.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleError
from jinja2.exceptions import UndefinedError
from ansible_collections.hardened.stack.plugins.module_utils import address as am
from ansible_collections.hardened.stack.plugins.module_utils import encode
from ansible_collections.hardened.stack.plugins.module_utils import inventory_checks as ic
from ansible_collections.hardened.stack.plugins.module_utils import secrets as sm

# Variables the checks read besides every secret-like one.
NAMES = ("ansible_host", "ansible_user", "ansible_connection", "app_source", "app_db_user", "app_db_name",
         "baseline_ssh", "baseline_ssh_permit_root_login", "baseline_ssh_allow_users", "pki_certificates",
         "postgresql_users", "postgresql_databases", "redis_sentinel_enabled",
         "redis_sentinel_allow_fewer_than_three", "redis_sentinel_quorum", "redis_initial_master",
         "redis_master_name", "app_redis_master_name",
         "app_db_password_secret_cluster", "app_redis_password_secret_cluster", am.OVERRIDE_VAR, am.INTERFACE_VAR,
         am.VIRTUAL_VAR) + ic.RETIRED_ADDRESS_VARS \
    + sm.RETIRED_DIR_VARS + ic.ENCODED_VARS


# How Ansible names what a template lacks ("'vault_x' is undefined", "... has no attribute 'x'").
_UNDEFINED = (re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined"),
              re.compile(r"has no attribute '([A-Za-z_][A-Za-z0-9_]*)'"))


def _undefined_name(exc, name):
    """The undefined name Ansible's error gives (never the error itself: it may quote the
    source, value included), else None."""
    text = u"%s" % exc
    for pattern in _UNDEFINED:
        found = [n for n in pattern.findall(text) if n != name]
        if found:
            return found[0]
    return None


# A consumer's hardened.stack.secret lookup in the inventory whose file the run has not produced yet
# (secrets.missing_message): resolved when a role uses it, after its producer ran.
_NOT_YET_PRODUCED = re.compile(r"secret \S+ does not exist \(.*\)\. It is created by the \S+ role")


def _plain_vars(host_vars, flags):
    """What the inventory sets for one host: the names above and every secret-like variable,
    as plain data (a vault-encrypted string as its text). A value Ansible cannot template (an
    undefined variable in it, a failing lookup) becomes an ``Unresolved`` marker: the checks
    name the variable (and the undefined name) and draw no conclusion from it. A secret the run
    has not produced yet (a consumer's lookup) is marked pending: not an error, still not judged."""
    out = {}
    for name in list(host_vars):
        if name not in NAMES and not name.endswith(ic.SECRET_SUFFIXES) and name not in flags:
            continue
        try:
            # plain values: a vault-encrypted string is checked as the text it decrypts to
            out[name] = encode.plain_data(host_vars[name])
        except (AnsibleError, UndefinedError) as exc:
            # Ansible 2.19 hands an unresolvable value over as a marker that raises (a jinja2
            # UndefinedError) when used
            pending = bool(_NOT_YET_PRODUCED.search(u"%s" % exc))
            out[name] = ic.Unresolved(None if pending else _undefined_name(exc, name), pending=pending)
    return out


def inventory_problems(groups, hostvars, port_map, defaults=None, lab=False):
    """Messages for every inventory-wide defect (empty list: the inventory is sound)."""
    flags = set(flag for _groups, flag, _names in ic.REQUIRED_SECRETS.values())
    plain = dict((host, _plain_vars(hostvars[host], flags)) for host in groups.get("all", []))
    return ic.inventory_problems(dict(groups), plain, dict(port_map), dict(defaults or {}), bool(lab))


def required_secret_variables(role):
    """The variables ``role``'s required-secrets check reads (its generate switch first), for
    ``query('ansible.builtin.vars', *names)`` in the role's preflight."""
    if role not in ic.REQUIRED_SECRETS:
        raise AnsibleError("required_secret_variables: no entry for role %r in REQUIRED_SECRETS" % role)
    return ic.required_secret_variables(role)


def required_secret_problems(role, where, values):
    """``[message]`` when ``role``'s generate switch is false and a required secret is empty
    (names only), else ``[]``. ``values``: the values of :func:`required_secret_variables`, in
    that order. The same table and message as the site's inventory check."""
    names = required_secret_variables(role)
    values = list(values)
    if len(values) != len(names):
        raise AnsibleError("required_secret_problems: %d values for the %d variables %s"
                           % (len(values), len(names), ", ".join(names)))
    plain = dict((name, encode.plain_data(values[index])) for index, name in enumerate(names))
    return ic.required_secret_problems(role, plain, u"%s" % where)


class FilterModule(object):
    def filters(self):
        return {"inventory_problems": inventory_problems,
                "required_secret_variables": required_secret_variables,
                "required_secret_problems": required_secret_problems}
