# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions of the backup tier: input checks (repository host, retention, schedules),
restore drill target checks, the pg_hba lines the repository host needs, and summaries of
``pgbackrest info --output=json``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.hardened.stack.plugins.module_utils import address, pg_hba

STANZA_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# systemd OnCalendar expressions: letters, digits, and the few punctuation marks they use.
CALENDAR_RE = re.compile(r"^[A-Za-z0-9 ,.*:/~-]+$")


class BackupError(Exception):
    pass


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def input_problems(groups, backup_group="backup", postgresql_group="postgres", stanza="main",
                   retention_full=2, retention_diff=7, pg_dump_retention_days=7,
                   schedules=None, pg_dump_user="pgdump"):
    """Messages explaining why the backup tier's inputs are unusable (empty list: fine).

    ``groups`` is the inventory's groups dict; ``schedules`` a dict name -> OnCalendar value.
    """
    problems = []
    groups = groups or {}
    repo_hosts = list(groups.get(backup_group) or [])
    members = list(groups.get(postgresql_group) or [])
    if not repo_hosts:
        problems.append("the inventory group '%s' has no host: the pgBackRest repository needs "
                        "exactly one backup host" % backup_group)
    elif len(repo_hosts) > 1:
        problems.append("the inventory group '%s' has %d hosts (%s): the pgBackRest repository "
                        "lives on exactly one" % (backup_group, len(repo_hosts), ", ".join(repo_hosts)))
    if not members:
        problems.append("the inventory group '%s' has no PostgreSQL member to back up" % postgresql_group)
    shared = sorted(set(repo_hosts) & set(members))
    if shared:
        problems.append("%s is both the backup host and a PostgreSQL member: the repository must "
                        "live on another host" % ", ".join(shared))
    if not isinstance(stanza, str) or not STANZA_RE.match(stanza):
        problems.append("stanza %r must be 1-64 letters, digits, '_', '.' or '-'" % (stanza,))
    for name, value, low in (("retention_full", retention_full, 1), ("retention_diff", retention_diff, 1),
                             ("pg_dump_retention_days", pg_dump_retention_days, 1)):
        number = _int(value)
        if number is None or isinstance(value, bool) or number < low:
            problems.append("%s is %s: it must be an integer >= %d (0 would keep nothing)" % (name, value, low))
    for name, value in sorted((schedules or {}).items()):
        if not isinstance(value, str) or not value.strip() or not CALENDAR_RE.match(value):
            problems.append("schedule %s %r is not a systemd OnCalendar expression" % (name, value))
    if not isinstance(pg_dump_user, str) or not ROLE_RE.match(pg_dump_user):
        problems.append("pg_dump user %r is not a plain PostgreSQL role name" % (pg_dump_user,))
    return problems


def drill_problems(target, groups, backup_group="backup", postgresql_group="postgres",
                   target_time=None, tables=None):
    """Messages explaining why a restore drill into ``target`` must not run (empty: fine).

    The scratch instance may only be created on the backup host, never on a live member of
    the cluster (or any other host of the stack)."""
    problems = []
    groups = groups or {}
    members = set(groups.get(postgresql_group) or [])
    repo_hosts = list(groups.get(backup_group) or [])
    if not target:
        problems.append("no restore target host given")
    elif target in members:
        problems.append("restore target %s is a live member of '%s': a restore there would "
                        "overwrite production; restore into the backup host" % (target, postgresql_group))
    elif target not in repo_hosts:
        problems.append("restore target %s is not in the '%s' group: the drill restores only "
                        "into the backup host (%s)" % (target, backup_group, ", ".join(repo_hosts) or "none"))
    if target_time is not None and target_time != "":
        if not isinstance(target_time, str) or not re.match(
                r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}(:?\d{2})?|Z)?$", target_time):
            problems.append("target_time %r must look like 2026-01-31 12:00:00+00" % (target_time,))
    for table in tables or []:
        if not isinstance(table, dict) or not table.get("database") or not table.get("table"):
            problems.append("table %r must be {database: ..., table: schema.name}" % (table,))
        elif not re.match(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$", str(table["table"])):
            problems.append("table name %r must be name or schema.name (plain identifiers)" % (table["table"],))
    return problems


def pg_hba_lines(groups, hostvars, user, backup_group="backup", resolver=None):
    """pg_hba rules (dicts for the postgresql role's ``extra``) letting the backup host's
    pg_dump role in over TLS with SCRAM: one line per address of the host in the address
    model (a dual-stack host gets a /32 and a /128 line; a DNS name is resolved)."""
    if not user:
        return []
    out = []
    for host in groups.get(backup_group) or []:
        try:
            cidrs = [address.host_cidr(a) for a in address.cluster_addresses(host, hostvars, resolver)]
        except address.AddressError as exc:
            raise pg_hba.PgHbaError("backup host: %s" % exc)
        for cidr in cidrs:
            out.append({"type": "hostssl", "database": "all", "user": user,
                        "address": cidr, "method": "scram-sha-256"})
    return out


def info_summary(info, stanza):
    """Summary of ``pgbackrest info --output=json`` for one stanza: status, backup count,
    the newest backup (label, type, start/stop Unix times) and the archive range."""
    if isinstance(info, dict):
        info = [info]
    for entry in info or []:
        if entry.get("name") != stanza:
            continue
        backups = sorted(entry.get("backup") or [], key=lambda b: (b.get("timestamp") or {}).get("stop", 0))
        status = entry.get("status") or {}
        archives = entry.get("archive") or []
        newest = backups[-1] if backups else None
        return {
            "stanza": stanza,
            "ok": status.get("code") == 0,
            "code": status.get("code"),
            "status": status.get("message", ""),
            "count": len(backups),
            "full": len([b for b in backups if b.get("type") == "full"]),
            "latest_label": newest.get("label") if newest else None,
            "latest_type": newest.get("type") if newest else None,
            "latest_start": (newest.get("timestamp") or {}).get("start") if newest else None,
            "latest_stop": (newest.get("timestamp") or {}).get("stop") if newest else None,
            "archive_min": archives[-1].get("min") if archives else None,
            "archive_max": archives[-1].get("max") if archives else None,
        }
    return {"stanza": stanza, "ok": False, "code": 1, "status": "missing stanza", "count": 0, "full": 0,
            "latest_label": None, "latest_type": None, "latest_start": None, "latest_stop": None,
            "archive_min": None, "archive_max": None}


def compare_checks(expected, restored):
    """Compare two dicts ``key -> {rows, checksum}``; returns a list of mismatch messages."""
    problems = []
    for key in sorted(set(expected or {}) | set(restored or {})):
        want = (expected or {}).get(key)
        got = (restored or {}).get(key)
        if want is None:
            problems.append("%s: restored but not expected" % key)
        elif got is None:
            problems.append("%s: missing from the restore" % key)
        elif str(want.get("rows")) != str(got.get("rows")) or want.get("checksum") != got.get("checksum"):
            problems.append("%s: expected %s rows (md5 %s), restored %s rows (md5 %s)" % (
                key, want.get("rows"), want.get("checksum"), got.get("rows"), got.get("checksum")))
    return problems
