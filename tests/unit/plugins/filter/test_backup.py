"""Backup tier filters (plugins/filter/backup.py, module_utils/backup.py): input checks, drill
target checks, pg_hba lines for the backup host, pgbackrest info summaries, check comparison."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter import backup as flt
from ansible_collections.hardened.stack.plugins.module_utils import backup

GROUPS = {
    "all": ["pg1", "pg2", "mon1", "app1"],
    "postgres": ["pg1", "pg2"],
    "backup": ["mon1"],
    "app": ["app1"],
}
HOSTVARS = {"pg1": {"ansible_host": "10.0.0.11"}, "pg2": {"ansible_host": "10.0.0.12"},
            "mon1": {"ansible_host": "10.0.0.30"}, "app1": {"ansible_host": "10.0.0.21"}}
SCHEDULES = {"full": "Sun *-*-* 01:00:00", "diff": "Mon..Sat *-*-* 01:00:00", "pg_dump": "*-*-* 02:30:00"}


def problems(**kw):
    args = {"groups": GROUPS, "schedules": SCHEDULES}
    args.update(kw)
    return backup.input_problems(**args)


def test_good_inputs_have_no_problem():
    assert problems() == []
    assert flt.backup_input_problems(GROUPS, schedules=SCHEDULES) == []


def test_backup_host_missing_from_inventory():
    found = problems(groups=dict(GROUPS, backup=[]))
    assert len(found) == 1 and "has no host" in found[0] and "'backup'" in found[0]
    assert "has no host" in problems(groups={k: v for k, v in GROUPS.items() if k != "backup"})[0]


def test_two_backup_hosts_refused():
    found = problems(groups=dict(GROUPS, backup=["mon1", "app1"]))
    assert found == ["the inventory group 'backup' has 2 hosts (mon1, app1): the pgBackRest repository "
                     "lives on exactly one"]


def test_backup_host_that_is_a_member_refused():
    found = problems(groups=dict(GROUPS, backup=["pg1"]))
    assert any("pg1 is both the backup host and a PostgreSQL member" in p for p in found)


def test_no_members_refused():
    assert any("no PostgreSQL member" in p for p in problems(groups=dict(GROUPS, postgres=[])))


@pytest.mark.parametrize("field", ["retention_full", "retention_diff", "pg_dump_retention_days"])
@pytest.mark.parametrize("value", [0, -1, "x", None, True])
def test_retention_below_one_refused(field, value):
    found = problems(**{field: value})
    assert len(found) == 1 and found[0].startswith(field + " is ") and "0 would keep nothing" in found[0]


def test_retention_as_string_number_accepted():
    assert problems(retention_full="3") == []


@pytest.mark.parametrize("stanza", ["", "a b", "x" * 65, "-x", None])
def test_bad_stanza_refused(stanza):
    assert any("stanza" in p for p in problems(stanza=stanza))


@pytest.mark.parametrize("value", ["", "  ", "daily; rm -rf /", None])
def test_bad_schedule_refused(value):
    found = problems(schedules=dict(SCHEDULES, diff=value))
    assert len(found) == 1 and "schedule diff" in found[0]


def test_bad_dump_user_refused():
    assert any("pg_dump user" in p for p in problems(pg_dump_user="Robert'); DROP"))


def test_drill_target_backup_host_ok():
    assert backup.drill_problems("mon1", GROUPS) == []
    assert flt.backup_drill_problems("mon1", GROUPS, target_time="2026-11-24 20:15:00+00") == []


def test_drill_target_live_member_refused():
    found = backup.drill_problems("pg2", GROUPS)
    assert found == ["restore target pg2 is a live member of 'postgres': a restore there would overwrite "
                     "production; restore into the backup host"]


def test_drill_target_other_host_or_none_refused():
    assert "not in the 'backup' group" in backup.drill_problems("app1", GROUPS)[0]
    assert backup.drill_problems("", GROUPS) == ["no restore target host given"]


@pytest.mark.parametrize("when", ["yesterday", "2026-13", "2026-11-24 20:15"])
def test_drill_bad_time_refused(when):
    assert any("target_time" in p for p in backup.drill_problems("mon1", GROUPS, target_time=when))


def test_drill_bad_tables_refused():
    found = backup.drill_problems("mon1", GROUPS, tables=[{"database": "appdb"}, {"database": "a", "table": "x;drop"}])
    assert len(found) == 2


def test_pg_hba_lines_for_the_backup_host():
    assert flt.backup_pg_hba(GROUPS, HOSTVARS, "pgdump") == [
        {"type": "hostssl", "database": "all", "user": "pgdump", "address": "10.0.0.30/32", "method": "scram-sha-256"}]
    assert flt.backup_pg_hba(GROUPS, HOSTVARS, "") == []
    assert flt.backup_pg_hba({"postgres": ["pg1"]}, HOSTVARS, "pgdump") == []


def test_pg_hba_lines_unknown_address_is_a_filter_error():
    with pytest.raises(AnsibleFilterError):
        flt.backup_pg_hba({"backup": ["ghost"]}, {"ghost": {}}, "pgdump")


INFO = [{
    "name": "main",
    "status": {"code": 0, "message": "ok"},
    "archive": [{"id": "15-1", "min": "000000010000000000000003", "max": "000000020000000000000009"}],
    "backup": [
        {"label": "20261124-100000F_20261124-110000D", "type": "diff",
         "timestamp": {"start": 1700003600, "stop": 1700003700}},
        {"label": "20261124-100000F", "type": "full", "timestamp": {"start": 1700000000, "stop": 1700000100}},
    ],
}]


def test_info_summary_newest_backup():
    s = flt.backup_info_summary(INFO, "main")
    assert s["ok"] and s["code"] == 0 and s["count"] == 2 and s["full"] == 1
    assert s["latest_type"] == "diff" and s["latest_stop"] == 1700003700
    assert s["archive_max"] == "000000020000000000000009"


def test_info_summary_missing_stanza():
    s = backup.info_summary([{"name": "main", "status": {"code": 1, "message": "missing stanza path"}}], "main")
    assert not s["ok"] and s["code"] == 1 and s["count"] == 0
    assert backup.info_summary([], "other")["code"] == 1


def test_compare_checks():
    want = {"appdb.public.t": {"rows": 3, "checksum": "abc"}}
    assert flt.backup_compare_checks(want, {"appdb.public.t": {"rows": 3, "checksum": "abc"}}) == []
    assert flt.backup_compare_checks(want, {"appdb.public.t": {"rows": "3", "checksum": "abc"}}) == []
    assert "expected 3 rows" in backup.compare_checks(want, {"appdb.public.t": {"rows": 4, "checksum": "abd"}})[0]
    assert backup.compare_checks(want, {}) == ["appdb.public.t: missing from the restore"]
    assert backup.compare_checks({}, want) == ["appdb.public.t: restored but not expected"]
