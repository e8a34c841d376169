# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the postgresql role: pg_hba from the inventory and the port map (host addresses
from the address model, ``hardened.stack.cluster_address``), parameters from the host's memory
and CPUs, and preflight checks (shadowed pg_hba extras, parameter names, Patroni timings)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.stack.plugins.module_utils import pg_hba, pg_params, pg_tune


def pg_hba_rules(port_map, groups, hostvars, replication_user, superuser="postgres", rewind_user=None,
                 app_roles=None, monitoring_roles=None, extra=None, members_group="postgres"):
    """pg_hba.conf lines (list of strings) for the cluster; see module_utils/pg_hba.py."""
    try:
        found = pg_hba.rules(port_map, groups, hostvars, replication_user, superuser=superuser,
                             rewind_user=rewind_user, app_roles=app_roles,
                             monitoring_roles=monitoring_roles, extra=extra, members_group=members_group)
    except (pg_hba.PgHbaError, KeyError) as exc:
        raise AnsibleFilterError("pg_hba_rules: %s" % exc)
    return pg_hba.render(found)


def pg_hba_shadowed(port_map, groups, hostvars, replication_user, superuser="postgres", rewind_user=None,
                    app_roles=None, monitoring_roles=None, extra=None, members_group="postgres",
                    name="postgresql_pg_hba_extra"):
    """Messages, one per ``extra`` line that can never match because an earlier pg_hba line
    (generated or extra) matches every connection it would; each quotes both lines and names
    ``name[i]``. Empty when every extra can fire. Same arguments as ``pg_hba_rules``."""
    try:
        found = pg_hba.ordered(port_map, groups, hostvars, replication_user, superuser=superuser,
                               rewind_user=rewind_user, app_roles=app_roles,
                               monitoring_roles=monitoring_roles, extra=extra, members_group=members_group)
    except (pg_hba.PgHbaError, KeyError) as exc:
        raise AnsibleFilterError("pg_hba_shadowed: %s" % exc)
    return pg_hba.shadowed_messages(found, name=name)


def pg_tune_parameters(memory_mb, cpus, max_connections=100, overrides=None):
    """PostgreSQL parameters computed from memory (MB) and CPU count, overrides applied."""
    try:
        return pg_tune.tune(memory_mb, cpus, max_connections, overrides)
    except pg_tune.PgTuneError as exc:
        raise AnsibleFilterError("pg_tune_parameters: %s" % exc)


def pg_unknown_parameters(parameters, version):
    """Names in ``parameters`` (a dict or list) unknown to PostgreSQL ``version``."""
    names = list(parameters.keys()) if isinstance(parameters, dict) else list(parameters or [])
    return pg_params.unknown_parameters(names, version)


def patroni_timings_problems(ttl, loop_wait, retry_timeout):
    """Messages explaining why ttl / loop_wait / retry_timeout are unsafe (empty list if fine)."""
    return pg_tune.timings_problems(ttl, loop_wait, retry_timeout)


class FilterModule(object):
    def filters(self):
        return {
            "pg_hba_rules": pg_hba_rules,
            "pg_hba_shadowed": pg_hba_shadowed,
            "pg_tune_parameters": pg_tune_parameters,
            "pg_unknown_parameters": pg_unknown_parameters,
            "patroni_timings_problems": patroni_timings_problems,
        }
