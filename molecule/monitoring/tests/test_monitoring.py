"""monitoring: behaviour of the exporters, Prometheus and Alertmanager.

Every target up through Prometheus' API; each exporter refuses scrapes without credentials
(401, or a TLS handshake without a client certificate for the redis exporter) and answers
with them; exporters bound to the private address only; stopping Redis and PostgreSQL raises
their alerts; a --check --diff rerun changes nothing.
"""

import json
import os
import re
import subprocess
import time

import pytest
import testinfra
import yaml

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
SCENARIO = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.dirname(os.path.dirname(SCENARIO)))
ADDR = {"mon-1": "172.30.27.10", "mon-pg": "172.30.27.11", "mon-redis": "172.30.27.12",
        "mon-lb": "172.30.27.13", "mon-outsider": "172.30.27.30"}
# The port map's exporter ports (roles/_common/defaults/main.yml).
with open(os.path.join(PROJECT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as _fh:
    PORT_MAP = yaml.safe_load(_fh)["_common_port_map_defaults"]
PROM = f"https://{ADDR['mon-1']}:{PORT_MAP['prometheus']['port']}"
PORTS = {name: PORT_MAP[f"{name}_exporter"]["port"] for name in ("node", "postgres", "redis", "nginx")}
# The pki role's CA is on every host; the monitoring host's client certificate is Prometheus'.
CA = "/etc/hardened-stack/pki/ca.crt"
CERT = "/etc/prometheus/tls/tls.crt"
KEY = "/etc/prometheus/tls/tls.key"
# Lab hosts carry no curl: requests are made with the hosts' python3.
CLIENT = r"""
import base64, json, ssl, sys, urllib.error, urllib.request
url, user, password, cert, key, body = sys.argv[1:7]
ctx = ssl.create_default_context(cafile="%s")
if cert:
    ctx.load_cert_chain(cert, key)
req = urllib.request.Request(url)
if user:
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
try:
    with urllib.request.urlopen(req, timeout=10, context=ctx) as res:
        print(res.status)
        if body:
            print(res.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code)
except Exception as exc:  # no HTTP answer: refused, TLS handshake failed, timeout
    print("000", type(exc).__name__, exc)
""" % CA

testinfra_hosts = ["mon-1"]


def host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


@pytest.fixture(scope="module", name="mon")
def fixture_mon():
    return host("mon-1")


def password():
    with open(os.path.join(EPHEMERAL, "secrets", "monitoring", "basic_auth"), encoding="utf-8") as fh:
        return fh.read().split()[0]


def request(h, url, *, user="", pw="", cert="", key="", body=False):
    res = h.run_expect([0], "python3 -c %s %s %s %s %s %s %s", CLIENT, url, user, pw, cert, key, "1" if body else "")
    return res.stdout


def curl(h, url, user="", pw="", *, cert="", key=""):
    """HTTP status of a request from host h ("000" = no HTTP answer)."""
    return request(h, url, user=user, pw=pw, cert=cert, key=key).split()[0]


def api(mon, path):
    out = request(mon, f"{PROM}{path}", user="prometheus", pw=password(), body=True)
    status, body = (out.split("\n", 1) + [""])[:2]
    assert status == "200", out
    return json.loads(body)


def wait_for(check, timeout=120, step=3):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = check()
        if last is True:
            return
        time.sleep(step)
    raise AssertionError(f"condition not met in {timeout} s: {last}")


def test_every_target_is_up(mon):
    expected = {("node", h) for h in ADDR}
    expected |= {("postgres", "mon-pg"), ("redis", "mon-redis"), ("nginx", "mon-lb"), ("prometheus", "mon-1"),
                 ("alertmanager", "mon-1")}

    def check():
        result = api(mon, "/api/v1/query?query=up")["data"]["result"]
        seen = {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1] for r in result}
        missing = expected - set(seen)
        down = {k: v for k, v in seen.items() if v != "1"}
        return True if not missing and not down else {"missing": sorted(missing), "down": down}
    wait_for(check)


def test_targets_carry_cluster_and_role_labels(mon):
    result = api(mon, "/api/v1/query?query=up%7Bjob%3D%22postgres%22%7D")["data"]["result"]
    assert result and result[0]["metric"]["cluster"] == "hardened-stack"
    assert result[0]["metric"]["role"] == "postgres"


@pytest.mark.parametrize("name,exporter", [("mon-pg", "node"), ("mon-pg", "postgres"),
                                           ("mon-lb", "nginx"), ("mon-outsider", "node")])
def test_basic_auth_exporters_refuse_without_credentials(mon, name, exporter):
    url = f"https://{ADDR[name]}:{PORTS[exporter]}/metrics"
    assert curl(mon, url) == "401"
    assert curl(mon, url, "prometheus", "wrong-password") == "401"
    assert curl(mon, url, "prometheus", password()) == "200"


def test_redis_exporter_requires_a_client_certificate(mon):
    url = f"https://{ADDR['mon-redis']}:{PORTS['redis']}/metrics"
    assert curl(mon, url) == "000"
    assert curl(mon, url, cert=CERT, key=KEY) == "200"


EXPORTERS = [("mon-pg", "node"), ("mon-pg", "postgres"), ("mon-redis", "node"), ("mon-redis", "redis"),
             ("mon-lb", "node"), ("mon-lb", "nginx"), ("mon-1", "node")]


def test_outsider_gets_no_metrics():
    """A host outside the monitoring group gets nothing from any exporter: 401 from the basic
    auth exporters, no TLS session from the redis exporter (no client certificate), or no
    connection at all where a firewall filters the port."""
    outsider = host("mon-outsider")
    got = {(name, exporter): curl(outsider, f"https://{ADDR[name]}:{PORTS[exporter]}/metrics")
           for name, exporter in EXPORTERS}
    expected = {key: ("000" if key[1] == "redis" else "401") for key in got}
    assert {k: v for k, v in got.items() if v not in (expected[k], "000")} == {}, got


def test_exporters_serve_tls_only(mon):
    assert curl(mon, f"http://{ADDR['mon-pg']}:{PORTS['node']}/metrics") in ("400", "000")


@pytest.mark.parametrize("name,exporters", [("mon-pg", ["node", "postgres"]), ("mon-redis", ["node", "redis"]),
                                            ("mon-lb", ["node", "nginx"]), ("mon-1", ["node"])])
def test_exporters_bound_to_the_private_address_only(name, exporters):
    h = host(name)
    for exporter in exporters:
        port = PORTS[exporter]
        assert h.socket(f"tcp://{ADDR[name]}:{port}").is_listening, (name, exporter)
        assert not h.socket(f"tcp://0.0.0.0:{port}").is_listening, (name, exporter)
        assert not h.socket(f"tcp://:::{port}").is_listening, (name, exporter)


def test_prometheus_and_alertmanager_need_credentials(mon):
    am = f"https://{ADDR['mon-1']}:{PORT_MAP['alertmanager']['port']}/api/v2/status"
    assert curl(mon, f"{PROM}/api/v1/query?query=up") == "401"
    assert curl(mon, am) == "401"
    assert curl(mon, am, "prometheus", password()) == "200"


def test_certificate_expiry_reaches_prometheus(mon):
    def check():
        result = api(mon, "/api/v1/query?query=hardened_tls_certificate_not_after_timestamp_seconds")["data"]["result"]
        return True if {r["metric"]["instance"] for r in result} >= set(ADDR) else result
    wait_for(check)


def test_rules_are_loaded(mon):
    names = {r["name"] for g in api(mon, "/api/v1/rules")["data"]["groups"] for r in g["rules"]}
    assert {"InstanceDown", "RedisDown", "PatroniNoLeader", "CertificateExpiringSoon", "BackupTooOld"} <= names


def alerts(mon):
    return {(a["labels"]["alertname"], a["labels"].get("instance")): a["state"]
            for a in api(mon, "/api/v1/alerts")["data"]["alerts"]}


@pytest.mark.parametrize("name,unit,alert", [("mon-redis", "redis-server", "RedisDown"),
                                             ("mon-pg", "postgresql", "PostgresDown")])
def test_stopping_a_service_raises_its_alert(mon, name, unit, alert):
    h = host(name)
    assert (alert, name) not in alerts(mon)
    h.run(f"systemctl stop {unit}")
    try:
        def check():
            state = alerts(mon).get((alert, name))
            return True if state in ("pending", "firing") else state
        wait_for(check, timeout=90)
    finally:
        h.run(f"systemctl start {unit}")
    # And it clears once the service is back.
    wait_for(lambda: True if (alert, name) not in alerts(mon) else alerts(mon).get((alert, name)), timeout=90)


def playbook(*args):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(EPHEMERAL, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, ".build", "collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_HOST_KEY_CHECKING="false",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    res = subprocess.run(["ansible-playbook", "-i", INVENTORY, *args], cwd=SCENARIO, env=env,
                         capture_output=True, text=True, timeout=1200, check=False)
    return res.returncode, res.stdout + res.stderr


def recap(out):
    rows = {}
    for m in re.finditer(r"^(\S+)\s+:\s+(.*)$", out.split("PLAY RECAP")[-1], re.M):
        rows[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return rows


def test_check_diff_rerun_changes_nothing():
    rc, out = playbook("converge.yml", "--check", "--diff")
    assert rc == 0, out[-3000:]
    rows = recap(out)
    assert rows and all(r.get("changed", 0) == 0 and r.get("failed", 0) == 0 for r in rows.values()), out[-3000:]


@pytest.mark.parametrize("extra,message", [
    ({"exporters_enabled": ["node", "mysql"]}, "exporters_enabled"),
    ({"prometheus_retention_time": "15x"}, "prometheus_retention_time"),
    ({"alertmanager_receivers": [{"name": "hook", "type": "webhook"}]}, "url"),
])
def test_bad_input_stops_before_any_change(extra, message):
    # Only the roles' preflights (the first tasks of each role): the error must come from them.
    rc, out = playbook("converge.yml", "-e", json.dumps(extra), "--limit", "mon-1",
                       "--tags", "exporters_preflight,alertmanager_preflight,prometheus_preflight")
    assert rc != 0, out[-2000:]
    assert message in out, out[-3000:]
    rows = recap(out)
    assert rows.get("mon-1", {}).get("changed", 1) == 0, out[-3000:]
