"""The whole stack, used from a client host as users use it.

The client is in no tier group: it reaches the stack through nginx (443, 80) and nothing
else. The last tests rerun the site playbook in check/diff mode with -v on the converged
stack: nothing may change and no secret may appear in that output.
"""

# ruff: noqa: S310 (https URLs to the scenario's hosts only)
import glob
import json
import os
import re
import shlex
import subprocess
import time
import uuid

import pytest
import testinfra
import yaml

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
LB = "172.30.28.10"
CLIENT = "stack-client"
CACHE = os.environ.get("HSLAB_CACHE", os.path.expanduser("~/.cache/hardened-stack"))
SECRETS = os.path.join(CACHE, "secrets")
CA = "/etc/hardened-stack/pki/ca.crt"
INTERNAL = {"postgresql": ("172.30.28.31", 5432), "patroni": ("172.30.28.31", 8008),
            "etcd": ("172.30.28.31", 2379), "redis": ("172.30.28.41", 6379),
            "sentinel": ("172.30.28.41", 26379), "pg_write": (LB, 5000),
            "node_exporter": ("172.30.28.31", 9100), "app": ("172.30.28.21", 8000)}


def _instances():
    with open(INVENTORY, encoding="utf-8") as fh:
        return yaml.safe_load(fh)["all"]["hosts"]


INSTANCES = _instances()
SSH_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


def host(name):
    """A host over SSH with the connection Molecule wrote (the linked lab group_vars hold
    templated connection settings that testinfra's ansible backend would not render)."""
    inst = INSTANCES[name]
    return testinfra.get_host(f"ssh://{inst['ansible_user']}@{inst['ansible_host']}",
                              ssh_identity_file=inst["ansible_private_key_file"], sudo=True,
                              ssh_extra_args=SSH_ARGS)


# The hosts carry python3, not necessarily curl: requests are made with python3's urllib.
PROBE = """import ssl, sys, urllib.error, urllib.request
import base64
url, method = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=sys.argv[3])
auth = sys.stdin.read().strip()
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None
opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
try:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with opener.open(req, timeout=10) as r:
        code, body = r.status, r.read().decode()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read().decode()
print(code)
print(body)
"""


def curl(path, method="GET", scheme="https", *, on=CLIENT, address=LB, auth=""):
    """(status, body) of a request from a host (the client by default) to the load balancer.
    Basic-auth credentials travel on stdin, never on a command line."""
    out = host(on).run(f"printf '%s' {shlex.quote(auth)} | python3 -c {shlex.quote(PROBE)} "
                       f"{scheme}://{address}{path} {method} {CA}")
    assert out.rc == 0, out.stderr
    code, body = (out.stdout.split("\n", 1) + [""])[:2]
    return code.strip(), body


def playbook(*args):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    res = subprocess.run(["ansible-playbook", "-i", INVENTORY, os.path.join(SCENARIO, "converge.yml"), *args],
                         cwd=PROJECT, env=env, capture_output=True, text=True, timeout=2400, check=False)
    return res.returncode, res.stdout + res.stderr


def recap_changed(out):
    return sum(int(n) for n in re.findall(r"changed=(\d+)", out.split("PLAY RECAP")[-1]))


def test_health_through_the_load_balancer_reports_database_and_cache_ok():
    status, body = curl("/health")
    assert status == "200", body
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["database"]["ok"] is True and health["cache"]["ok"] is True


def test_http_redirects_to_https():
    status = curl("/health", scheme="http")[0]
    assert status == "301"


def test_requests_are_spread_over_both_app_servers():
    hosts = set()
    for _attempt in range(8):
        status, body = curl("/")
        assert status == "200"
        hosts.add(body.strip())
    assert len(hosts) == 2, hosts


def test_a_write_through_the_stack_is_read_back():
    ident = uuid.uuid4().int % (2 ** 62)
    status, body = curl(f"/write?id={ident}", method="POST")
    assert status == "200", body
    status, body = curl(f"/read?id={ident}")
    assert status == "200", body
    assert json.loads(body)["ok"] is True


@pytest.mark.parametrize("service", sorted(INTERNAL))
def test_client_cannot_reach_internal_services(service):
    address, port = INTERNAL[service]
    res = host(CLIENT).run(f"timeout 4 bash -c 'echo > /dev/tcp/{address}/{port}'")
    assert res.rc != 0, f"{service} ({address}:{port}) answered the client"


def test_app_server_reaches_its_database_and_cache_directly_only_as_the_port_map_allows():
    app = host("stack-app1")
    # app -> write endpoint on the load balancer: allowed; app -> etcd: not in the port map.
    assert app.run(f"timeout 4 bash -c 'echo > /dev/tcp/{LB}/5000'").rc == 0
    assert app.run("timeout 4 bash -c 'echo > /dev/tcp/172.30.28.31/2379'").rc != 0


def test_one_patroni_leader_two_streaming_replicas():
    status, body = curl("/cluster", on="stack-pg1", address="172.30.28.31:8008")
    assert status == "200", body
    members = json.loads(body)["members"]
    assert [m["role"] for m in members].count("leader") == 1, members
    # Patroni 3.0 (Debian 12) reports a streaming replica as "running", later ones "streaming".
    replicas = [m for m in members if m["role"] in ("replica", "sync_standby")
                and m["state"] in ("running", "streaming") and m.get("lag", 0) != "unknown"]
    assert len(replicas) == 2, members


def prometheus(path):
    with open(os.path.join(SECRETS, "monitoring", "basic_auth"), encoding="utf-8") as fh:
        password = fh.read().split(" salt=")[0].strip()
    status, body = curl(path, on="stack-mon1", address="172.30.28.50:9090", auth=f"prometheus:{password}")
    assert status == "200", body
    return json.loads(body)["data"]


def test_prometheus_scrapes_every_component_and_every_target_is_up():
    deadline = time.time() + 90
    while True:
        targets = prometheus("/api/v1/targets?state=active")["activeTargets"]
        down = [(t["labels"].get("job"), t["labels"].get("instance"), t.get("lastError")) for t in targets
                if t["health"] != "up"]
        if not down or time.time() > deadline:
            break
        time.sleep(5)
    jobs = {t["labels"].get("job") for t in targets}
    assert {"node", "postgres", "redis", "nginx", "patroni", "etcd"} <= jobs, jobs
    # Every host of the stack has its node exporter scraped (the client included).
    assert sum(1 for t in targets if t["labels"].get("job") == "node") == 11
    assert not down, down


def test_exporters_refuse_the_client():
    for address, port in (("172.30.28.31", 9187), ("172.30.28.10", 9113), ("172.30.28.41", 9121)):
        res = host(CLIENT).run(f"timeout 4 bash -c 'echo > /dev/tcp/{address}/{port}'")
        assert res.rc != 0, f"{address}:{port} answered the client"


def secrets():
    """Every generated password of the stack (files under the lab's secrets directory)."""
    found = set()
    for path in glob.glob(os.path.join(SECRETS, "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                value = fh.read().split(" salt=")[0].strip()
            if len(value) >= 8:
                found.add(value)
    return found


def test_check_diff_verbose_rerun_changes_nothing_and_prints_no_secret():
    known = secrets()
    assert len(known) >= 8, f"expected the stack's generated passwords under {SECRETS}"
    rc, out = playbook("--check", "--diff", "-v")
    assert rc == 0, out[-4000:]
    assert recap_changed(out) == 0, out[-4000:]
    leaked = [s[:4] + "…" for s in known if s in out]
    assert not leaked, f"secrets in the -v --check --diff output: {leaked}"
