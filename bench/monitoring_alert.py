# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Monitoring benchmark against the stack Molecule scenario's containers.

    molecule converge -s stack && python3 bench/monitoring_alert.py [--trials 3] [--redis stack-redis3]

Prints, from Prometheus' own HTTP API (TLS + basic auth, as the verifier uses it):
- per scrape job: targets, up, scrape duration (median / max over the targets) and samples;
- per trial: seconds from `systemctl stop redis-server` on a Redis replica until RedisDown is
  pending in Prometheus, and until it is gone again after the restart.
Traffic goes only to the scenario's containers and docker exec: Prometheus on the monitoring
host's cluster address (where it listens), read from molecule/stack/molecule.yml through
molecule/_shared/verifier.py. The scenario uses the lab's group_vars, so the CA is the lab's
(HSLAB_CACHE); the Prometheus password is read as the monitoring host's roles read it (the
inventory's vault variable, else the generated file: verifier.secret, the secrets contract).
"""

import argparse
import base64
import json
import os
import ssl
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import addresses  # noqa: E402  (bench/addresses.py: molecule.yml through the verifiers' helpers)

SCENARIO = "stack"


def prometheus():
    """(monitoring container, Prometheus' base URL on its cluster address)."""
    verifier = addresses.scenario()
    mon = verifier.group("monitoring", SCENARIO)[0]
    return mon, verifier.url("https", verifier.cluster_address(mon, SCENARIO), addresses.port("prometheus"))


def cache(mon):
    base = os.environ.get("HSLAB_CACHE", os.path.expanduser("~/.cache/hardened-stack"))
    running = subprocess.run(["docker", "ps", "-q", "--filter", f"name=^{mon}$"], capture_output=True,
                             text=True, check=False).stdout.strip()
    if not running:
        raise SystemExit("no stack scenario: run `molecule converge -s stack` first")
    return base


def client(base, mon, prom):
    ctx = ssl.create_default_context(cafile=os.path.join(base, "pki", "ca.crt"))
    # Prometheus' password as the monitoring host has it (the lab's prometheus_auth_password,
    # else the exporters role's generated file; the secrets contract).
    verifier = addresses.scenario()
    password = verifier.secret("monitoring", on=mon, vault="prometheus_auth_password", scenario=SCENARIO)
    auth = base64.b64encode(f"prometheus:{password}".encode()).decode()

    def get(path):
        req = urllib.request.Request(prom + path, headers={"Authorization": "Basic " + auth})  # noqa: S310
        with urllib.request.urlopen(req, timeout=10, context=ctx) as res:  # noqa: S310
            return json.loads(res.read())["data"]
    return get


def query(get, expr):
    return get("/api/v1/query?query=" + urllib.parse.quote(expr))["result"]


def scrape_table(get):
    rows = {}
    for metric in ("up", "scrape_duration_seconds", "scrape_samples_scraped"):
        for r in query(get, metric):
            rows.setdefault(r["metric"]["job"], {}).setdefault(metric, []).append(float(r["value"][1]))
    print(f"{'job':14} {'targets':>7} {'up':>3} {'median ms':>10} {'max ms':>8} {'samples':>8}")
    for job, m in sorted(rows.items()):
        d = [x * 1000 for x in m.get("scrape_duration_seconds", [0])]
        print(f"{job:14} {len(m['up']):7d} {int(sum(m['up'])):3d} {statistics.median(d):10.1f} {max(d):8.1f} "
              f"{int(sum(m.get('scrape_samples_scraped', [0]))):8d}")


def alert_state(get, name, instance):
    for a in get("/api/v1/alerts")["alerts"]:
        if a["labels"].get("alertname") == name and a["labels"].get("instance") == instance:
            return a["state"]
    return None


def wait(get, predicate, timeout=180):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.5)
    return float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--redis", default="stack-redis3", help="the Redis host stopped: pick a replica")
    args = parser.parse_args()
    mon, prom = prometheus()
    get = client(cache(mon), mon, prom)
    host = args.redis
    scrape_table(get)
    interval = get("/api/v1/status/config")["yaml"].split("scrape_interval:")[1].split()[0]
    print(f"\nscrape/evaluation interval {interval}; RedisDown has `for: 1m` (pending first)")
    for trial in range(1, args.trials + 1):
        subprocess.run(["docker", "exec", host, "systemctl", "stop", "redis-server"], check=True)
        pending = wait(get, lambda: alert_state(get, "RedisDown", host) in ("pending", "firing"))
        subprocess.run(["docker", "exec", host, "systemctl", "start", "redis-server"], check=True)
        cleared = wait(get, lambda: alert_state(get, "RedisDown", host) is None)
        print(f"trial {trial}: RedisDown pending {pending:5.1f} s after stop; cleared {cleared:5.1f} s after start")


if __name__ == "__main__":
    main()
