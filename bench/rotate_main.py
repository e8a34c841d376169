"""Secret rotation under load (bench/rotate).

While `ansible-playbook playbooks/rotate_secrets.yml` runs against the inventory, two clients
use the stack the way users do, through the public nginx entry of the first load balancer:

* a writer POSTs `/write?id=N` (the demo app commits N to PostgreSQL through the write endpoint)
  with sequential ids, --write-rate requests a second, no retries: a 200 is an acknowledged
  write; any other answer, or none within --timeout (10 s), is a failed request and the id is
  never reused;
* a poller GETs `/health` (PostgreSQL and Redis through Sentinel) every --interval seconds.
Together they stay under nginx's per-client limit (nginx_rate_limit, 20 requests/s by default:
more is answered 429, which is the limit working, not the rotation failing).

Afterwards the acknowledged ids are looked up in the app's ledger table with one query, from
an app host with the app's (new) password: one that is missing is an acknowledged write lost.
Then each rotated secret is tried, old and new, from inside the firewall (over SSH, the
password on stdin): the old one must be refused, the new one accepted.
Goal: 0 failed requests, 0 lost, every old secret refused. Answers slower than --slow (2 s) are
counted apart, with the playbook task then running and the machine's run queue (procs_running
in /proc/stat: the lab's hosts share this machine's cores, so a task running on every host at
once delays nginx and the app too). For the same reason the playbook runs at --nice 10 and the
lab's hosts run sshd (so Ansible's modules) at nice 10 (lab/images.py): on real machines the
controller and each host's modules do not take the CPU of another host's services.

Only generated secrets (the files under hardened_stack_secrets_dir) are rotated by the
playbook; those given as vault variables are left alone and not probed. Addresses come from
the inventory (bench/addresses.py), secrets through the collection's secrets module.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import addresses  # noqa: E402  (bench/addresses.py: the inventory's addresses)

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT)
from lab import collection, hosts  # noqa: E402  (the collection's modules, the lab's SSH user/key)

TIERS = ("postgresql", "redis", "monitoring")


def _request(url: str, ctx: ssl.SSLContext, method: str = "GET", timeout: float = 2.0) -> tuple[int, str]:
    """(HTTP status, the start of an error answer's body: the app names what failed); status 0
    when nothing answered within ``timeout`` seconds."""
    if not url.startswith("https://"):
        raise ValueError(f"not an https URL: {url}")
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)  # noqa: S310 (https only)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:  # noqa: S310
            resp.read()
            return resp.status, ""
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(300).decode("utf-8", "replace")
        except OSError:
            body = ""
        return exc.code, " ".join(body.split())
    except (OSError, urllib.error.URLError) as exc:
        return 0, str(exc)[:120]


class Client(threading.Thread):
    """The writer (``write=True``) or the /health poller."""

    def __init__(self, base: str, ctx: ssl.SSLContext, write: bool, interval: float, *,  # seconds
                 timeout: float = 10.0, slow: float = 2.0):
        super().__init__(daemon=True)
        self.base, self.ctx, self.write, self.interval = base, ctx, write, interval
        self.timeout, self.slow = timeout, slow
        self.slow_ones: list[tuple[float, float]] = []  # (seconds taken, wall time sent) of slow 200s
        self.stop_flag = threading.Event()
        self.ok: list[tuple[int, float]] = []      # (id, monotonic time) of successful requests
        self.failed: list[tuple[float, int, float, str]] = []  # (monotonic time, status (0: no answer), wall time
        #                                                         sent, the answer's error text)
        self.next_id = int(time.time() * 1000)     # unique across runs: the ledger table is shared

    def run(self):
        while not self.stop_flag.is_set():
            started, sent = time.monotonic(), time.time()
            if self.write:
                ident = self.next_id
                self.next_id += 1
                status, why = _request(f"{self.base}/write?id={ident}", self.ctx, "POST", self.timeout)
            else:
                ident = 0
                status, why = _request(f"{self.base}/health", self.ctx, timeout=self.timeout)
            took = time.monotonic() - started
            if status == 200:
                self.ok.append((ident, time.monotonic()))
                if took > self.slow:
                    self.slow_ones.append((took, sent))
            else:
                self.failed.append((time.monotonic(), status, sent, why))
            time.sleep(max(0.0, self.interval - (time.monotonic() - started)))


class RunQueue(threading.Thread):
    """Samples this machine's run queue (procs_running, /proc/stat) every 0.2 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop_flag = threading.Event()
        self.samples: list[tuple[float, int]] = []  # (wall time, runnable processes)

    def run(self):
        while not self.stop_flag.is_set():
            try:
                with open("/proc/stat", encoding="ascii") as fh:
                    running = next(int(line.split()[1]) for line in fh if line.startswith("procs_running"))
                self.samples.append((time.time(), running))
            except (OSError, StopIteration, ValueError):
                pass
            self.stop_flag.wait(0.2)

    def peak(self, start: float, end: float) -> int:
        return max((n for t, n in self.samples if start <= t <= end), default=-1)


def task_log(path: str) -> list[tuple[float, str]]:
    """(wall time, "TASK [...]" / "PLAY [...]" line) from an ansible log (ANSIBLE_LOG_PATH)."""
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                # 2026-12-07 10:40:01,123 p=1 u=root n=ansible INFO| TASK [role : name] ****
                head, sep, text = line.partition("| ")
                if not sep or not text.startswith(("TASK [", "PLAY [", "RUNNING HANDLER [")):
                    continue
                try:
                    when = time.mktime(time.strptime(head[:19], "%Y-%m-%d %H:%M:%S")) + float("0." + head[20:23])
                except ValueError:
                    continue
                out.append((when, text.rstrip(" *\n")))
    except OSError:
        pass
    return out


def running_task(tasks: list[tuple[float, str]], when: float) -> str:
    """The playbook's task that had started last before wall time ``when``."""
    current = "(before the playbook)"
    for started, name in tasks:
        if started > when:
            break
        current = name
    return current


def longest_gap(times: list[float]) -> float:
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=float("inf"))


# Probes run on a stack host with python3 (psycopg2 and redis-py: the app role installs them),
# read {"old": ..., "new": ..., ...} on stdin and print {"old": "refused"|"accepted"|error, "new": ...}.
PROBES = {
    "postgresql": r'''import json, sys, psycopg2
a = json.loads(sys.stdin.read()); out = {}
for which in ("old", "new"):
    try:
        psycopg2.connect(host=a["host"], port=a["port"], user=a["user"], password=a[which], dbname=a["dbname"],
                         sslmode="require", connect_timeout=5, **a.get("extra", {})).close()
        out[which] = "accepted"
    except psycopg2.OperationalError as e:
        out[which] = "refused" if "password authentication failed" in str(e) else "error: " + str(e)[:200]
print(json.dumps(out))''',
    "redis": r'''import json, sys, redis
a = json.loads(sys.stdin.read()); out = {}
for which in ("old", "new"):
    r = redis.Redis(host=a["host"], port=a["port"], socket_timeout=5, socket_connect_timeout=5)
    try:
        r.execute_command("AUTH", a["user"], a[which]); out[which] = "accepted"
    except redis.AuthenticationError:
        out[which] = "refused"
    except redis.RedisError as e:
        out[which] = ("refused" if "WRONGPASS" in str(e) else "error: " + str(e)[:200])
    finally:
        r.close()
print(json.dumps(out))''',
    "ledger": r'''import json, sys, psycopg2
a = json.loads(sys.stdin.read())
conn = psycopg2.connect(host=a["host"], port=a["port"], user=a["user"], password=a["password"], dbname=a["dbname"],
                        sslmode="require", connect_timeout=10)
with conn, conn.cursor() as cur:
    cur.execute("select id from ledger where id = any(%s)", (a["ids"],))
    present = {r[0] for r in cur.fetchall()}
conn.close()
print(json.dumps({"missing": sorted(set(a["ids"]) - present)}))''',
    "http": r'''import base64, json, ssl, sys, urllib.error, urllib.request
a = json.loads(sys.stdin.read()); out = {}
ctx = ssl.create_default_context(cafile=a["ca"])
if a.get("cert"):
    ctx.load_cert_chain(a["cert"], a["key"])
for which in ("old", "new"):
    req = urllib.request.Request(a["url"], method=a.get("method", "GET"), data=a.get("body", "").encode() or None)
    req.add_header("Authorization", "Basic " + base64.b64encode((a["user"] + ":" + a[which]).encode()).decode())
    if a.get("body"):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            code = r.status
    except urllib.error.HTTPError as e:
        code = e.code
    except OSError as e:
        code = "error: " + str(e)[:200]
    # an empty PATCH /config is refused with 400 after authentication, 401 before it
    out[which] = "accepted" if code == a.get("ok", 200) else "refused" if code == 401 else "status %s" % code
print(json.dumps(out))''',
}


def probe(inv: addresses.Inventory, on: str, kind: str, args: dict) -> dict:
    """Run probe ``kind`` on host ``on`` as root, ``args`` (secrets included) on stdin."""
    cmd = ["ssh", "-i", hosts.ssh_key(), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
           f"{hosts.SSH_USER}@{inv.management_name(on)}",
           " ".join(shlex.quote(a) for a in ["sudo", "python3", "-c", PROBES[kind]])]
    res = subprocess.run(cmd, input=json.dumps(args), capture_output=True, text=True, check=False, timeout=60)
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"old": "error: " + res.stderr.strip()[-200:], "new": "?"}


def rotated(inv: addresses.Inventory, tiers: list[str]) -> list[dict]:
    """The generated secrets the playbook rotates for ``tiers`` (not those set as vault
    variables), each with what is needed to probe it."""
    hv = inv.hostvars
    first = {g: (inv.group(g) or [None])[0] for g in ("postgres", "redis", "app", "monitoring", "loadbalancers")}
    pg_vars = hv.get(first["postgres"], {}) if first["postgres"] else {}
    redis_vars = hv.get(first["redis"], {}) if first["redis"] else {}
    out = []
    if "postgresql" in tiers and first["postgres"]:
        cluster = pg_vars.get("postgresql_cluster_name", "hardened-stack")
        for entry in pg_vars.get("postgresql_users", []):
            if not entry.get("password"):
                out.append({"kind": "postgresql", "params": {"cluster": cluster, "user": entry["name"]},
                            "probe": "postgresql", "on": first["app"],
                            "args": {"user": entry["name"], "dbname": (entry.get("databases") or ["postgres"])[0],
                                     "endpoint": "pg_write"}})
        if not pg_vars.get("postgresql_replication_password"):
            user = pg_vars.get("postgresql_replication_user", "replicator")
            out.append({"kind": "postgresql", "params": {"cluster": cluster, "user": user},
                        "probe": "postgresql", "on": inv.group("postgres")[-1],
                        "args": {"user": user, "dbname": "replication", "endpoint": "leader",
                                 "extra": {"replication": "true"}}})
        if not pg_vars.get("postgresql_patroni_api_password"):
            out.append({"kind": "patroni_api", "params": {"cluster": cluster}, "probe": "http",
                        "on": inv.group("postgres")[-1],
                        "args": {"user": pg_vars.get("postgresql_patroni_api_user", "patroni"), "method": "PATCH",
                                 "body": "{}", "ok": 400, "endpoint": "patroni_config"}})
    if "redis" in tiers and first["redis"]:
        cluster = redis_vars.get("redis_cluster_name", "redis")
        for user in ("app", "replication", "sentinel", "exporter", "admin"):
            if not redis_vars.get(f"redis_{user}_password"):
                out.append({"kind": "redis", "params": {"cluster": cluster, "user": user}, "probe": "redis",
                            "on": first["app"],
                            "args": {"user": user, "endpoint": "redis_sentinel" if user == "sentinel" else "redis"}})
    if "monitoring" in tiers and first["monitoring"]:
        if not hv.get(first["monitoring"], {}).get("exporters_auth_password"):
            # Every server file holds two users (the roles' prometheus and prometheus-rotation:
            # Prometheus scrapes with whichever the last rotation left it on); both must refuse
            # the old password and take the new one.
            for user in ("prometheus", "prometheus-rotation"):
                out.append({"kind": "monitoring", "params": {}, "probe": "http", "on": first["monitoring"],
                            "label": user, "args": {"user": user, "endpoint": "node_exporter"}})
    return out


def probe_args(inv: addresses.Inventory, item: dict, old: str, new: str) -> dict:
    am = addresses.address_module()
    args = dict(item["args"], old=old, new=new, ca="/etc/hardened-stack/pki/ca.crt")
    endpoint = args.pop("endpoint")
    if endpoint == "pg_write":
        host, port = addresses.split_endpoint(inv.endpoint("pg_write"))
    elif endpoint == "leader":
        leader = inv.group("postgres")[0]
        host, port = inv.cluster_address(leader), inv.port("postgresql", leader)
    elif endpoint == "patroni_config":
        # Patroni checks a client certificate before the password on unsafe methods (403
        # without one): the member's own, as Patroni's members and patronictl present it.
        member = inv.group("postgres")[0]
        args["url"] = am.url("https", inv.cluster_address(member), inv.port("patroni_api", member), "/config")
        args.update(cert="/etc/patroni/tls/server.crt", key="/etc/patroni/tls/server.key")
        return args
    elif endpoint == "node_exporter":
        target = inv.group("postgres")[0]
        args["url"] = am.url("https", inv.cluster_address(target), inv.port("node_exporter", target), "/metrics")
        return args
    else:  # redis / redis_sentinel on every Redis host: the probe asks the first one
        target = inv.group("redis")[0]
        host, port = inv.cluster_address(target), inv.port(endpoint, target)
    args.update(host=host, port=port)
    return args


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inventory", default=addresses.LAB_INVENTORY)
    ap.add_argument("--tiers", default=",".join(TIERS), help="comma-separated: postgresql,redis,monitoring")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between /health polls")
    ap.add_argument("--write-rate", type=float, default=8.0, help="writes a second (with the polls, under nginx's "
                    "per-client rate limit)")
    ap.add_argument("--ca", help="CA certificate for the public entry (default: the lab's, pki_ca_dir)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds a request may take before it counts as "
                    "failed (no answer)")
    ap.add_argument("--slow", type=float, default=2.0, help="seconds after which an answered request is listed as slow")
    ap.add_argument("--after", type=float, default=3.0, help="seconds of load after the playbook ends")
    ap.add_argument("--nice", type=int, default=10, help="niceness of the playbook run: on this machine the "
                    "controller shares two cores with the lab's hosts; a controller of its own would not take their "
                    "CPU (0: same priority as the services)")
    ap.add_argument("playbook_args", nargs="*", help="extra ansible-playbook arguments (after --)")
    args = ap.parse_args()
    tiers = [t for t in args.tiers.split(",") if t]
    inv = addresses.Inventory(args.inventory)
    secrets = collection.module_utils("secrets")
    cache = os.environ.get("HSLAB_CACHE", os.path.expanduser("~/.cache/hardened-stack"))
    directory = os.path.join(cache, "secrets")  # the lab's hardened_stack_secrets_dir
    ca = args.ca or os.path.join(cache, "pki", "ca.crt")

    items = rotated(inv, tiers)
    for item in items:
        item["old"] = secrets.read(item["kind"], directory, **item["params"])

    lb = inv.host("loadbalancers")
    base = f"https://{inv.management_name(lb)}:{inv.port('https', lb)}"
    ctx = ssl.create_default_context(cafile=ca)
    writer = Client(base, ctx, True, 1.0 / args.write_rate, timeout=args.timeout, slow=args.slow)
    poller = Client(base, ctx, False, args.interval, timeout=args.timeout, slow=args.slow)
    queue = RunQueue()
    queue.start()
    writer.start()
    poller.start()
    time.sleep(2)
    cmd = ["nice", "-n", str(args.nice), os.path.join(PROJECT, ".venv", "bin", "ansible-playbook"), "-i", inv.path,
           os.path.join(PROJECT, "playbooks", "rotate_secrets.yml"), "-e", "rotate_tiers=" + ",".join(tiers),
           *args.playbook_args]
    log = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"bench-rotate-{os.getpid()}.log")
    env = dict(os.environ, ANSIBLE_LOG_PATH=log)
    started = time.monotonic()
    play = subprocess.run(cmd, cwd=PROJECT, capture_output=True, text=True, check=False, env=env)
    duration = time.monotonic() - started
    time.sleep(args.after)
    for client in (writer, poller, queue):
        client.stop_flag.set()
    for client in (writer, poller):
        client.join(args.timeout + 5)

    app_host = inv.host("app")
    pg_host, pg_port = addresses.split_endpoint(inv.endpoint("pg_write"))
    app_db = inv.hostvars.get(app_host, {}).get("app_db_name", "app")
    found = probe(inv, app_host, "ledger", {"host": pg_host, "port": pg_port, "user": "app", "dbname": app_db,
                                            "password": inv.db_password("app"), "ids": [i for i, _t in writer.ok]})
    lost = found.get("missing", ["(read-back failed: %s)" % found])
    print(f"rotate_secrets.yml (tiers {','.join(tiers)}, controller at nice {args.nice}): rc={play.returncode} "
          f"in {duration:.1f} s")
    if play.returncode != 0:
        print("\n".join(play.stdout.splitlines()[-40:]))
    print(f"writes  : {len(writer.ok)} acknowledged, {len(writer.failed)} failed requests "
          f"(statuses {sorted({st for _t, st, _w, _y in writer.failed})}), "
          f"longest gap {longest_gap([t for _i, t in writer.ok]):.2f} s, acknowledged writes lost: {len(lost)}")
    statuses = sorted({s for _t, s, _w, _y in poller.failed})
    print(f"/health : {len(poller.ok)} ok, {len(poller.failed)} failed (statuses {statuses}), "
          f"longest gap {longest_gap([t for _i, t in poller.ok]):.2f} s")
    tasks = task_log(log)

    def when(wall: float) -> str:
        return f"{time.strftime('%H:%M:%S', time.localtime(wall))}.{int(wall % 1 * 1000):03d}"

    idle = sorted(n for _t, n in queue.samples)
    print(f"run queue of this machine ({os.cpu_count()} CPUs) during the run: median "
          f"{idle[len(idle) // 2] if idle else '?'}, max {idle[-1] if idle else '?'} runnable processes")
    for name, client in (("write", writer), ("/health", poller)):
        for _t, status, sent, why in client.failed:
            print(f"  failed {name} at {when(sent)} (status {status}; 0 = no answer in {args.timeout:g} s), run queue "
                  f"peak {queue.peak(sent, sent + args.timeout)}, during {running_task(tasks, sent)}\n"
                  f"      answer: {why or '-'}")
        for took, sent in client.slow_ones:
            print(f"  slow   {name} at {when(sent)}: answered 200 after {took:.2f} s, run queue peak "
                  f"{queue.peak(sent, sent + took)}, during {running_task(tasks, sent)}")
    print(f"slow answers (> {args.slow:g} s, still acknowledged): writes {len(writer.slow_ones)}, "
          f"/health {len(poller.slow_ones)}")
    print(f"  playbook log (task start times): {log}")
    bad = play.returncode != 0 or writer.failed or poller.failed or lost
    for item in items:
        new = secrets.read(item["kind"], directory, **item["params"])
        what = "/".join([item["kind"], *[str(v) for v in item["params"].values()], *item.get("label", "").split()])
        if new == item["old"]:
            print(f"{what:40} NOT rotated (the file is unchanged)")
            bad = True
            continue
        result = probe(inv, item["on"], item["probe"], probe_args(inv, item, item["old"], new))
        ok = result.get("old") == "refused" and result.get("new") == "accepted"
        bad = bad or not ok
        print(f"{what:40} old {result.get('old')}, new {result.get('new')}{'' if ok else '   <-- FAIL'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
