"""PostgreSQL/Patroni failover benchmark against the postgres Molecule scenario's containers.

One writer inserts sequential ids through the HAProxy write endpoint (pg_write on pg-lb) and
records every id whose COMMIT was acknowledged, with its time. The leader is then taken away:

  kill    docker kill of the leader's container (abrupt node loss: the leader key must expire)
  stop    docker stop (clean shutdown: Patroni hands the leader key over on the way out)
  pgkill  kill -9 of the leader's postmaster (Patroni restarts PostgreSQL or fails over)

Per trial: the longest gap between two acknowledged writes, and how many acknowledged ids are
missing afterwards. Killed/stopped containers are started again and the cluster must be healthy
(3 members, replicas streaming on the leader's timeline) before the next trial. Each failure
mode runs with asynchronous replication and with Patroni's synchronous_mode.

The client uses short timeouts and no retries of its own (libpq connect_timeout=2, the minimum;
tcp_user_timeout 2 s; statement_timeout 2 s): a failed write is simply retried on a new
connection after 50 ms, so the gap measures the cluster and the endpoint, not the library.
Traffic goes only to the scenario's containers, at their cluster addresses (IPv6 in this
scenario), read from molecule/postgres/molecule.yml through molecule/_shared/verifier.py.
"""

import argparse
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

import psycopg2
import psycopg2.extensions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import addresses  # noqa: E402  (bench/addresses.py: molecule.yml through the verifiers' helpers)

SCENARIO = "postgres"
verifier = addresses.scenario()
# {member: cluster address}: where Patroni's API and PostgreSQL listen (container = member name).
NODES = verifier.cluster_addresses_of(verifier.group("postgres", SCENARIO), SCENARIO)
API_PORT = addresses.port("patroni_api")
DATA_DIR = "/var/lib/postgresql/15/hardened-stack"
MODES = ("kill", "stop", "pgkill")


def ledger_dsn(endpoint: str, *, dbname: str, user: str, password: str, ca: str) -> str:
    """The ledger client's libpq connection string to ``endpoint`` (ADDRESS:PORT, IPv6
    bracketed; libpq's host= takes it bare): short timeouts, no retries of the library. Every
    value is quoted by psycopg2 for libpq (a password with spaces, quotes or backslashes)."""
    host, port = addresses.split_endpoint(endpoint)
    return psycopg2.extensions.make_dsn(
        host=host, port=port, dbname=dbname, user=user, password=password, sslmode="verify-full", sslrootcert=ca,
        connect_timeout=2, tcp_user_timeout=2000, keepalives_idle=1, keepalives_interval=1, keepalives_count=2,
        options="-c statement_timeout=2000")


class Cluster:
    def __init__(self, ca):
        self.ctx = ssl.create_default_context(cafile=ca)

    def state(self):
        for addr in NODES.values():
            try:
                url = verifier.url("https", addr, API_PORT, "/cluster")
                with urllib.request.urlopen(url, context=self.ctx, timeout=2) as r:  # noqa: S310
                    return json.loads(r.read())
            except OSError:
                continue
        return {"members": []}

    def leader(self):
        return next((m["name"] for m in self.state()["members"] if m["role"] in ("leader", "master")
                     and m["state"] == "running"), None)

    def healthy(self):
        ms = self.state()["members"]
        lead = [m for m in ms if m["role"] in ("leader", "master") and m["state"] == "running"]
        if len(ms) != len(NODES) or len(lead) != 1:
            return False
        return all(m["state"] in ("running", "streaming") and isinstance(m.get("lag"), int)
                   and m["lag"] < 1048576 and m.get("timeline") == lead[0].get("timeline")
                   for m in ms if m is not lead[0])

    def wait_healthy(self, timeout=240):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.healthy():
                return True
            time.sleep(1)
        raise SystemExit(f"cluster not healthy after {timeout}s: {json.dumps(self.state())}")


def docker(*args, check=True):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


def set_sync(sync):
    """synchronous_mode through Patroni (patronictl on a member: REST API + DCS, cluster-wide)."""
    for node in NODES:
        res = docker("exec", node, "patronictl", "-c", "/etc/patroni/config.yml", "edit-config", "--force",
                     "-s", f"synchronous_mode={'true' if sync else 'false'}", check=False)
        if res.returncode == 0:
            return
    raise SystemExit("could not change synchronous_mode: " + res.stderr)


class Writer(threading.Thread):
    def __init__(self, dsn):
        super().__init__(daemon=True)
        self.dsn = dsn
        self.acks = []          # (id, monotonic time of the acknowledged commit)
        self.stop_flag = threading.Event()
        self.next_id = 1
        self.errors = 0

    def run(self):
        conn = None
        while not self.stop_flag.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(self.dsn)
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("insert into bench_ledger (id) values (%s)", (self.next_id,))
                self.acks.append((self.next_id, time.monotonic()))
                self.next_id += 1
            except psycopg2.Error:
                self.errors += 1
                self.next_id += 1          # an unacknowledged id is never reused
                try:
                    if conn is not None:
                        conn.close()
                except psycopg2.Error:
                    pass
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()


def postmaster_pid(node):
    res = docker("exec", node, "head", "-1", f"{DATA_DIR}/postmaster.pid", check=False)
    return res.stdout.strip() if res.returncode == 0 else None


def take_leader_away(mode, leader, timeout=90):
    """Take the leader away; return once the failure is complete (container down, or for
    pgkill: a new postmaster runs, whether restarted in place or on another member)."""
    if mode == "kill":
        docker("kill", leader)
    elif mode == "stop":
        docker("stop", "--time", "30", leader)
    else:
        old = postmaster_pid(leader)
        docker("exec", leader, "sh", "-c", f"kill -9 {old}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = postmaster_pid(leader)
            if pid and pid != old:
                break
            time.sleep(0.2)


def trial(cluster, dsn, mode, *, settle=2.0, after=3.0, timeout=90.0):
    cluster.wait_healthy()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("create table if not exists bench_ledger (id bigint primary key, at timestamptz default now())")
        cur.execute("truncate bench_ledger")
    conn.close()
    leader = cluster.leader()
    writer = Writer(dsn)
    writer.start()
    time.sleep(settle)
    t_fail = time.monotonic()
    take_leader_away(mode, leader)
    t_done = time.monotonic()      # the container is down / PostgreSQL was restarted
    # Writes must come back after the leader is gone and keep going for `after` seconds.
    deadline = t_done + timeout
    while time.monotonic() < deadline:
        resumed = [t for _ack, t in writer.acks if t > t_done]
        if resumed and time.monotonic() - resumed[0] >= after:
            break
        time.sleep(0.2)
    writer.stop_flag.set()
    writer.join(10)
    times = [t for _ack, t in writer.acks]
    gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=float("inf"))
    if not any(t > t_fail for t in times):
        gap = float("inf")
    if mode in ("kill", "stop"):
        docker("start", leader)
    cluster.wait_healthy()
    acked = [i for i, _when in writer.acks]
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from bench_ledger where id = any(%s)", (acked,))
        present = cur.fetchone()[0]
    conn.close()
    new_leader = cluster.leader()
    return {"gap": gap, "acked": len(acked), "lost": len(acked) - present, "from": leader, "to": new_leader,
            "errors": writer.errors}


def pct(values, p):
    """Percentile by linear interpolation between closest ranks."""
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def write_endpoint():
    """cluster address:port of pg_write on the scenario's load balancer (pg-lb), IPv6 bracketed."""
    lb = verifier.group("loadbalancers", SCENARIO)[0]
    return verifier.host_port(verifier.cluster_address(lb, SCENARIO), addresses.port("pg_write"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=5, help="trials per failure mode and replication mode (default 5)")
    ap.add_argument("--mode", choices=(*MODES, "all"), default="all")
    ap.add_argument("--replication", choices=("async", "sync", "both"), default="both")
    ap.add_argument("--endpoint", default=write_endpoint(),
                    help="HAProxy write endpoint ADDRESS:PORT, IPv6 bracketed (default: pg-lb's cluster "
                         "address and pg_write port from molecule.yml and the port map: %(default)s)")
    args = ap.parse_args()

    ca = os.path.join(verifier.ephemeral_directory(SCENARIO), "ca", "ca.crt")
    # The app role's password, as the scenario's PostgreSQL members have it (secrets contract).
    password = verifier.secret("postgresql", on=next(iter(NODES)), scenario=SCENARIO, user="app")
    dsn = ledger_dsn(args.endpoint, dbname="appdb", user="app", password=password, ca=ca)
    cluster = Cluster(ca)
    modes = MODES if args.mode == "all" else (args.mode,)
    repl = ("async", "sync") if args.replication == "both" else (args.replication,)
    rows = []
    try:
        for r in repl:
            set_sync(r == "sync")
            cluster.wait_healthy()
            time.sleep(3)
            for mode in modes:
                results = []
                for n in range(args.trials):
                    res = trial(cluster, dsn, mode)
                    results.append(res)
                    print(f"  {r:5} {mode:6} trial {n + 1}/{args.trials}: gap {res['gap']:.2f} s, "
                          f"acked {res['acked']}, lost {res['lost']}, failed writes {res['errors']}, "
                          f"leader {res['from']} -> {res['to']}", flush=True)
                gaps = [x["gap"] for x in results]
                rows.append((r, mode, len(results), pct(gaps, 50), pct(gaps, 95), max(gaps),
                             sum(x["lost"] for x in results), sum(x["acked"] for x in results)))
    finally:
        set_sync(False)
    print()
    print(f"PostgreSQL/Patroni failover through HAProxy ({args.endpoint}), one writer, gap = longest time between")
    print("two acknowledged commits; lost = acknowledged ids missing afterwards")
    head = ("replication", "mode", "trials", "p50 s", "p95 s", "max s", "lost", "acked")
    print("{:12} {:7} {:>6} {:>7} {:>7} {:>7} {:>5} {:>7}".format(*head))
    for r, mode, n, p50, p95, mx, lost, acked in rows:
        print(f"{r:12} {mode:7} {n:6d} {p50:7.2f} {p95:7.2f} {mx:7.2f} {lost:5d} {acked:7d}")


if __name__ == "__main__":
    main()
