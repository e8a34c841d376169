"""bench/firewall: loop of ansible.builtin.iptables vs one hardened.stack.iptables_apply.

One container from the lab image, started with ``--network none`` (its own network namespace,
loopback only: no packet leaves it) and NET_ADMIN, reached with the community.docker.docker
connection. Phases, all in one run:

1. N rules (default 200) with a loop of ``ansible.builtin.iptables`` (one task per rule);
2. the same N rules with one ``hardened.stack.iptables_apply`` task (rollback armed and
   confirmed, as the role runs it), after the loop's chain is deleted;
3. M rules (default 1000) cold with the module, after the chain is deleted;
4. the same M rules again with the module (no-op rerun).

Times are the tasks' own durations from the ansible.posix.json callback (playbook start-up
excluded). Targets (issue 3): >= 50x the loop at 200 rules, 1,000 rules <= 5 s cold, no-op
rerun <= 2 s.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "firewall-bench"


def sh(*args, **kw):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw)


def source(i):
    return "10.%d.%d.%d" % (100 + i // 65536, (i // 256) % 256, i % 256 + (1 if i % 256 == 0 else 0))


def rules(n):
    return ["-s %s/32 -p tcp -m tcp --dport %d -j ACCEPT" % (source(i), 1024 + i % 50000) for i in range(n)]


def playbook(tasks):
    return [{"name": "bench", "hosts": NAME, "gather_facts": False, "tasks": tasks}]


def run(plays, workdir):
    path = os.path.join(workdir, "play.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(plays, fh)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    res = subprocess.run(["ansible-playbook", "-i", "%s," % NAME, "-c", "community.docker.docker", path],
                         capture_output=True, text=True, env=env, check=False)
    try:
        data = json.loads(res.stdout[res.stdout.index("{"):])
    except ValueError:
        sys.exit("ansible-playbook failed:\n%s\n%s" % (res.stdout[-3000:], res.stderr[-3000:]))
    out = {}
    for play in data["plays"]:
        for task in play["tasks"]:
            result = task["hosts"][NAME]
            if result.get("failed"):
                sys.exit("task %r failed: %s" % (task["task"]["name"], json.dumps(result)[:2000]))
            dur = task["task"]["duration"]
            start = datetime.fromisoformat(dur["start"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(dur["end"].replace("Z", "+00:00"))
            out[task["task"]["name"]] = ((end - start).total_seconds(), result)
    return out


def iptables_count():
    return int(sh("docker", "exec", NAME, "sh", "-c", "iptables -S HS-BENCH | grep -c '^-A'").stdout)


def reset_chain():
    sh("docker", "exec", NAME, "sh", "-c",
       "iptables -D INPUT -j HS-BENCH 2>/dev/null; iptables -F HS-BENCH 2>/dev/null; "
       "iptables -X HS-BENCH 2>/dev/null; true")


def apply_task(name, n):
    return {"name": name, "hardened.stack.iptables_apply": {
        "ipv4": {"chains": {"HS-BENCH": rules(n)}, "jumps": {"INPUT": ["HS-BENCH"]}},
        "persist_dir": "/tmp/hs-bench-persist", "rollback_timeout": 30}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", type=int, default=200)
    ap.add_argument("--big", type=int, default=1000)
    ap.add_argument("--image", default="debian12", choices=["debian12", "debian13"])
    args = ap.parse_args()
    image = "hardened-stack/%s-systemd:latest" % args.image
    subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)
    sh("docker", "run", "--detach", "--name", NAME, "--network", "none", "--cap-add", "NET_ADMIN",
       "--label", "hardened.stack.lab=bench", image, "sleep", "infinity")
    try:
        version = sh("docker", "exec", NAME, "iptables", "--version").stdout.strip()
        with tempfile.TemporaryDirectory() as work:
            loop = run(playbook([
                {"name": "create chain", "ansible.builtin.iptables": {"chain": "HS-BENCH", "chain_management": True}},
                {"name": "loop", "ansible.builtin.iptables": {
                    "chain": "HS-BENCH", "source": "{{ item.0 }}/32", "protocol": "tcp",
                    "destination_port": "{{ item.1 }}", "jump": "ACCEPT"},
                 "loop": [[source(i), str(1024 + i % 50000)] for i in range(args.rules)]},
            ]), work)
            assert iptables_count() == args.rules
            reset_chain()
            small = run(playbook([apply_task("module-small", args.rules)]), work)
            assert iptables_count() == args.rules
            reset_chain()
            big = run(playbook([apply_task("module-cold", args.big), apply_task("module-rerun", args.big)]), work)
            assert iptables_count() == args.big
            assert big["module-cold"][1]["changed"] and not big["module-rerun"][1]["changed"]
            assert big["module-cold"][1].get("confirmed") is True
    finally:
        subprocess.run(["docker", "rm", "-f", NAME], capture_output=True, check=False)

    t_loop = loop["loop"][0]
    t_small = small["module-small"][0]
    t_cold = big["module-cold"][0]
    t_rerun = big["module-rerun"][0]
    print("firewall bench (%s, container %s, --network none, docker connection)" % (version, args.image))
    print("  %4d rules, loop of ansible.builtin.iptables : %7.2f s" % (args.rules, t_loop))
    print("  %4d rules, one hardened.stack.iptables_apply: %7.2f s   (rollback armed + confirmed)"
          % (args.rules, t_small))
    print("  ratio loop / module                          : %7.1f x   (target >= 50x)" % (t_loop / t_small))
    print("  %4d rules cold, iptables_apply               : %7.2f s   (target <= 5 s)" % (args.big, t_cold))
    print("  %4d rules no-op rerun, iptables_apply        : %7.2f s   (target <= 2 s)" % (args.big, t_rerun))


if __name__ == "__main__":
    main()
