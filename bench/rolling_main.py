"""Rolling restart under write load (bench/rolling).

The ledger writer of bench/failover_pg (one connection, sequential ids, every acknowledged
COMMIT recorded with its time; libpq connect_timeout 2 s, tcp_user_timeout 2 s, statement
timeout 2 s, no library retries: a failed write is retried on a new connection after 50 ms)
writes through the stack's PostgreSQL write endpoint while `ansible-playbook
playbooks/rolling_restart.yml` runs against the inventory. Afterwards: the longest gap between
two acknowledged writes, how many acknowledged ids are missing (lost), failed writes, and the
playbook's result and duration. Goal: longest gap <= 3 s, 0 lost.

The firewall lets only the app tier reach the write endpoint, so by default the ledger runs
where the application runs: on an app host (`--via app1`, reached over SSH with the lab's key
and user unless --ssh-user/--ssh-key say otherwise), which needs python3-psycopg2 (the app role
installs it). `--via local` runs it on this machine (a test network without the firewall).
The password travels on the ledger's stdin, never on a command line. It is the inventory's
(the --user role's postgresql_users entry) or else the postgresql role's generated file, read
through the secrets contract (bench/addresses.py Inventory.secret; docs/secrets.md).

Addresses come from the inventory (bench/addresses.py): the write endpoint defaults to the first
load balancer's cluster address (the collection's address module: hardened_stack_address, ...)
and the pg_write port; the --via host is reached over SSH at its ansible_host (in the lab its
management name, app1.mgmt.hslab). An IPv6 endpoint is written bracketed: [fd00::10]:5000.
"""

import argparse
import inspect
import json
import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import addresses  # noqa: E402  (bench/addresses.py: the inventory's addresses)
from failover_pg_main import Writer, ledger_dsn  # noqa: E402  (the same ledger client)

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The ledger process: reads the DSN from the first line of stdin, writes until stdin closes,
# then keeps writing `after` seconds, and prints one JSON line with what it measured.
LEDGER = '''import json, sys, threading, time
import psycopg2
@WRITER@
after = float(sys.argv[1])
dsn = sys.stdin.readline().rstrip("\\n")
with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
    cur.execute("create table if not exists bench_ledger (id bigint primary key, at timestamptz default now())")
    cur.execute("truncate bench_ledger")
conn.close()
writer = Writer(dsn)
start = time.monotonic()
writer.start()
time.sleep(2)
print("writing", flush=True)
sys.stdin.read()
time.sleep(after)
writer.stop_flag.set()
writer.join(10)
acked = [i for i, _t in writer.acks]
with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
    cur.execute("select count(*) from bench_ledger where id = any(%s)", (acked,))
    present = cur.fetchone()[0]
conn.close()
print(json.dumps({"times": [round(t - start, 4) for _i, t in writer.acks], "acked": len(acked),
                  "present": present, "errors": writer.errors}), flush=True)
'''.replace("@WRITER@", inspect.getsource(Writer))


def gaps(times: list[float]) -> tuple[float, float]:
    """(longest gap between two consecutive acknowledged writes, when it started)."""
    pairs = [(b - a, a) for a, b in zip(times, times[1:], strict=False)]
    return max(pairs, default=(float("inf"), 0.0))


def ledger_command(args, via_address: str) -> list[str]:
    script = ["python3", "-c", LEDGER, str(args.after)]
    if args.via == "local":
        return [sys.executable, *script[1:]]
    user, key = args.ssh_user, args.ssh_key
    if user is None or key is None:
        sys.path.insert(0, PROJECT)
        from lab import hosts  # noqa: PLC0415  (the lab's SSH user and key)
        user, key = user or hosts.SSH_USER, key or hosts.ssh_key()
    return ["ssh", "-i", key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{user}@{via_address}",
            " ".join(shlex.quote(a) for a in script)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", help="HAProxy write endpoint ADDRESS:PORT, IPv6 bracketed (default: the "
                    "inventory's first load balancer's cluster address, pg_write port)")
    ap.add_argument("--user-group", default="postgres", help="inventory group whose PostgreSQL role --user is "
                    "(its password: the vault variable, else the postgresql role's generated file)")
    ap.add_argument("--ca", required=True, help="CA certificate (path on the host the ledger runs on)")
    ap.add_argument("--user", default="app")
    ap.add_argument("--dbname", default="appdb")
    ap.add_argument("--via", default="local", help="where the ledger runs: an app host's name, or local")
    ap.add_argument("--via-address", help="SSH address or name of the --via host (default: its ansible_host "
                    "in the inventory, the lab's management name <host>.mgmt.hslab)")
    ap.add_argument("--ssh-user", help="SSH user for --via (default: the lab's)")
    ap.add_argument("--ssh-key", help="SSH private key for --via (default: the lab's)")
    ap.add_argument("--inventory", default=os.path.join(PROJECT, "inventories", "lab"))
    ap.add_argument("--after", type=float, default=3.0, help="seconds of writing after the playbook ends")
    ap.add_argument("playbook_args", nargs="*", help="extra ansible-playbook arguments (after --)")
    args = ap.parse_args()
    inventory = addresses.Inventory(args.inventory)
    # The role's password as the cluster has it: the postgresql_users entry's password when the
    # inventory gives one, else the postgresql role's file (secrets contract; never created).
    password = inventory.db_password(args.user, args.user_group)
    endpoint = args.endpoint or inventory.endpoint("pg_write")
    via_address = args.via_address or (inventory.management_name(args.via) if args.via != "local" else "")
    dsn = ledger_dsn(endpoint, dbname=args.dbname, user=args.user, password=password, ca=args.ca)

    ledger = subprocess.Popen(ledger_command(args, via_address), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    ledger.stdin.write(dsn + "\n")
    ledger.stdin.flush()
    if ledger.stdout.readline().strip() != "writing":
        ledger.kill()
        print("the ledger did not start writing (see its error above)")
        return 1
    t0 = time.monotonic()
    cmd = ["ansible-playbook", "-i", args.inventory, os.path.join(PROJECT, "playbooks", "rolling_restart.yml"),
           *args.playbook_args]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    duration = time.monotonic() - t0
    out, _err = ledger.communicate(timeout=args.after + 60)
    result = json.loads(out.strip().splitlines()[-1])
    longest, at = gaps(result["times"])
    if res.returncode != 0:
        print(res.stdout[-4000:] + res.stderr[-2000:])
    print(f"Rolling restart under load (one writer on {args.via} through {endpoint})")
    print(f"  playbook rc {res.returncode} in {duration:.1f} s")
    print(f"  acknowledged writes {result['acked']}, lost {result['acked'] - result['present']}, "
          f"failed writes {result['errors']}")
    print(f"  longest write gap {longest:.2f} s (starting {at - 2:.1f} s into the playbook); goal <= 3 s, 0 lost")
    return 0 if res.returncode == 0 and result["acked"] == result["present"] else 1


if __name__ == "__main__":
    sys.exit(main())
