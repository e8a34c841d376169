"""Rolling restart under write load (bench/rolling).

The ledger writer of bench/failover_pg (one connection, sequential ids, every acknowledged
COMMIT recorded with its time; libpq connect_timeout 2 s, tcp_user_timeout 2 s, statement
timeout 2 s, no library retries: a failed write is retried on a new connection after 50 ms)
writes through the stack's PostgreSQL write endpoint while `ansible-playbook
playbooks/rolling_restart.yml` runs against the inventory. Afterwards: the longest gap between
two acknowledged writes, how many acknowledged ids are missing (lost), failed writes, and the
playbook's result and duration. Goal: longest gap <= 3 s, 0 lost. Traffic goes only to the
endpoint given (the lab's load balancer).
"""

import argparse
import os
import subprocess
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from failover_pg_main import Writer  # noqa: E402  (the same ledger client)

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True, help="HAProxy write endpoint ADDRESS:PORT (pg_write)")
    ap.add_argument("--password-file", required=True, help="file holding the application role's password")
    ap.add_argument("--ca", required=True, help="CA certificate that signed the members' certificates")
    ap.add_argument("--user", default="app")
    ap.add_argument("--dbname", default="appdb")
    ap.add_argument("--inventory", default=os.path.join(PROJECT, "inventories", "lab"))
    ap.add_argument("--after", type=float, default=3.0, help="seconds of writing after the playbook ends")
    ap.add_argument("playbook_args", nargs="*", help="extra ansible-playbook arguments (after --)")
    args = ap.parse_args()
    with open(args.password_file, encoding="utf-8") as fh:
        password = fh.read().split()[0]
    host, port = args.endpoint.split(":")
    dsn = (f"host={host} port={port} dbname={args.dbname} user={args.user} password={password} sslmode=verify-full "
           f"sslrootcert={args.ca} connect_timeout=2 tcp_user_timeout=2000 keepalives_idle=1 keepalives_interval=1 "
           f"keepalives_count=2 options='-c statement_timeout=2000'")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("create table if not exists bench_ledger (id bigint primary key, at timestamptz default now())")
        cur.execute("truncate bench_ledger")
    conn.close()

    writer = Writer(dsn)
    writer.start()
    time.sleep(2)
    t0 = time.monotonic()
    cmd = ["ansible-playbook", "-i", args.inventory, os.path.join(PROJECT, "playbooks", "rolling_restart.yml"),
           *args.playbook_args]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    duration = time.monotonic() - t0
    time.sleep(args.after)
    writer.stop_flag.set()
    writer.join(10)

    times = [t for _i, t in writer.acks]
    gaps = [(b - a, a - t0) for a, b in zip(times, times[1:], strict=False)]
    longest, at = max(gaps, default=(float("inf"), 0.0))
    acked = [i for i, _t in writer.acks]
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from bench_ledger where id = any(%s)", (acked,))
        present = cur.fetchone()[0]
    conn.close()
    if res.returncode != 0:
        print(res.stdout[-4000:] + res.stderr[-2000:])
    print("Rolling restart under load (one writer through %s)" % args.endpoint)
    print(f"  playbook rc {res.returncode} in {duration:.1f} s")
    print(f"  acknowledged writes {len(acked)}, lost {len(acked) - present}, failed writes {writer.errors}")
    print(f"  longest write gap {longest:.2f} s (starting {at:.1f} s into the playbook); goal <= 3 s, 0 lost")
    return 0 if res.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
