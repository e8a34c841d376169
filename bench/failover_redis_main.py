# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failover benchmark for the redis Molecule scenario (Redis + Sentinel, Debian 12).

    molecule converge -s redis        # three Redis + Sentinel containers (molecule/redis/molecule.yml)
    bench/failover_redis              # kill, stop and isolate, 5 trials each
    bench/failover_redis --mode kill --trials 3
    molecule destroy -s redis

A Sentinel-aware client (redis-py's Sentinel, as the app user) writes ids one by one; an id
counts as acknowledged only when WAIT 1 confirms a replica has it. The master's container is
then taken away: ``docker kill`` (abrupt node loss) or ``docker stop`` (clean shutdown).
Reported per trial: the longest gap between two acknowledged writes, and the acknowledged ids
missing on the new master afterwards. ``isolate`` cuts the master off the other Redis hosts
with iptables (inside its container) while a client pinned to it keeps writing: it reports
the writes that master accepted while isolated, how many of them WAIT 1 acknowledged, and how
many were lost when it rejoined as a replica.

Client settings (harness gotcha 16): 0.5 s connect and socket timeouts, no library retries;
the writer retries itself every 50 ms with a new id. Traffic goes only to the scenario's
containers, at their cluster addresses (where Redis and Sentinel listen and what Sentinel
reports), read from molecule/redis/molecule.yml through molecule/_shared/verifier.py. Needs
Debian's python3-redis (bench/failover_redis runs this file with /usr/bin/python3).
"""

import argparse
import os
import subprocess
import sys
import threading
import time

import redis  # Debian's python3-redis (bench/failover_redis runs this with /usr/bin/python3)
from redis.sentinel import Sentinel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import addresses  # noqa: E402  (bench/addresses.py: molecule.yml through the verifiers' helpers)

SCENARIO = "redis"
verifier = addresses.scenario()
TIMEOUT = 0.5


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def platforms():
    """{cluster address: container} of the scenario's Redis hosts (container = platform name)."""
    return {verifier.cluster_address(name, SCENARIO): name for name in verifier.group("redis", SCENARIO)}


def same_address(value):
    """An address as Redis or Sentinel reports it, in the spelling of ``platforms()``."""
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return verifier.cluster_address_literal(value)
    except ValueError:
        return value


def secret(user):
    """ACL user ``user``'s password as the scenario's Redis hosts have it (the vault variable
    redis_<user>_password, else the redis role's file; the secrets contract)."""
    try:
        return verifier.secret("redis", on=verifier.group("redis", SCENARIO)[0], vault=f"redis_{user}_password",
                               scenario=SCENARIO, user=user)
    except verifier.secrets.SecretError as exc:
        sys.exit(f"{exc}\nrun `molecule converge -s redis` first")


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


class Bench:
    def __init__(self, args):
        self.args = args
        self.nodes = platforms()  # cluster address -> container
        self.app_pw = secret("app")
        self.admin_pw = secret("admin")
        self.sentinel_pw = secret("sentinel")
        self.sentinels = [(ip, args.sentinel_port) for ip in sorted(self.nodes)]
        for container in self.nodes.values():
            if docker("inspect", "-f", "{{.State.Status}}", container, check=False).returncode:
                sys.exit(f"container {container} not found: run `molecule converge -s redis` first")

    def set_down_after(self, ms):
        """SENTINEL SET down-after-milliseconds on every Sentinel; return the previous value."""
        previous = None
        for ip, port in self.sentinels:
            s = redis.Redis(host=ip, port=port, username="sentinel", password=self.sentinel_pw,
                            socket_timeout=2, socket_connect_timeout=2)
            info = s.execute_command("SENTINEL", "MASTER", self.args.master_name)
            fields = dict(zip(info[::2], info[1::2], strict=False))
            previous = int(fields.get(b"down-after-milliseconds", fields.get("down-after-milliseconds")))
            s.execute_command("SENTINEL", "SET", self.args.master_name, "down-after-milliseconds", ms)
        return previous

    # -- helpers -------------------------------------------------------------------------
    def sentinel_client(self):
        return Sentinel(self.sentinels, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT,
                        sentinel_kwargs={"username": "app", "password": self.app_pw,
                                         "socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT})

    def node(self, ip, user="admin"):
        return redis.Redis(host=ip, port=self.args.port, username=user,
                           password=self.admin_pw if user == "admin" else self.app_pw,
                           socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry_on_timeout=False)

    def master_ip(self, exclude=None):
        """The master as a majority of reachable Sentinels see it."""
        votes = {}
        for ip, port in self.sentinels:
            if ip == exclude:
                continue
            try:
                s = redis.Redis(host=ip, port=port, username="app", password=self.app_pw,
                                socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
                addr = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.args.master_name)
                host = same_address(addr[0])
                votes[host] = votes.get(host, 0) + 1
            except redis.RedisError:
                pass
        return max(votes, key=votes.get) if votes else None

    def healthy(self):
        """One master, every other node a replica with its link up, CKQUORUM OK."""
        master = self.master_ip()
        if not master:
            return False
        try:
            for ip in self.nodes:
                info = self.node(ip).info("replication")
                if ip == master:
                    if info["role"] != "master" or info.get("connected_slaves", 0) < len(self.nodes) - 1:
                        return False
                elif info["role"] != "slave" or same_address(info.get("master_host", "")) != master \
                        or info.get("master_link_status") != "up":
                    return False
            for ip, port in self.sentinels:
                s = redis.Redis(host=ip, port=port, username="app", password=self.app_pw,
                                socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
                s.execute_command("SENTINEL", "MASTER", self.args.master_name)
        except (redis.RedisError, KeyError):
            return False
        return True

    def wait_healthy(self, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.healthy():
                return True
            time.sleep(1)
        return False

    # -- one writer ----------------------------------------------------------------------
    @staticmethod
    def writer(client, prefix, log_):
        stop, acked, accepted, errors = log_
        i = 0
        while not stop.is_set():
            i += 1
            key = f"{prefix}:{i}"
            try:
                client.set(key, i)
                accepted.append((time.monotonic(), i))
                if int(client.execute_command("WAIT", 1, 1000)) >= 1:
                    acked.append((time.monotonic(), i))
            except (redis.RedisError, OSError) as exc:
                errors.append((time.monotonic(), type(exc).__name__))
                time.sleep(0.05)

    def missing(self, prefix, ids):
        """Acknowledged ids that the current master does not have."""
        master = self.master_ip()
        r = self.node(master, user="app")
        lost = 0
        ids = list(ids)
        for n in range(0, len(ids), 500):
            chunk = ids[n:n + 500]
            values = r.mget([f"{prefix}:{i}" for i in chunk])
            lost += sum(1 for v in values if v is None)
        return lost

    # -- modes ---------------------------------------------------------------------------
    def trial_take_away(self, how, n):
        if not self.wait_healthy():
            sys.exit("cluster not healthy before the trial")
        master = self.master_ip()
        container = self.nodes[master]
        prefix = f"bench:{how}:{int(time.time())}:{n}"
        client = self.sentinel_client().master_for(
            self.args.master_name, username="app", password=self.app_pw, socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT, retry_on_timeout=False)
        stop, acked, accepted, errors = threading.Event(), [], [], []
        t = threading.Thread(target=self.writer, args=(client, prefix, (stop, acked, accepted, errors)))
        t.start()
        time.sleep(self.args.warmup)
        t0 = time.monotonic()
        log(f"{how} trial {n}: master {master} ({container}): docker {how}")
        # docker stop waits for the clean shutdown; run it beside the writer
        fault = threading.Thread(target=docker, args=(how, container), kwargs={"check": False})
        fault.start()
        deadline = t0 + self.args.max_wait
        while time.monotonic() < deadline:
            new = self.master_ip(exclude=master)
            if new and new != master and acked and acked[-1][0] > t0 and \
                    time.monotonic() - acked[-1][0] < 1 and time.monotonic() - t0 > 3:
                break
            time.sleep(0.5)
        time.sleep(self.args.settle)
        stop.set()
        t.join()
        times = [a[0] for a in acked]
        gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=float("inf"))
        lost = self.missing(prefix, [a[1] for a in acked])
        new = self.master_ip(exclude=master)
        log(f"{how} trial {n}: new master {new}, longest gap {gap:.2f} s, acknowledged {len(acked)}, "
            f"lost {lost}, errors {len(errors)}")
        fault.join()  # docker stop returns only once the container is down
        docker("start", container, check=False)
        if not self.wait_healthy():
            log(f"WARNING: {container} did not rejoin within 180 s")
        return {"gap": gap, "acked": len(acked), "lost": lost, "accepted": len(accepted)}

    def iptables(self, container, action, peers):
        for ip in peers:
            tool = "ip6tables" if verifier.is_ipv6(ip) else "iptables"
            docker("exec", container, tool, action, "INPUT", "-s", ip, "-j", "DROP", check=False)
            docker("exec", container, tool, action, "OUTPUT", "-d", ip, "-j", "DROP", check=False)

    def trial_isolate(self, n):
        if not self.wait_healthy():
            sys.exit("cluster not healthy before the trial")
        master = self.master_ip()
        container = self.nodes[master]
        peers = [ip for ip in self.nodes if ip != master]
        prefix = f"bench:isolate:{int(time.time())}:{n}"
        client = self.node(master, user="app")  # a client on the master's side of the partition
        stop, acked, accepted, errors = threading.Event(), [], [], []
        t = threading.Thread(target=self.writer, args=(client, prefix, (stop, acked, accepted, errors)))
        t.start()
        time.sleep(self.args.warmup)
        log(f"isolate trial {n}: master {master} ({container}) cut off from {', '.join(peers)}")
        self.iptables(container, "-I", peers)
        t0 = time.monotonic()  # counted from the moment every rule is in place
        time.sleep(self.args.isolation)
        stop.set()
        t.join()
        self.iptables(container, "-D", peers)
        during = [i for ts, i in accepted if ts >= t0]
        during_acked = [i for ts, i in acked if ts >= t0]
        last_ok = max((a[0] for a in accepted if a[0] >= t0), default=t0)
        new = self.master_ip(exclude=master)
        if not self.wait_healthy():
            log("WARNING: the isolated master did not rejoin within 180 s")
        lost_accepted = self.missing(prefix, during)
        lost_acked = self.missing(prefix, [a[1] for a in acked])
        log(f"isolate trial {n}: new master {new}; isolated master accepted {len(during)} writes for "
            f"{last_ok - t0:.1f} s ({len(during_acked)} acknowledged by WAIT 1); after rejoin "
            f"{lost_accepted} accepted and {lost_acked} acknowledged writes are missing")
        return {"accepted": len(during), "acked": len(during_acked), "window": last_ok - t0,
                "lost_accepted": lost_accepted, "lost": lost_acked}


def pct(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["kill", "stop", "isolate", "all"], default="all")
    ap.add_argument("--trials", type=int, default=5, help="trials per mode (default 5)")
    ap.add_argument("--master-name", default="main")
    ap.add_argument("--port", type=int, default=6379, help="port map: redis")
    ap.add_argument("--sentinel-port", type=int, default=26379, help="port map: redis_sentinel")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of writes before the fault")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds of writes after recovery")
    ap.add_argument("--max-wait", type=float, default=60.0, help="give up on a trial after this")
    ap.add_argument("--isolation", type=float, default=20.0, help="seconds the master stays isolated")
    ap.add_argument("--down-after", type=int,
                    help="set Sentinel's down-after-milliseconds for this run only (restored at the end; "
                         "a converge also restores the role's value)")
    args = ap.parse_args()
    bench = Bench(args)
    down_after = 5000
    if args.down_after:
        down_after = bench.set_down_after(args.down_after)
        log(f"down-after-milliseconds {down_after} -> {args.down_after} for this run")
    modes = ["kill", "stop", "isolate"] if args.mode == "all" else [args.mode]
    results = {}
    try:
        for mode in modes:
            results[mode] = [bench.trial_isolate(n) if mode == "isolate" else bench.trial_take_away(mode, n)
                             for n in range(1, args.trials + 1)]
    finally:
        if args.down_after:
            bench.set_down_after(down_after)
    print()
    print(f"Redis Sentinel failover, {args.trials} trial(s) per mode (down-after "
          f"{args.down_after or down_after} ms, "
          f"client timeouts {TIMEOUT} s, no library retries)")
    for mode, rows in results.items():
        if mode == "isolate":
            acc = [r["accepted"] for r in rows]
            print(f"  isolate: writes accepted while isolated p50 {pct(acc, 50):.0f} p95 {pct(acc, 95):.0f} "
                  f"(window p50 {pct([r['window'] for r in rows], 50):.1f} s); acknowledged by WAIT 1 "
                  f"{sum(r['acked'] for r in rows)}; accepted then lost {sum(r['lost_accepted'] for r in rows)}; "
                  f"acknowledged lost {sum(r['lost'] for r in rows)}")
        else:
            gaps = [r["gap"] for r in rows]
            print(f"  {mode:7s}: longest write gap p50 {pct(gaps, 50):.2f} s p95 {pct(gaps, 95):.2f} s "
                  f"max {max(gaps):.2f} s; acknowledged {sum(r['acked'] for r in rows)}, "
                  f"lost {sum(r['lost'] for r in rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
