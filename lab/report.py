"""The table ``make lab`` prints: hosts, roles applied, endpoints and their health.

Roles come from the plays of ``playbooks/site.yml`` (their ``hosts`` groups), endpoints
from the port map in ``roles/_common/defaults/main.yml``; health is read on each host over
SSH (systemd state, and whether each expected port is listening).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess

import yaml

from . import collection, hosts, variables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _groups_of(data: dict) -> dict[str, set[str]]:
    member: dict[str, set[str]] = {}

    def walk(group: str, seen: tuple[str, ...] = ()) -> None:
        node = data.get(group, {})
        for host in node.get("hosts", []):
            member.setdefault(host, set()).update(seen + (group,))
        for child in node.get("children", []):
            walk(child, seen + (group,))

    walk("all")
    return member


def _site_roles() -> list[tuple[str, list[str]]]:
    with open(os.path.join(ROOT, "playbooks", "site.yml"), encoding="utf-8") as fh:
        plays = yaml.safe_load(fh) or []
    out = []
    for play in plays:
        if not isinstance(play, dict) or "hosts" not in play:
            continue
        roles = []
        for role in play.get("roles", []):
            name = role["role"] if isinstance(role, dict) else role
            roles.append(name.rsplit(".", 1)[-1])
        for task in play.get("tasks", []):
            inc = task.get("ansible.builtin.include_role") or task.get("ansible.builtin.import_role")
            if inc:
                roles.append(inc["name"].rsplit(".", 1)[-1])
        if roles:
            out.append((str(play["hosts"]), roles))
    return out


def port_map() -> dict:
    """The port map's defaults (roles/_common/defaults/main.yml)."""
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["_common_port_map_defaults"]


def _ssh_run(address: str, remote_cmd: str, timeout: int = 30, stdin: str = "") -> subprocess.CompletedProcess:
    """``remote_cmd`` on a lab host as the lab user, with the lab key (host keys not pinned:
    lab hosts are recreated often). Secrets go in ``stdin``, never on a command line (a
    command line is visible in the host's process list)."""
    return subprocess.run(["ssh", "-i", hosts.ssh_key(), "-o", "BatchMode=yes",
                           "-o", "ConnectTimeout=5", "-o", "StrictHostKeyChecking=no",
                           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                           f"{hosts.SSH_USER}@{address}", remote_cmd],
                          input=stdin, text=True, capture_output=True, timeout=timeout, check=False)


def _probe(address: str, ports: list[int]) -> tuple[str, set[int]]:
    cmd = "systemctl is-system-running 2>/dev/null; ss -Hltn | awk '{print $4}'"
    res = _ssh_run(address, cmd)
    if res.returncode not in (0, 1) or not res.stdout:
        return "unreachable", set()
    lines = res.stdout.split()
    listening = {int(x.rsplit(":", 1)[1]) for x in lines[1:] if x.rsplit(":", 1)[-1].isdigit()}
    return lines[0], listening & set(ports)


def _ssh(address: str, cmd: str, timeout: int = 30, stdin: str = "") -> str | None:
    """stdout of ``cmd`` run as root on a lab host over SSH, or None when it failed."""
    res = _ssh_run(address, f"sudo sh -c {shlex.quote(cmd)}", timeout, stdin)
    return res.stdout if res.returncode == 0 else None


def _secrets(inventory: str, wanted: dict[str, tuple[str, str, str | None, dict]]) -> dict[str, str]:
    """{name: value} of secrets as the inventory's hosts use them, for
    ``wanted = {name: (host, kind, vault variable, parameters)}``: the vault variable when the
    inventory sets it, else the producing role's file in the inventory's
    hardened_stack_secrets_dir (lab/collection.py). A secret that cannot be read is "" (its
    check then reports the failed login)."""
    expr = {name: collection.secret_expressions(kind, vault) for name, (_h, kind, vault, _p) in wanted.items()}
    try:
        rendered = variables.render(inventory, expr, ",".join(sorted({h for h, *_rest in wanted.values()})))
    except variables.RenderError as exc:
        print(f"reading the secrets' variables failed: {exc}")
        return dict.fromkeys(wanted, "")
    out = {}
    secrets = collection.module_utils("secrets")
    for name, (host, kind, _vault, params) in wanted.items():
        try:
            out[name] = collection.secret(kind, rendered[host][name], **params)
        except (secrets.SecretError, KeyError) as exc:
            print(f"{name}: {exc}")
            out[name] = ""
    return out


# Lab hosts carry python3 but not necessarily curl: requests are made with python3. Basic-auth
# credentials ("user:password") come on stdin.
PROBE = """import base64, ssl, sys, urllib.error, urllib.request
url, ca, auth = sys.argv[1], sys.argv[2], sys.stdin.read().strip()
req = urllib.request.Request(url)
if auth:
    req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
try:
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=10) as r:
        code, body = r.status, r.read().decode()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read().decode()
print(body, code)
"""


def _get(address: str, url: str, ca: str, auth: str = "") -> str | None:
    cmd = " ".join(shlex.quote(a) for a in ["python3", "-c", PROBE, url, ca])
    return _ssh(address, cmd, stdin=auth)


def stack_health(specs: list[dict], member: dict[str, set[str]], inventory: str) -> list[tuple[str, str, bool]]:
    """(check, result, ok) for the stack's end-to-end health, read from the hosts themselves:
    the app's /health through nginx, the Patroni leader, the Redis master (Sentinel) and the
    Prometheus targets. A tier the inventory does not have is left out."""
    of = {g: [s for s in specs if g in member.get(s["name"], set())] for g in
          ("loadbalancers", "postgres", "redis", "monitoring")}
    ca = "/etc/hardened-stack/pki/ca.crt"
    port = {name: entry["port"] for name, entry in port_map().items() if entry.get("port") is not None}
    am = collection.module_utils("address")
    wanted = {}
    if of["redis"]:
        wanted["sentinel"] = (of["redis"][0]["name"], "redis", "redis_sentinel_password", {"user": "sentinel"})
    if of["monitoring"]:
        wanted["prometheus"] = (of["monitoring"][0]["name"], "monitoring", "prometheus_auth_password", {})
    password = _secrets(inventory, wanted) if wanted else {}

    def url(spec, service, path=""):
        # Services listen on the cluster address (the lab's hardened_stack_address); SSH goes to
        # the management name.
        return am.url("https", spec["cluster"][0], port[service], path)

    out = []
    if of["loadbalancers"]:
        lb = of["loadbalancers"][0]
        # The public entry, as users reach it: the load balancer's management side.
        body = _get(lb["address"], f"https://{lb['address']}:{port['https']}/health", ca)
        try:
            text, code = (body or "").strip().rsplit(" ", 1)
            health = json.loads(text)
            detail = (f"{code} database={'ok' if health['database']['ok'] else 'FAILING'} "
                      f"cache={'ok' if health['cache']['ok'] else 'FAILING'}")
            out.append((f"https://{lb['address']}/health", detail, code == "200"))
        except (ValueError, KeyError, TypeError):
            out.append((f"https://{lb['address']}/health", "no answer", False))
    if of["postgres"]:
        pg = of["postgres"][0]
        body = _get(pg["address"], url(pg, "patroni_api", "/cluster"), ca)
        try:
            members = json.loads((body or "").strip().rsplit(" ", 1)[0])["members"]
            leader = [m["name"] for m in members if m["role"] == "leader"]
            # Patroni 3.0 (Debian 12) reports a streaming replica as "running".
            streaming = sum(1 for m in members if m["role"] != "leader" and m["state"] in ("running", "streaming"))
            out.append(("Patroni leader", f"{','.join(leader) or 'NONE'} ({streaming} streaming replica(s))",
                        len(leader) == 1))
        except (ValueError, KeyError, TypeError):
            out.append(("Patroni leader", "no answer", False))
    if of["redis"]:
        rd = of["redis"][0]
        with open(os.path.join(ROOT, "roles", "redis", "defaults", "main.yml"), encoding="utf-8") as fh:
            master_name = yaml.safe_load(fh)["redis_master_name"]
        cli = f"redis-cli --user sentinel -p {port['redis_sentinel']}"
        body = _ssh(rd["address"], f'export REDISCLI_AUTH="$(cat)"; {cli} SENTINEL get-master-addr-by-name '
                                   f"{master_name}; echo --; {cli} SENTINEL replicas {master_name}",
                    stdin=password["sentinel"])
        addr, _sep, replicas = (body or "").partition("--")
        # Each replica is a flat list of field/value lines; a healthy one's flags are just "slave".
        lines = replicas.split()
        linked = sum(1 for i, field in enumerate(lines[:-1]) if field == "flags" and lines[i + 1] == "slave")
        known = lines.count("flags")
        master = " ".join(addr.split()) or "no answer"
        # "ADDRESS PORT" when Sentinel answered; anything else is an error (NOAUTH after a
        # refused password, which redis-cli reports on stderr)
        answered = len(addr.split()) == 2 and addr.split()[1].isdigit()
        out.append(("Redis master (Sentinel)", f"{master} ({linked} linked replica(s) of {known} known)",
                    answered and linked == known))
    if of["monitoring"]:
        mon = of["monitoring"][0]
        body = _get(mon["address"], url(mon, "prometheus", "/api/v1/targets?state=active"),
                    ca, f"prometheus:{password['prometheus']}")
        try:
            targets = json.loads((body or "").strip().rsplit(" ", 1)[0])["data"]["activeTargets"]
            up = sum(1 for t in targets if t["health"] == "up")
            out.append(("Prometheus targets up", f"{up}/{len(targets)}", up == len(targets) and up > 0))
        except (ValueError, KeyError, TypeError):
            out.append(("Prometheus targets up", "no answer", False))
    return out


def print_report(specs: list[dict], data: dict, inventory: str) -> int:
    member = _groups_of(data)
    plays = _site_roles()
    pmap = port_map()
    bad = 0
    print()
    print(f"{'host':8} {'management':14} {'cluster':14} {'os':9} {'groups':22} {'roles':34} {'systemd':9} endpoints")
    for spec in specs:
        groups = member.get(spec["name"], set()) - {"all", "ungrouped"}
        roles: list[str] = []
        for pattern, play_roles in plays:
            if pattern == "all" or any(g in groups for g in pattern.replace(",", ":").split(":")):
                roles += [r for r in play_roles if r not in roles and not r.startswith("_")]
        # a portless protocol (VRRP) has nothing to connect to
        expected = {name: e["port"] for name, e in pmap.items()
                    if e.get("port") is not None and any(g == "all" or g in groups for g in e["listen"])}
        state, up = _probe(spec["address"], list(expected.values()))
        if state not in ("running",):
            bad += 1
        # Only services whose role is applied are expected to listen.
        endpoints = " ".join(f"{n}:{p}{'' if p in up else '(down)'}" for n, p in sorted(
            expected.items(), key=lambda kv: kv[1]) if p in up or n == "ssh")
        print(f"{spec['name']:8} {spec['address']:14} {spec['cluster'][0]:14} {spec['image']:9} "
              f"{','.join(sorted(groups)):22} {','.join(roles):34} {state:9} {endpoints}")
    print()
    for check, result, ok in stack_health(specs, member, inventory):
        print(f"{'ok ' if ok else 'BAD'} {check:32} {result}")
        bad += 0 if ok else 1
    print()
    print(f"SSH: ssh -i {hosts.ssh_key()} {hosts.SSH_USER}@<address>")
    return 1 if bad else 0
