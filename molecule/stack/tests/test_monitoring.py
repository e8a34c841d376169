"""Monitoring of the whole stack: exporters, Prometheus and Alertmanager on stack-mon1.

Every target of every tier up through Prometheus' API, with its cluster and role labels;
each exporter refuses scrapes without credentials (401, or no TLS session without a client
certificate for the redis exporter) and answers with them; the client (in no tier group)
gets no metrics; exporters serve TLS only on the cluster address; Prometheus and
Alertmanager need credentials; certificate expiry and the alert rules reach Prometheus;
stopping Redis and PostgreSQL (on replicas, so the stack stays usable, restarted after)
raises their alerts; bad input stops the site playbook before any change.

pytest runs this file before test_stack.py: every test here leaves the stack as it found it.
Shared helpers: stackutil.py.
"""

import json
import re
from urllib.parse import quote, urlsplit

import pytest
from stackutil import (ADDR, CLIENT, INSTANCES, MGMT, MON, PORT_MAP, PROM, credentials, fetch, host, in_group,
                       member_host, patroni_members, playbook, prometheus, recap, request, streaming_replicas,
                       verifier, wait_for)

PORTS = {name: PORT_MAP[f"{name}_exporter"]["port"] for name in ("node", "postgres", "redis", "nginx")}
# Prometheus' own client certificate (the redis exporter wants one).
CERT = "/etc/prometheus/tls/tls.crt"
KEY = "/etc/prometheus/tls/tls.key"
ALERTMANAGER = verifier.url("https", ADDR[MON], PORT_MAP["alertmanager"]["port"], "/api/v2/status")
CLUSTER = "hardened-stack"
# Which exporter runs where (the port map's listen groups of the lab topology).
EXPORTER_GROUPS = {"node": None, "postgres": "postgres", "redis": "redis", "nginx": "loadbalancers"}


def exporters_of(name):
    return [e for e, group in EXPORTER_GROUPS.items() if group is None or name in in_group(group)]


def url(name, exporter, scheme="https", address=None):
    return verifier.url(scheme, address or ADDR[name], PORTS[exporter], "/metrics")


ALL_EXPORTERS = [(name, exporter) for name in sorted(ADDR) for exporter in exporters_of(name)]


def test_every_target_is_up():
    """Every job of every tier, every host's node exporter (the client's too), all up."""
    expected = {("node", name) for name in ADDR}
    expected |= {(job, name) for job, group in (("postgres", "postgres"), ("patroni", "postgres"),
                                                ("etcd", "etcd"), ("redis", "redis"),
                                                ("nginx", "loadbalancers"), ("prometheus", "monitoring"),
                                                ("alertmanager", "monitoring"))
                 for name in in_group(group)}

    def check():
        targets = prometheus("/api/v1/targets?state=active")["activeTargets"]
        seen = {(t["labels"].get("job"), t["labels"].get("instance")): t for t in targets}
        missing = expected - set(seen)
        down = {f"{job}/{inst}": t.get("lastError") for (job, inst), t in seen.items() if t["health"] != "up"}
        return True if not missing and not down else {"missing": sorted(missing), "down": down}
    wait_for(check, timeout=150, step=5)
    # Scraped: exactly the stack's hosts (the active targets, not series a previous
    # configuration left in the database, such as Debian's default localhost:9100).
    targets = prometheus("/api/v1/targets?state=active")["activeTargets"]
    nodes = {t["labels"]["instance"] for t in targets if t["labels"].get("job") == "node"}
    assert nodes == set(ADDR), nodes
    # Every target is scraped on its host's cluster address (never the management one).
    wrong = {f"{t['labels'].get('job')}/{t['labels']['instance']}": t["scrapeUrl"] for t in targets
             if t["labels"].get("instance") in ADDR
             and verifier.cluster_address_literal(urlsplit(t["scrapeUrl"]).hostname) != ADDR[t["labels"]["instance"]]}
    assert not wrong, wrong
    # Never scraped at all: Prometheus is masked while Debian's package installs, so its
    # example configuration (localhost:9090, localhost:9100) never ran and left no series.
    leftovers = prometheus("/api/v1/series?match[]=" + quote('up{instance=~"localhost:.*"}'))
    assert leftovers == [], leftovers


@pytest.mark.parametrize("job,role", [("postgres", "postgres"), ("redis", "redis"), ("nginx", "loadbalancers")])
def test_targets_carry_cluster_and_role_labels(job, role):
    result = prometheus(f"/api/v1/query?query=up%7Bjob%3D%22{job}%22%7D")["result"]
    assert result, job
    assert {r["metric"]["cluster"] for r in result} == {CLUSTER}, result
    assert {r["metric"]["role"] for r in result} == {role}, result


def test_basic_auth_exporters_refuse_without_credentials():
    urls = [url(name, exporter) for name, exporter in ALL_EXPORTERS if exporter != "redis"]
    user, _sep, right = credentials().partition(":")
    for auth, want in (("", "401"), (f"{user}:wrong-password", "401"), (f"{user}:{right}", "200")):
        got = {u: status for u, (status, _body) in fetch(urls, on=MON, auth=auth).items()}
        assert {u: s for u, s in got.items() if s != want} == {}, (want, got)


def test_redis_exporter_requires_a_client_certificate():
    urls = [url(name, "redis") for name in in_group("redis")]
    without = fetch(urls, on=MON, auth=credentials())
    assert {u: r for u, r in without.items() if r[0] != "000"} == {}, without
    assert {u: r[0] for u, r in fetch(urls, on=MON, cert=CERT, key=KEY).items()} == dict.fromkeys(urls, "200")


def test_outsider_gets_no_metrics():
    """The client (in no tier group) gets nothing from any exporter: the firewall of every
    other host filters the exporter ports (no TCP connection at all); its own node exporter,
    reached over loopback, refuses it without credentials."""
    got = fetch([url(name, exporter) for name, exporter in ALL_EXPORTERS], on=CLIENT, timeout=5)
    own = url(CLIENT, "node")
    assert got.pop(own)[0] in ("401", "000"), own
    tcp_failure = re.compile(r"timed out|refused|No route|unreachable", re.I)
    answered = {u: r for u, r in got.items() if r[0] != "000" or not tcp_failure.search(r[1])}
    assert answered == {}, answered


def test_exporters_serve_tls_only():
    urls = [url(name, exporter, scheme="http") for name, exporter in
            (("stack-pg1", "node"), ("stack-pg1", "postgres"), ("stack-lb1", "nginx"), ("stack-redis1", "redis"))]
    # No credentials: they would cross the network in clear text.
    got = {u: r[0] for u, r in fetch(urls, on=MON).items()}
    assert {u: s for u, s in got.items() if s not in ("400", "000")} == {}, got


@pytest.mark.parametrize("name", sorted(ADDR))
def test_exporters_bound_to_the_cluster_address_only(name):
    h = host(name)
    for exporter in exporters_of(name):
        port = PORTS[exporter]
        assert h.socket(verifier.socket_url(ADDR[name], port)).is_listening, (name, exporter)
        assert not h.socket(verifier.socket_url(MGMT[name], port)).is_listening, (name, exporter)
        assert not h.socket(f"tcp://0.0.0.0:{port}").is_listening, (name, exporter)
        assert not h.socket(f"tcp://:::{port}").is_listening, (name, exporter)


def test_exporters_do_not_answer_on_management_addresses():
    """Even Prometheus' host, with the credentials, gets nothing on a management address."""
    urls = [url(name, exporter, address=MGMT[name]) for name, exporter in ALL_EXPORTERS]
    got = {u: r[0] for u, r in fetch(urls, on=MON, auth=credentials(), cert=CERT, key=KEY, timeout=5).items()}
    assert {u: s for u, s in got.items() if s != "000"} == {}, got


def test_prometheus_and_alertmanager_need_credentials():
    query = f"{PROM}/api/v1/query?query=up"
    without = fetch([query, ALERTMANAGER], on=MON)
    assert {u: r[0] for u, r in without.items()} == {query: "401", ALERTMANAGER: "401"}, without
    wrong = fetch([query, ALERTMANAGER], on=MON, auth="prometheus:wrong-password")
    assert {u: r[0] for u, r in wrong.items()} == {query: "401", ALERTMANAGER: "401"}, wrong
    right = fetch([query, ALERTMANAGER], on=MON, auth=credentials())
    assert {u: r[0] for u, r in right.items()} == {query: "200", ALERTMANAGER: "200"}, right


def test_certificate_expiry_reaches_prometheus():
    def check():
        result = prometheus("/api/v1/query?query=hardened_tls_certificate_not_after_timestamp_seconds")["result"]
        return True if {r["metric"]["instance"] for r in result} >= set(ADDR) else result
    wait_for(check)


def test_rules_are_loaded():
    names = {r["name"] for g in prometheus("/api/v1/rules")["groups"] for r in g["rules"]}
    assert {"InstanceDown", "RedisDown", "PostgresDown", "PatroniNoLeader", "CertificateExpiringSoon",
            "BackupTooOld"} <= names, names


# The preflight stops at the first defect (any_errors_fatal): one run per defect, each over the
# whole inventory with the site playbook, as users run it. The messages are matched on words
# (the result callback may fold and quote long lines).
@pytest.mark.parametrize("extra,words", [
    ({"exporters_enabled": ["node", "mysql"]}, ["exporters_enabled", "mysql"]),
    ({"prometheus_retention_time": "15x"}, ["prometheus_retention_time", "15x", "Prometheus durations"]),
    # The role's argument spec (required_if) refuses it before the receivers filter could.
    ({"alertmanager_receivers": [{"name": "hook", "type": "webhook"}]},
     ["alertmanager_receivers", "webhook", "missing: url"]),
], ids=["exporters", "prometheus", "alertmanager"])
def test_bad_input_stops_before_any_change(extra, words):
    rc, out = playbook("-e", json.dumps(extra), timeout=1200)
    assert rc != 0, out[-3000:]
    flat = " ".join(out.split())
    assert [w for w in words if w not in flat] == [], out[-3000:]
    rows = recap(out)
    assert set(rows) == set(INSTANCES), out[-3000:]
    assert {h: r.get("changed") for h, r in rows.items() if r.get("changed") != 0} == {}, out[-3000:]


def alerts():
    return {(a["labels"]["alertname"], a["labels"].get("instance")): a["state"]
            for a in prometheus("/api/v1/alerts")["alerts"]}


def redis_replica():
    """A Redis replica (its exporter's redis_instance_info says role="slave")."""
    urls = {url(name, "redis"): name for name in in_group("redis")}
    for u, (status, body) in sorted(fetch(list(urls), on=MON, cert=CERT, key=KEY).items()):
        assert status == "200", body
        if re.search(r'^redis_instance_info\{[^}]*role="slave"', body, re.M):
            return urls[u]
    raise AssertionError("no Redis replica")


def postgres_replica():
    replicas = sorted(member_host(m) for m in streaming_replicas(patroni_members()))
    assert replicas, "no streaming PostgreSQL replica"
    return replicas[0]


def redis_back(name):
    body = request(url(name, "redis"), on=MON, cert=CERT, key=KEY)[1]
    return True if re.search(r"^redis_up 1", body, re.M) else "redis_up is not 1 yet"


def postgres_back(_name):
    members = patroni_members()
    return True if len(streaming_replicas(members)) == 2 else members


# Replicas only: the app keeps its master and leader; each is started again and the test
# waits until it serves again (alert cleared, replica streaming) so later tests see a whole stack.
@pytest.mark.parametrize("pick,unit,alert,back", [(redis_replica, "redis-server", "RedisDown", redis_back),
                                                  (postgres_replica, "patroni", "PostgresDown", postgres_back)],
                         ids=["redis", "postgresql"])
def test_stopping_a_service_raises_its_alert(pick, unit, alert, back):
    name = pick()
    h = host(name)
    wait_for(lambda: True if (alert, name) not in alerts() else alerts(), timeout=120)
    h.run_expect([0], f"systemctl stop {unit}")
    try:
        def raised():
            state = alerts().get((alert, name))
            return True if state in ("pending", "firing") else state
        wait_for(raised, timeout=150)
    finally:
        h.run(f"systemctl start {unit}")
    # It clears once the service is back, and the service serves again.
    wait_for(lambda: True if (alert, name) not in alerts() else alerts().get((alert, name)), timeout=150)
    wait_for(lambda: back(name), timeout=180, step=5)
