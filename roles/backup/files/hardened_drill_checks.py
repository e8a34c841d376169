# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Row counts and checksums of tables, for the restore drill (playbooks/restore_drill.yml).

Run as postgres with one JSON argument:
  {"mode": "snapshot", "socket": "/var/run/postgresql", "tables": [...], "restore_point": "name"}
    on the live leader: every chosen table is locked IN SHARE MODE (writers wait, readers do
    not), counted and checksummed, a restore point is created while the locks are held, the
    WAL segment is switched and archived; so the restored state at that restore point must
    equal the checksums exactly.
  {"mode": "switch", "socket": ...}  only switch the WAL segment and wait until it is archived.
  {"mode": "measure", "socket": "/scratch", "port": 5432, "tables": [...]}
    on the restored scratch instance: the same counts and checksums, no lock.
tables: [{"database": "appdb", "table": "public.ledger"}]; empty: every user table of every
database. Prints one JSON object.
"""
import json
import sys
import time

import psycopg2
from psycopg2 import sql

CHECKSUM = ("SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), md5('')) "
            "FROM {} AS t")


def connect(args, db):
    conn = psycopg2.connect(dbname=db, host=args.get("socket", "/var/run/postgresql"),
                            port=args.get("port", 5432), connect_timeout=10)
    return conn


def ident(name):
    parts = name.split(".", 1)
    return sql.Identifier(*parts) if len(parts) == 2 else sql.Identifier("public", parts[0])


def discover(args):
    conn = connect(args, "postgres")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")
    tables = []
    for (db,) in cur.fetchall():
        c = connect(args, db)
        k = c.cursor()
        k.execute("SELECT schemaname || '.' || relname FROM pg_stat_user_tables ORDER BY 1")
        tables += [{"database": db, "table": t} for (t,) in k.fetchall()]
        c.close()
    conn.close()
    return tables


def measure(cur, table):
    cur.execute(sql.SQL(CHECKSUM).format(ident(table)))
    rows, checksum = cur.fetchone()
    return {"rows": rows, "checksum": checksum}


def switch_and_wait(args, timeout=120):
    conn = connect(args, "postgres")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_walfile_name(pg_switch_wal())")
    wal = cur.fetchone()[0]
    deadline = time.time() + timeout
    while time.time() < deadline:
        cur.execute("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        last = cur.fetchone()[0]
        # A segment (or a .backup file named after one) at or past ours; .history files skipped.
        if len(last) >= 24 and last[:24] >= wal:
            conn.close()
            return wal
        time.sleep(0.5)
    conn.close()
    raise SystemExit("WAL segment %s was not archived within %ss (is archive_command working?)" % (wal, timeout))


def main():
    args = json.loads(sys.argv[1])
    mode = args["mode"]
    if mode == "switch":
        print(json.dumps({"archived": switch_and_wait(args)}))
        return 0
    tables = args.get("tables") or discover(args)
    by_db = {}
    for t in tables:
        by_db.setdefault(t["database"], []).append(t["table"])
    checks = {}
    conns = []
    try:
        for db, names in sorted(by_db.items()):
            conn = connect(args, db)
            conns.append(conn)
            cur = conn.cursor()
            if mode == "snapshot":
                cur.execute("SET LOCAL lock_timeout = %s", (args.get("lock_timeout", "10s"),))
                cur.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.SQL(", ").join(ident(n) for n in names)))
            for name in names:
                checks["%s.%s" % (db, name)] = measure(cur, name)
        out = {"checks": checks, "tables": tables}
        if mode == "snapshot":
            conn = connect(args, "postgres")
            conn.autocommit = True
            cur = conn.cursor()
            cur.execute("SELECT pg_create_restore_point(%s)::text", (args["restore_point"],))
            out["restore_point"] = args["restore_point"]
            out["restore_point_lsn"] = cur.fetchone()[0]
            conn.close()
    finally:
        for conn in conns:
            conn.rollback()
            conn.close()
    if mode == "snapshot":
        out["archived"] = switch_and_wait(args)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
