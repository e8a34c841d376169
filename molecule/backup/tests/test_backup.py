"""Behaviour of the backup scenario: a backup is taken and published as a metric, WAL is
archived from the leader, pg_dump writes a verified dump, the restore drill restores the latest
backup into a scratch instance and its checks pass, a PITR to a timestamp between two writes
returns exactly the rows before it, a backup after a switchover still succeeds, and bad input
stops before any change.

Tests run in file order and share the cluster.
"""

# ruff: noqa: S608 (SQL built from integers generated here)
import functools
import json
import os
import sys
import time

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
sys.path.insert(0, os.path.join(PROJECT, "molecule", "_shared"))
import verifier  # noqa: E402  (molecule/_shared/verifier.py)
PLAYBOOKS = os.path.join(PROJECT, "playbooks")
MEMBERS = ["backup-pg-1", "backup-pg-2"]
REPO = "backup-repo"
STANZA = "hardened-stack"
PROM = "/var/lib/prometheus/node-exporter"


def host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


playbook = functools.partial(verifier.playbook, cwd=SCENARIO, timeout=1200)
recap = verifier.recap


def leader():
    for node in MEMBERS:
        res = host(node).run("cd /tmp && sudo -u postgres psql -XAtqc 'select pg_is_in_recovery()'")
        if res.rc == 0 and res.stdout.strip() == "f":
            return node
    return None


def sql(sql_text, db="appdb"):
    node = leader()
    assert node, "no leader"
    res = host(node).run(f"cd /tmp && sudo -u postgres psql -XAtqd {db} -v ON_ERROR_STOP=1 -c \"{sql_text}\"")
    assert res.rc == 0, res.stderr
    return res.stdout.strip()


def info():
    res = host(REPO).run(f"cd /tmp && sudo -u postgres pgbackrest --stanza={STANZA} --output=json info")
    assert res.rc == 0, res.stderr
    return json.loads(res.stdout)[0]


def metrics():
    out = host(REPO).run(f"cat {PROM}/hardened_backup_*.prom").stdout
    found = {}
    for line in out.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def checksum(where):
    return sql("SELECT count(*) || ' ' || coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), md5('')) "
               f"FROM public.ledger t WHERE {where}").split()


def test_first_full_backup_is_in_the_repository_and_published():
    data = info()
    assert data["status"]["code"] == 0, data["status"]
    assert any(b["type"] == "full" for b in data["backup"])
    m = metrics()
    key = f'hardened_backup_last_success_timestamp_seconds{{stanza="{STANZA}",tool="pgbackrest"}}'
    assert key in m and time.time() - m[key] < 3600, m
    assert m[f'hardened_backup_last_run_success{{stanza="{STANZA}",tool="pgbackrest",type="full"}}'] == 1


def test_leader_archives_wal_into_the_repository():
    before = int(sql("SELECT archived_count FROM pg_stat_archiver", db="postgres"))
    sql("SELECT pg_switch_wal()", db="postgres")
    sql("CREATE TABLE IF NOT EXISTS public.ledger (id int PRIMARY KEY, note text)")
    sql("INSERT INTO public.ledger SELECT g, 'w' || g FROM generate_series(1, 5) g ON CONFLICT DO NOTHING")
    sql("SELECT pg_switch_wal()", db="postgres")
    deadline = time.time() + 60
    while time.time() < deadline and int(sql("SELECT archived_count FROM pg_stat_archiver", db="postgres")) <= before:
        time.sleep(1)
    assert int(sql("SELECT archived_count FROM pg_stat_archiver", db="postgres")) > before
    assert sql("SELECT last_failed_time IS NULL OR last_archived_time > last_failed_time FROM pg_stat_archiver",
               db="postgres") == "t"


def test_backup_host_never_runs_a_cluster_and_timers_are_scheduled():
    repo = host(REPO)
    assert repo.run("pg_lsclusters -h").stdout.strip() == ""
    timers = repo.run("systemctl list-timers --all --no-legend").stdout
    for unit in ("hardened-backup-full.timer", "hardened-backup-diff.timer", "hardened-pg-dump.timer"):
        assert unit in timers


def test_pg_dump_writes_a_verified_dump_and_its_metric():
    repo = host(REPO)
    res = repo.run("sudo systemctl start hardened-pg-dump.service")
    assert res.rc == 0, repo.run("sudo journalctl -u hardened-pg-dump.service -n 30 --no-pager").stdout
    dumps = repo.run("sudo ls /var/backups/pg_dump/appdb/").stdout.split()
    gz = [d for d in dumps if d.endswith(".sql.gz")]
    assert gz, dumps
    path = f"/var/backups/pg_dump/appdb/{gz[-1]}"
    assert repo.run(f"sudo gzip -t {path}").rc == 0
    assert "CREATE TABLE public.ledger" in repo.run(f"sudo zcat {path}").stdout
    assert repo.run(f"sudo sh -c 'cd /var/backups/pg_dump/appdb && sha256sum -c {gz[-1]}.sha256'").rc == 0
    m = metrics()
    assert m[f'hardened_backup_last_run_success{{database="appdb",stanza="{STANZA}",tool="pg_dump"}}'] == 1


def test_restore_drill_restores_latest_backup_and_checks_pass():
    # Rows written after the full backup: the drill replays WAL past it to its restore point.
    sql("INSERT INTO public.ledger SELECT g, 'after-backup-' || g FROM generate_series(6, 20) g")
    rc, out = playbook(os.path.join(PLAYBOOKS, "restore_drill.yml"),
                       "-e", json.dumps({"restore_drill_tables": [{"database": "appdb", "table": "public.ledger"}]}))
    assert rc == 0, out[-4000:]
    assert "restore drill passed: 1 table(s) match" in out, out[-4000:]
    report = json.loads(host(REPO).run("sudo cat /var/log/pgbackrest/restore-drill-last.json").stdout)
    assert report["problems"] == [] and report["restored"]["appdb.public.ledger"]["rows"] == 20, report
    assert report["restored"] == report["expected"]
    repo = host(REPO)
    assert repo.run("sudo test -e /var/lib/pgbackrest-drill").rc != 0
    assert repo.run("pgrep -f hardened-drill").rc != 0
    assert "hardened_backup_restore_drill_success{stanza=\"hardened-stack\"} 1" in repo.run(
        f"cat {PROM}/hardened_backup_restore_drill.prom").stdout


def test_point_in_time_restore_returns_exactly_the_rows_before_the_timestamp():
    sql("INSERT INTO public.ledger SELECT g, 'before-t-' || g FROM generate_series(100, 109) g")
    time.sleep(2)
    target = sql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    time.sleep(2)
    sql("INSERT INTO public.ledger SELECT g, 'after-t-' || g FROM generate_series(200, 209) g")
    sql("SELECT pg_switch_wal()", db="postgres")
    rows, md5 = checksum("id < 200")
    assert rows == "30"
    expected = {"appdb.public.ledger": {"rows": int(rows), "checksum": md5}}
    rc, out = playbook(os.path.join(PLAYBOOKS, "restore_drill.yml"), "-e", json.dumps({
        "restore_drill_target_time": target, "restore_drill_expected": expected,
        "restore_drill_tables": [{"database": "appdb", "table": "public.ledger"}]}))
    assert rc == 0, out[-4000:]
    assert "restore drill passed" in out, out[-4000:]
    # And it is exact: the live table has the later rows, the restore did not.
    assert checksum("true")[0] == "40"


def test_backup_after_switchover_succeeds():
    before = leader()
    rc, out = playbook(os.path.join(PLAYBOOKS, "switchover.yml"), "-e", "switchover_tier=postgres")
    assert rc == 0, out[-3000:]
    after = leader()
    assert after and after != before
    count = len(info()["backup"])
    repo = host(REPO)
    res = repo.run("sudo systemctl start hardened-backup-diff.service")
    assert res.rc == 0, repo.run("sudo journalctl -u hardened-backup-diff.service -n 40 --no-pager").stdout
    data = info()
    assert len(data["backup"]) == count + 1 and data["backup"][-1]["type"] == "diff"
    assert metrics()[f'hardened_backup_last_run_success{{stanza="{STANZA}",tool="pgbackrest",type="diff"}}'] == 1
    # WAL keeps flowing from the new leader: a write, a segment switch, that segment archived.
    assert leader() == after
    sql("INSERT INTO public.ledger VALUES (1000, 'after-switchover') ON CONFLICT DO NOTHING")
    wal = sql("SELECT pg_walfile_name(pg_switch_wal())", db="postgres")
    deadline = time.time() + 60
    while time.time() < deadline:
        if sql(f"SELECT coalesce(last_archived_wal, '') >= '{wal}' FROM pg_stat_archiver", db="postgres") == "t":
            break
        time.sleep(1)
    assert sql(f"SELECT coalesce(last_archived_wal, '') >= '{wal}' FROM pg_stat_archiver", db="postgres") == "t"


@pytest.mark.parametrize("args, message", [
    (["converge.yml", "-e", "backup_group=nobackup"],
     "the inventory group 'nobackup' has no host: the pgBackRest repository needs exactly one backup host"),
    (["converge.yml", "-e", "backup_retention_full=0"], "retention_full is 0: it must be an integer >= 1"),
    ([os.path.join(PLAYBOOKS, "restore_drill.yml"), "-e", "restore_drill_target=backup-pg-1"],
     "restore target backup-pg-1 is a live member of 'postgres'"),
])
def test_bad_input_stops_before_any_change(args, message):
    rc, out = playbook(*args)
    assert rc != 0
    assert message in " ".join(out.split()), out[-3000:]
    assert all(r["changed"] == 0 for r in recap(out).values()), recap(out)
