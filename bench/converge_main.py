"""Converge speed (bench/converge, issue 17): a first converge of fresh hosts and a no-op rerun
in the same run.

1. Unless --no-fresh: the inventory's lab hosts are removed and created again (`python -m lab
   down` / `up`: fresh Debian hosts; the apt download cache on this machine is kept, as it is
   for `make lab`).
2. `ansible-playbook -i INVENTORY site.yml`, timed: the first converge.
3. The same command again: the no-op rerun, which must change nothing.

Both run with the ansible.posix.profile_tasks callback (every task's wall time across the
hosts). Printed: both durations, their ratio (goal: rerun <= 25 % of the first converge),
changed counts from the recaps (goal: 0 on the rerun), the ten slowest tasks of each and the
time per role. Both logs are kept in .lab/ (no secret reaches them: every secret task is no_log).
Measured figures only: nothing here asserts a time.

--strategy runs both with another strategy plugin, for a side-by-side comparison: e.g.
`mitogen_linear` (mitogen from PyPI, installed in the venv: `.venv/bin/pip install mitogen`),
which keeps one Python interpreter per host for the whole run instead of one per task.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import re
import subprocess
import sys
import time

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT)
from lab import leaks  # noqa: E402  (the recap parser the lab's checks use)

# profile_tasks: "hardened.stack.baseline : Install the packages ------------- 45.12s"
TASK_LINE = re.compile(r"^(?P<name>.+?) -{2,} (?P<seconds>\d+(?:\.\d+)?)s\s*$")


def profile(out: str) -> list[tuple[str, float]]:
    """(task, seconds) from profile_tasks' summary (after the last PLAY RECAP), slowest first."""
    tail = out.rsplit("PLAY RECAP", maxsplit=1)[-1]
    rows = [(m.group("name").strip(), float(m.group("seconds"))) for m in map(TASK_LINE.match, tail.splitlines()) if m]
    return sorted(rows, key=lambda r: -r[1])


def per_role(rows: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Seconds per role (a task's "role : name" prefix; "(playbook)" for tasks of no role)."""
    sums: dict[str, float] = collections.defaultdict(float)
    for name, seconds in rows:
        role, sep, _task = name.partition(" : ")
        sums[role if sep else "(playbook)"] += seconds
    return sorted(sums.items(), key=lambda r: -r[1])


def strategy_env(strategy: str | None) -> dict[str, str]:
    """Environment selecting a strategy plugin; mitogen's come from its package in the venv (this
    script runs on the venv's Python, bench/converge)."""
    if not strategy:
        return {}
    env = {"ANSIBLE_STRATEGY": strategy}
    if strategy.startswith("mitogen"):
        spec = importlib.util.find_spec("ansible_mitogen")
        if spec is None or not spec.submodule_search_locations:
            sys.exit("--strategy %s: mitogen is not installed in the venv (.venv/bin/pip install mitogen)" % strategy)
        env["ANSIBLE_STRATEGY_PLUGINS"] = os.path.join(spec.submodule_search_locations[0], "plugins", "strategy")
    return env


def converge(inventory: str, log: str, extra: list[str], strategy: str | None = None) -> tuple[int, float, str]:
    env = dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
               PROFILE_TASKS_TASK_OUTPUT_LIMIT="all", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               **strategy_env(strategy))
    cmd = [os.path.join(PROJECT, ".venv", "bin", "ansible-playbook"), "-i", inventory,
           os.path.join(PROJECT, "site.yml"), *extra]
    started = time.monotonic()
    res = subprocess.run(cmd, cwd=PROJECT, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    out = res.stdout + res.stderr
    with open(log, "w", encoding="utf-8") as fh:
        fh.write(out)
    return res.returncode, seconds, out


def lab(command: str, inventory: str) -> None:
    subprocess.run([sys.executable, "-m", "lab", command, "-i", inventory], cwd=PROJECT, check=True)


def report(label: str, rc: int, seconds: float, out: str, log: str) -> None:
    rows = profile(out)
    print(f"\n{label}: rc={rc}, {seconds:.0f} s, changed={leaks.recap_changed(out)} "
          f"(hosts {len(leaks.recap(out))}), log {os.path.relpath(log, PROJECT)}")
    print("  ten slowest tasks:")
    for name, secs in rows[:10]:
        print(f"    {secs:7.1f} s  {name}")
    print("  per role: " + ", ".join(f"{role} {secs:.0f} s" for role, secs in per_role(rows)[:12]))
    if rc != 0:
        print("\n".join(out.splitlines()[-30:]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inventory", default=os.path.join(PROJECT, "inventories", "lab"))
    ap.add_argument("--no-fresh", action="store_true", help="converge the hosts as they are (no down/up)")
    ap.add_argument("--rerun-only", action="store_true", help="only the no-op rerun, on a converged stack")
    ap.add_argument("--strategy", help="strategy plugin for both runs (default: ansible.cfg's, linear), "
                    "e.g. mitogen_linear")
    ap.add_argument("playbook_args", nargs="*", help="extra ansible-playbook arguments (after --)")
    args = ap.parse_args()
    os.makedirs(os.path.join(PROJECT, ".lab"), exist_ok=True)
    suffix = f"-{args.strategy}" if args.strategy else ""
    rerun_log = os.path.join(PROJECT, ".lab", f"bench-converge-rerun{suffix}.log")
    print(f"strategy: {args.strategy or 'ansible.cfg (linear)'}")
    if args.rerun_only:
        rc, seconds, out = converge(args.inventory, rerun_log, args.playbook_args, args.strategy)
        report("no-op rerun", rc, seconds, out, rerun_log)
        return 0 if rc == 0 and leaks.recap_changed(out) == 0 else 1
    if not args.no_fresh:
        lab("down", args.inventory)
        started = time.monotonic()
        lab("up", args.inventory)
        print(f"fresh hosts: {time.monotonic() - started:.0f} s")
    first_log = os.path.join(PROJECT, ".lab", f"bench-converge-first{suffix}.log")
    rc1, s1, out1 = converge(args.inventory, first_log, args.playbook_args, args.strategy)
    report("first converge", rc1, s1, out1, first_log)
    if rc1 != 0:
        return 1
    rc2, s2, out2 = converge(args.inventory, rerun_log, args.playbook_args, args.strategy)
    report("no-op rerun", rc2, s2, out2, rerun_log)
    changed = leaks.recap_changed(out2)
    print(f"\nfirst converge {s1:.0f} s, no-op rerun {s2:.0f} s: rerun/first = {s2 / s1:.0%} (goal <= 25 %), "
          f"rerun changed={changed} (goal 0)")
    return 0 if rc2 == 0 and changed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
