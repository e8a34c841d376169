"""Load balancer loss behind the VRRP virtual address (bench/failover_lb; issue 19).

Against an inventory whose `loadbalancers` group is a keepalived pair with a virtual address
(the lab: lb1 + lb2), while two clients run:

* a /health poller on this machine: `GET https://<front door>/health` every 100 ms (1 s
  timeout, the stack's CA verified, no retries), the address being the collection's answer for
  the https service (the virtual address when the inventory sets one);
* the ledger writer of bench/failover_pg (one connection, sequential ids, every acknowledged
  COMMIT recorded; libpq connect_timeout 2 s, tcp_user_timeout 2 s, statement timeout 2 s, no
  library retries) on an app host (`--via app1`, the only tier the firewall lets reach the
  write endpoint), writing through the collection's pg_write endpoint (the virtual address);

the load balancer holding the address is killed (`docker kill`: abrupt node loss, no VRRP
goodbye). Printed: the longest gap between two successful /health answers and between two
acknowledged writes (goal <= 3 s each), acknowledged writes lost (goal 0), and where the
address went. Then the killed host is started again: the address must stay where it is
(preemption off). With `--rerun`, `ansible-playbook site.yml` runs once more: 0 changed, and
the address does not move.

The lab's hosts are containers named like their inventory hosts; where the address is is read
with `ip -o addr` inside them.
"""

import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import addresses  # noqa: E402  (bench/addresses.py: the inventory's addresses, the collection's answers)
from failover_pg_main import ledger_dsn  # noqa: E402  (the same ledger client)
from rolling_main import gaps, ledger_command  # noqa: E402  (the ledger over SSH on an app host)

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def docker(*args, check=False):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True)


def holders(lbs: list[str], address: str) -> list[str]:
    """The load balancers (containers) that carry ``address`` on an interface now."""
    out = []
    for lb in lbs:
        res = docker("exec", lb, "ip", "-o", "addr", "show")
        if res.returncode == 0 and re.search(r"\sinet6?\s%s/" % re.escape(address), res.stdout):
            out.append(lb)
    return out


class Poller(threading.Thread):
    """GET ``url`` every ``interval`` s; records (monotonic time, ok) of every answer."""

    def __init__(self, url: str, ca: str, interval: float = 0.1, timeout: float = 1.0):
        super().__init__(daemon=True)
        self.url, self.interval, self.timeout = url, interval, timeout
        self.ctx = ssl.create_default_context(cafile=ca)
        self.answers: list[tuple[float, bool]] = []
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            start = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, context=self.ctx, timeout=self.timeout) as r:  # noqa: S310
                    ok = r.status == 200
            except (urllib.error.URLError, OSError, ssl.SSLError):
                ok = False
            self.answers.append((time.monotonic(), ok))
            time.sleep(max(0.0, self.interval - (time.monotonic() - start)))

    def ok_times(self) -> list[float]:
        return [t for t, ok in self.answers if ok]

    def healthy_for(self, seconds: float) -> bool:
        """The last ``seconds`` of answers were all successful (and there were some)."""
        now = time.monotonic()
        recent = [ok for t, ok in self.answers if t >= now - seconds]
        return len(recent) >= 3 and all(recent)


def wait(predicate, timeout: float, what: str, step: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def rerun(inventory: str, extra: list[str]) -> tuple[int, dict[str, int], float]:
    """``ansible-playbook site.yml`` once more: (rc, changed per host, seconds)."""
    t0 = time.monotonic()
    res = subprocess.run(
        ["ansible-playbook", "-i", inventory, os.path.join(PROJECT, "site.yml"), *extra],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROJECT,
    )
    changed = {
        m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", res.stdout, re.M)
    }
    if res.returncode != 0:
        print(res.stdout[-4000:] + res.stderr[-2000:])
    return res.returncode, changed, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inventory", default=os.path.join(PROJECT, "inventories", "lab"))
    ap.add_argument(
        "--ca", help="the stack's CA certificate on this machine (default: the inventory's pki_ca_dir/ca.crt)"
    )
    ap.add_argument("--remote-ca", default="/etc/hardened-stack/pki/ca.crt", help="the CA on the --via host")
    ap.add_argument("--via", default="app1", help="the app host the ledger runs on")
    ap.add_argument("--user", default="app")
    ap.add_argument("--dbname", default="app", help="database (default: the app role's app_db_name, as in the lab)")
    ap.add_argument("--after", type=float, default=5.0, help="seconds both clients must be healthy after the loss")
    ap.add_argument(
        "--rerun", action="store_true", help="afterwards, run site.yml once more: 0 changed, address unmoved"
    )
    ap.add_argument("playbook_args", nargs="*", help="extra ansible-playbook arguments for --rerun (after --)")
    args = ap.parse_args()
    args.ssh_user = args.ssh_key = None

    inventory = addresses.Inventory(args.inventory)
    lbs = inventory.group("loadbalancers")
    https = inventory.endpoint("https")
    front, _port = addresses.split_endpoint(https)
    write = inventory.endpoint("pg_write")
    if len(lbs) < 2:
        raise SystemExit(f"{args.inventory}: the loadbalancers group has {len(lbs)} host(s); a pair is needed")
    if any(front == inventory.cluster_address(lb) for lb in lbs):
        raise SystemExit(
            f"{args.inventory}: the https endpoint {https} is a load balancer's own address: no virtual address is set"
        )
    ca = args.ca or os.path.join(
        addresses.variables.render(args.inventory, {"d": "{{ pki_ca_dir }}"}, lbs[0])[lbs[0]]["d"], "ca.crt"
    )
    before = holders(lbs, front)
    if len(before) != 1:
        raise SystemExit(f"the virtual address {front} is on {before or 'no host'}: exactly one holder expected")
    victim = before[0]
    url = addresses.address_module().url("https", front, _port, "/health")

    poller = Poller(url, ca)
    poller.start()
    wait(lambda: poller.healthy_for(2), 60, f"{url} to answer 200")
    password = inventory.db_password(args.user)
    dsn = ledger_dsn(write, dbname=args.dbname, user=args.user, password=password, ca=args.remote_ca)
    ledger = subprocess.Popen(
        ledger_command(args, inventory.management_name(args.via)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    ledger.stdin.write(dsn + "\n")
    ledger.stdin.flush()
    if ledger.stdout.readline().strip() != "writing":
        ledger.kill()
        raise SystemExit("the ledger did not start writing (see its error above)")
    time.sleep(2)
    t_kill = time.monotonic()
    docker("kill", victim, check=True)
    wait(lambda: poller.healthy_for(args.after), 120, f"{url} healthy for {args.after} s after the loss")
    out, _err = ledger.communicate(timeout=60)  # closing stdin: the ledger writes 3 s more, then reports
    poller.stop_flag.set()
    poller.join(5)
    result = json.loads(out.strip().splitlines()[-1])
    after = holders([lb for lb in lbs if lb != victim], front)
    health_gap, health_at = gaps(poller.ok_times())
    write_gap, _w = gaps(result["times"])
    lost = result["acked"] - result["present"]
    print(f"Load balancer loss: docker kill {victim} (holder of {front}) at +0.0 s")
    print(
        f"  /health over {url}: {len(poller.answers)} polls, longest gap {health_gap:.2f} s "
        f"(from {health_at - t_kill:+.1f} s)"
    )
    print(
        f"  ledger on {args.via} through {write}: acknowledged {result['acked']}, lost {lost}, "
        f"failed writes {result['errors']}, longest gap {write_gap:.2f} s"
    )
    print(f"  virtual address now on: {', '.join(after) or 'nobody'}")

    docker("start", victim, check=True)
    wait(
        lambda: docker("exec", victim, "systemctl", "is-active", "keepalived").stdout.strip() == "active",
        180,
        f"keepalived on {victim} after its restart",
    )
    time.sleep(10)  # many advertisement intervals: a preempting node would have taken the address back
    back = holders(lbs, front)
    print(
        f"  {victim} back (keepalived active 10 s): virtual address on {', '.join(back) or 'nobody'} "
        f"({'stayed' if back == after else 'MOVED'})"
    )
    ok = health_gap <= 3 and write_gap <= 3 and lost == 0 and len(after) == 1 and back == after
    if args.rerun:
        rc, changed, secs = rerun(args.inventory, args.playbook_args)
        moved = holders(lbs, front)
        total = sum(changed.values())
        print(
            f"  site.yml rerun: rc {rc}, changed {total} ({', '.join(f'{h}={n}' for h, n in changed.items() if n)}"
            f"), {secs:.0f} s; virtual address on {', '.join(moved) or 'nobody'}"
            f" ({'unmoved' if moved == back else 'MOVED'})"
        )
        ok = ok and rc == 0 and total == 0 and moved == back
    print("goal: gaps <= 3 s, 0 lost, the address on the survivor and staying there:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
