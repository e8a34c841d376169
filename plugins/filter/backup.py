# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the backup tier (pure functions in module_utils/backup.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.stack.plugins.module_utils import backup, pg_hba


def backup_input_problems(groups, backup_group="backup", postgresql_group="postgres", stanza="main",
                          retention_full=2, retention_diff=7, pg_dump_retention_days=7, schedules=None,
                          pg_dump_user="pgdump"):
    """Why the backup inputs are unusable (empty list when fine)."""
    return backup.input_problems(groups, backup_group, postgresql_group, stanza, retention_full,
                                 retention_diff, pg_dump_retention_days, schedules, pg_dump_user)


def backup_drill_problems(target, groups, backup_group="backup", postgresql_group="postgres",
                          target_time=None, tables=None):
    """Why a restore drill into ``target`` must not run (empty list when fine)."""
    return backup.drill_problems(target, groups, backup_group, postgresql_group, target_time, tables)


def backup_pg_hba(groups, hostvars, user, backup_group="backup"):
    """pg_hba rules (dicts) for the backup host's pg_dump role."""
    try:
        return backup.pg_hba_lines(groups, hostvars, user, backup_group)
    except (pg_hba.PgHbaError, KeyError) as exc:
        raise AnsibleFilterError("backup_pg_hba: %s" % exc)


def backup_info_summary(info, stanza):
    """Summary of ``pgbackrest info --output=json`` for ``stanza``."""
    return backup.info_summary(info, stanza)


def backup_compare_checks(expected, restored):
    """Mismatches between expected and restored {key: {rows, checksum}} (empty when equal)."""
    return backup.compare_checks(expected, restored)


class FilterModule(object):
    def filters(self):
        return {
            "backup_input_problems": backup_input_problems,
            "backup_drill_problems": backup_drill_problems,
            "backup_pg_hba": backup_pg_hba,
            "backup_info_summary": backup_info_summary,
            "backup_compare_checks": backup_compare_checks,
        }
