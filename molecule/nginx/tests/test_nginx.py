"""Behaviour of the nginx scenario: TLS as a client sees it (sslscan from the client host),
headers, redirect, rate limit, load balancing and failover between the two backends, limits,
stub_status on loopback only, the nginx -t gate on a broken site, bad input, check mode, and the
response/upstream metrics (mtail on the nginx logs) as the monitoring host scrapes them.

Tests run in file order and share the hosts; each leaves the backends and nginx as it found them.
"""

import json
import functools
import os
import re
import shlex
import sys
import time

import pytest
import testinfra
import yaml

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
sys.path.insert(0, os.path.join(PROJECT, "molecule", "_shared"))
import verifier  # noqa: E402  (molecule/_shared/verifier.py)
# Addresses from molecule.yml. The public entry (80/443) is dialled as the world dials it: on
# the load balancers' management addresses (nginx answers 80/443 on every address), from the
# client's management address. Everything else (the exporter ports, the upstreams) is on the
# cluster network: LBS and APP_IPS are cluster addresses.
LBS = verifier.cluster_addresses_of(verifier.group("loadbalancers", SCENARIO), SCENARIO)
FRONT = {lb: verifier.management_address(lb, SCENARIO) for lb in LBS}
APPS = ["nginx-app1", "nginx-app2"]
CLIENT = "nginx-client"
CLIENT_IP = verifier.management_address(CLIENT, SCENARIO)
MON = "nginx-mon"
APP_IPS = verifier.cluster_addresses_of(APPS, SCENARIO)
CA = "/etc/hardened-stack/pki/ca.crt"
LIVE_SITE = "/etc/nginx/hardened-stack/sites/shop.conf"
# The role's default security headers (defaults/main.yml) and the scenario's CSP override.
HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "permissions-policy": "camera=(), geolocation=(), microphone=(), payment=(), usb=()",
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}


def _port_map():
    with open(os.path.join(PROJECT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["_common_port_map_defaults"]


NGINX_EXPORTER_PORT = _port_map()["nginx_exporter"]["port"]
NGINX_LOG_PORT = _port_map()["nginx_log_exporter"]["port"]
APP_PORT = _port_map()["app_http"]["port"]


def host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


def curl(lb, path="/", *args, scheme="https", address=None):
    """curl from the client host to a load balancer by name (verified against the system
    trust store, where the pki role put the lab CA), on its public entry (or ``address``).
    Returns (status, headers, body)."""
    port = 443 if scheme == "https" else 80
    target = verifier.url_host(address or FRONT[lb])
    cmd = (f"curl -sS --max-time 10 -D /dev/stderr --resolve {lb}:{port}:{target} "
           f"{' '.join(args)} {scheme}://{lb}{path}")
    res = host(CLIENT).run(cmd)
    assert res.rc == 0, res.stderr
    status = int(re.search(r"^HTTP/\S+ (\d{3})", res.stderr, re.M).group(1))
    headers = {}
    for line in res.stderr.splitlines()[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers, res.stdout


def burst(lb, path, count, parallel=True):
    """Status codes of `count` requests from the client (all at once when parallel)."""
    url = f"https://{lb}{path}"
    if parallel:
        cmd = (f"seq {count} | xargs -P {count} -I{{}} curl -s -o /dev/null -w '%{{http_code}}\\n' "
               f"--max-time 10 --resolve {lb}:443:{FRONT[lb]} {url}")
    else:
        cmd = (f"for i in $(seq {count}); do curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 10 "
               f"--resolve {lb}:443:{FRONT[lb]} {url}; sleep 0.6; done")
    res = host(CLIENT).run(cmd)
    return [int(c) for c in res.stdout.split()]


playbook = functools.partial(verifier.playbook, cwd=SCENARIO, timeout=900)
recap = verifier.recap


def sslscan(lb):
    """{'protocols': {name: enabled}, 'ciphers': [(protocol, cipher)]} as the client sees it."""
    out = host(CLIENT).run(f"sslscan --no-colour --no-heartbleed --no-compression --no-fallback "
                           f"--no-renegotiation --sni-name={lb} {FRONT[lb]}:443").stdout
    protocols = {m.group(1): m.group(2) == "enabled"
                 for m in re.finditer(r"^(SSLv[23]|TLSv1\.[0-3])\s+(enabled|disabled)", out, re.M)}
    ciphers = re.findall(r"^(?:Preferred|Accepted)\s+(TLSv1\.[0-3]|SSLv[23])\s+\d+ bits\s+(\S+)", out, re.M)
    return {"protocols": protocols, "ciphers": ciphers, "raw": out}


# --- TLS -------------------------------------------------------------------------------------

def test_intermediate_offers_only_tls12_and_13_with_forward_secret_aead_suites():
    scan = sslscan("nginx-lb1")
    enabled = sorted(p for p, on in scan["protocols"].items() if on)
    assert enabled == ["TLSv1.2", "TLSv1.3"], scan["raw"]
    assert scan["ciphers"], scan["raw"]
    for proto, cipher in scan["ciphers"]:
        assert not re.search(r"CBC|RC4|3DES|DES-CBC|NULL|EXP|MD5|anon|PSK", cipher), cipher
        if proto == "TLSv1.2":
            # Forward secrecy (ECDHE/DHE) and AEAD (GCM/ChaCha20): no CBC suite in OpenSSL naming.
            assert re.match(r"^(ECDHE|DHE)-", cipher), cipher
            assert re.search(r"GCM|CHACHA20", cipher), cipher
        else:
            assert cipher.startswith("TLS_"), cipher  # TLS 1.3 suites are all ephemeral
    # ECDSA certificate by default: the RSA-authenticated suites cannot be negotiated.
    assert all("RSA" not in c for _proto, c in scan["ciphers"]), scan["ciphers"]


def test_modern_offers_tls13_only():
    scan = sslscan("nginx-lb2")
    enabled = sorted(p for p, on in scan["protocols"].items() if on)
    assert enabled == ["TLSv1.3"], scan["raw"]
    assert {p for p, _cipher in scan["ciphers"]} == {"TLSv1.3"}


@pytest.mark.parametrize("lb", sorted(LBS))
def test_certificate_chain_verifies_against_the_lab_ca(lb):
    res = host(CLIENT).run(f"openssl s_client -connect {FRONT[lb]}:443 -servername {lb} -verify_return_error "
                           f"-verify_hostname {lb} -CAfile {CA} </dev/null")
    assert res.rc == 0 and "Verify return code: 0 (ok)" in res.stdout, res.stdout + res.stderr
    # Session tickets are off: a TLS 1.2 session carries no ticket (the session cache resumes).
    tls12 = host(CLIENT).run(f"openssl s_client -tls1_2 -connect {FRONT[lb]}:443 -servername {lb} </dev/null")
    if lb == "nginx-lb1":
        assert "Protocol  : TLSv1.2" in tls12.stdout and "TLS session ticket" not in tls12.stdout, tls12.stdout
    # ... and a client without the lab CA refuses the certificate.
    alien = host(CLIENT).run(f"curl -sS --max-time 5 --cacert /etc/ssl/certs/ISRG_Root_X1.pem --capath /nonexistent "
                             f"--resolve {lb}:443:{FRONT[lb]} https://{lb}/")
    assert alien.rc != 0


def test_old_protocols_refused_even_at_security_level_0():
    res = host(CLIENT).run(f"openssl s_client -connect {FRONT['nginx-lb1']}:443 -tls1_1 "
                           f"-cipher 'DEFAULT:@SECLEVEL=0' </dev/null")
    assert res.rc != 0


# --- headers, redirect, health -----------------------------------------------------------

@pytest.mark.parametrize("lb", sorted(LBS))
def test_security_headers_and_no_version(lb):
    status, headers, _body = curl(lb, "/")
    assert status == 200
    for name, value in HEADERS.items():
        assert headers.get(name) == value, (name, headers)
    assert headers["server"] == "nginx"


def test_http_redirects_to_https_with_path_and_query():
    status, headers, _body = curl("nginx-lb1", "/some/path?q=1", scheme="http")
    assert status == 301
    assert headers["location"] == "https://nginx-lb1/some/path?q=1"


def test_health_location_answered_by_nginx():
    status, _headers, body = curl("nginx-lb1", "/health")
    assert (status, body) == (200, "ok\n")


def test_proxy_headers_reach_the_backend():
    status, _headers, body = curl("nginx-lb1", "/headers")
    seen = {k.lower(): v for k, v in json.loads(body).items()}
    assert status == 200
    assert seen["host"] == "nginx-lb1"
    assert seen["x-real-ip"] == CLIENT_IP
    assert seen["x-forwarded-for"] == CLIENT_IP
    assert seen["x-forwarded-proto"] == "https"


@pytest.mark.parametrize("lb", sorted(LBS))
def test_public_entry_answers_on_the_cluster_address_too(lb):
    """80/443 answer on every address: from the cluster network the client is its cluster address."""
    status, _headers, body = curl(lb, "/headers", address=LBS[lb])
    seen = {k.lower(): v for k, v in json.loads(body).items()}
    assert status == 200
    assert seen["x-real-ip"] == verifier.cluster_address(CLIENT, SCENARIO)
    assert curl(lb, "/", scheme="http", address=LBS[lb])[0] == 301


def test_gzip_for_text():
    status, headers, _body = curl("nginx-lb1", "/big", "-H 'Accept-Encoding: gzip'", "-o /dev/null")
    assert status == 200 and headers.get("content-encoding") == "gzip"


# --- limits ----------------------------------------------------------------------------------

def test_rate_limit_within_gives_200_beyond_gives_429():
    time.sleep(2)  # let the bucket of /limited/ (2r/s, burst 3) drain
    within = burst("nginx-lb1", "/limited/", 4, parallel=False)
    assert within == [200] * 4
    time.sleep(2)
    # 40 at once: at most burst + 1 + 2/s while they arrive pass, the rest get 429.
    beyond = burst("nginx-lb1", "/limited/", 40)
    assert beyond.count(429) >= 20 and 200 in beyond and set(beyond) <= {200, 429}, beyond


def test_request_body_and_header_size_limits():
    big_body = host(CLIENT).run(f"head -c 2000000 /dev/zero | curl -s -o /dev/null -w '%{{http_code}}' "
                                f"--resolve nginx-lb1:443:{FRONT['nginx-lb1']} --data-binary @- https://nginx-lb1/")
    assert big_body.stdout == "413"

    def with_header(size, *opts):
        return host(CLIENT).run(f"curl -s -o /dev/null -w '%{{http_code}}' {' '.join(opts)} -H \"X-Big: $(head -c "
                                f"{size} /dev/zero | tr '\\0' a)\" --resolve nginx-lb1:443:{FRONT['nginx-lb1']} "
                                f"https://nginx-lb1/").stdout
    # large_client_header_buffers 4 8k: a 7 kB header passes, a 9 kB one is refused (HTTP/1.1);
    # over HTTP/2 the limit applies to the Huffman-coded field (5 bits per 'a').
    assert with_header(7000, "--http1.1") == "200"
    assert with_header(9000, "--http1.1") == "400"
    assert with_header(20000) != "200"


# --- load balancing --------------------------------------------------------------------------

def test_requests_alternate_between_both_backends():
    names = [curl("nginx-lb1", "/")[2].strip() for _i in range(8)]
    assert set(names) == set(APPS), names
    assert min(names.count(a) for a in APPS) >= 3, names


def test_upstream_keepalive_reuses_connections():
    seen = [curl("nginx-lb1", "/conn")[2].split() for _i in range(8)]
    peers = [tuple(s) for s in seen]
    assert len(set(peers)) < len(peers), peers


def test_one_backend_down_every_request_still_succeeds():
    app1 = host("nginx-app1")
    app1.run("systemctl stop hs-backend.service")
    try:
        codes, names = [], []
        for _i in range(12):
            status, _headers, body = curl("nginx-lb1", "/")
            codes.append(status)
            names.append(body.strip())
        assert codes == [200] * 12
        assert set(names) == {"nginx-app2"}
    finally:
        app1.run("systemctl start hs-backend.service")
    time.sleep(1)


def test_drained_host_gets_no_request_and_is_put_back_by_a_rerun():
    """nginx_drained_hosts (inventory host names) renders the server `down` with a comment
    naming the host, through nginx -t and a reload; the plain run puts it back byte for byte."""
    before = live_state()
    rc, out = playbook("apply.yml", "--limit", "nginx-lb1", "-e", json.dumps({"nginx_drained_hosts": ["nginx-app1"]}))
    assert rc == 0, out
    site = host("nginx-lb1").file(LIVE_SITE).content_string
    app1 = APP_IPS["nginx-app1"]
    server = f"server {'[%s]' % app1 if ':' in app1 else app1}:{APP_PORT} "
    lines = [x for x in site.splitlines() if server in x]
    assert len(lines) == 1, site
    line = lines[0]
    assert line.rstrip().endswith("down; # nginx-app1 drained"), line
    assert live_state()[1] == before[1]  # reloaded, same master process
    names = [curl("nginx-lb1", "/")[2].strip() for _i in range(8)]
    assert set(names) == {"nginx-app2"}, names
    rc, out = playbook("apply.yml", "--limit", "nginx-lb1")
    assert rc == 0, out
    assert live_state() == before


# --- loopback status, listening ports ------------------------------------------------------

def test_stub_status_on_loopback_only():
    lb = host("nginx-lb1")
    local = lb.run("python3 -c \"import urllib.request as u; "
                   "print(u.urlopen('http://127.0.0.1/stub_status').read().decode())\"")
    assert local.stdout.startswith("Active connections:"), local.stdout
    # From the client the same path on port 80 is just redirected; nothing else answers.
    status, headers, _body = curl("nginx-lb1", "/stub_status", scheme="http")
    assert status == 301
    listening = lb.run("ss -Hltn").stdout.split("\n")
    public = set()
    for line in filter(None, listening):
        local_addr = line.split()[3]
        addr, port = local_addr.rsplit(":", 1)
        if not addr.startswith("127.") and addr not in ("[::1]",):
            public.add(int(port))
    # ... plus the nginx and nginx_log exporters, served by nginx with TLS + basic auth.
    assert public == {22, 80, 443, NGINX_EXPORTER_PORT, NGINX_LOG_PORT}, listening


# --- the nginx -t gate ---------------------------------------------------------------------

def live_state(name="nginx-lb1"):
    lb = host(name)
    return (lb.run("find /etc/nginx -type f -exec sha256sum {} + | sort").stdout,
            lb.run("systemctl show -p MainPID --value nginx.service").stdout.strip())


def test_broken_site_fails_at_validation_and_the_live_config_keeps_serving():
    before = live_state()
    broken = {"nginx_sites": [
        {"name": "shop", "upstream_group": "app", "locations": [{"path": "/"}]},
        {"name": "broken", "server_names": ["broken.lab.test"], "extra": ["this_is_not_a_directive on;"]}]}
    rc, out = playbook("apply.yml", "--limit", "nginx-lb1", "-e", json.dumps(broken))
    assert rc != 0, out
    assert "failed `nginx -t` and was NOT installed" in out and "this_is_not_a_directive" in out, out
    assert recap(out)["nginx-lb1"]["failed"] == 1
    assert live_state() == before  # same files, same master process (no restart)
    assert host("nginx-lb1").run("systemctl is-active nginx.service").stdout.strip() == "active"
    status, headers, body = curl("nginx-lb1", "/")
    assert status == 200 and body.strip() in APPS
    assert "broken.lab.test" not in host("nginx-lb1").run("cat /etc/nginx/hardened-stack/sites/*.conf").stdout


@pytest.mark.parametrize("extra,message", [
    ({"nginx_tls_profile": "legacy"}, "nginx_tls_profile"),
    ({"nginx_sites": [{"name": "shop", "locations": [{"path": "/", "rate": "fast"}]}]}, "not nginx rate syntax"),
    ({"nginx_sites": [{"name": "shop", "upstream_group": "nosuchgroup"}]}, "upstream group 'nosuchgroup' has no hosts"),
    ({"nginx_sites": [{"name": "shop", "certificate_file": "/etc/ssl/missing.crt",
                       "certificate_key_file": "/etc/ssl/missing.key"}]}, "missing: /etc/ssl/missing.crt"),
    ({"nginx_drained_hosts": ["172.30.24.21"]}, "nginx_drained_hosts: '172.30.24.21' is not in the inventory"),
], ids=["unknown-profile", "bad-location-rate", "empty-upstream-group", "missing-certificate", "drained-not-a-host"])
def test_bad_input_stops_before_any_change(extra, message):
    before = live_state()
    rc, out = playbook("apply.yml", "--limit", "nginx-lb1", "-e", json.dumps(extra))
    assert rc != 0 and message in out, out
    row = recap(out)["nginx-lb1"]
    assert row["failed"] == 1 and row["changed"] == 0, row
    assert live_state() == before


def test_rerun_restores_staging_and_reports_no_live_change():
    # The broken run left its tree in the staging directory only; a normal run puts the
    # right one back there and finds the live tree already right.
    before = live_state()
    rc, out = playbook("apply.yml")
    assert rc == 0, out
    assert live_state() == before


def test_check_diff_on_converged_hosts_reports_no_change():
    rc, out = playbook("apply.yml", "--check", "--diff")
    assert rc == 0, out
    rows = recap(out)
    assert rows and all(r["changed"] == 0 for r in rows.values()), rows


# --- response and upstream metrics (mtail on the nginx logs) ------------------------------

def scrape_password():
    """The exporters' basic-auth password (generated by the exporters role), as the load
    balancers' exporters get it."""
    return verifier.secret("monitoring", on=sorted(LBS)[0], vault="exporters_auth_password", scenario=SCENARIO)


def scrape(lb, port=NGINX_LOG_PORT, source=MON, auth=True):
    """(HTTP status, body) of GET /metrics on a load balancer's exporter port, over TLS
    verified against the lab CA, from `source`, with Prometheus' credentials when auth."""
    cred = f"-u {shlex.quote('prometheus:' + scrape_password())}" if auth else ""
    res = host(source).run(f"curl -sS --max-time 10 --cacert {CA} {cred} -w '\\n%{{http_code}}' "
                           f"--resolve {lb}:{port}:{verifier.url_host(LBS[lb])} https://{lb}:{port}/metrics")
    assert res.rc == 0, res.stderr
    body, _sep, code = res.stdout.rpartition("\n")
    return int(code), body


def metric(body, name, **labels):
    """Sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
    total = 0.0
    for m in re.finditer(r"^%s(?:\{([^}]*)\})? (\S+)$" % re.escape(name), body, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def wait_metric(lb, name, at_least, timeout=30, **labels):
    """Scrape until `name{labels}` reaches `at_least`; return the last value."""
    deadline = time.time() + timeout
    while True:
        status, body = scrape(lb)
        assert status == 200, body
        value = metric(body, name, **labels)
        if value >= at_least or time.time() > deadline:
            return value
        time.sleep(1)


@pytest.mark.parametrize("lb", sorted(LBS))
def test_metrics_port_needs_credentials_and_a_monitoring_address(lb):
    # No credentials: 401 (TLS verified against the lab CA, so this is nginx's front, not mtail).
    assert scrape(lb, auth=False)[0] == 401
    assert scrape(lb)[0] == 200
    # The client host is not in the port map's `from` (monitoring): refused even with the
    # right credentials (the firewall admits the same addresses only).
    assert scrape(lb, source=CLIENT)[0] == 403
    assert scrape(lb, port=NGINX_EXPORTER_PORT, source=CLIENT)[0] == 403
    status, body = scrape(lb, port=NGINX_EXPORTER_PORT)
    assert status == 200 and "nginx_up 1" in body, body[:500]
    # mtail itself listens on loopback only (nginx holds the private address), as user mtail.
    lbh = host(lb)
    local = {line.split()[3] for line in lbh.run("ss -Hltn").stdout.splitlines() if line.strip()}
    cluster = verifier.host_port(LBS[lb], NGINX_LOG_PORT)
    assert f"127.0.0.1:{NGINX_LOG_PORT}" in local and cluster in local, local
    assert f"0.0.0.0:{NGINX_LOG_PORT}" not in local and f"*:{NGINX_LOG_PORT}" not in local, local
    # The exporter ports are cluster-only: nothing listens on, or answers at, the management address.
    for port in (NGINX_LOG_PORT, NGINX_EXPORTER_PORT):
        assert verifier.host_port(FRONT[lb], port) not in local, local
        assert host(MON).run(f"timeout 4 bash -c 'echo > /dev/tcp/{FRONT[lb]}/{port}'").rc != 0, port
    pid = lbh.run("systemctl show -p MainPID --value mtail.service").stdout.strip()
    assert lbh.run(f"ps -o user= -p {pid}").stdout.strip() == "mtail"
    assert "hardened-stack-nginx.mtail" in lbh.run("ls /etc/mtail").stdout


@pytest.mark.parametrize("lb", sorted(LBS))
def test_requests_through_the_lb_raise_the_2xx_counter(lb):
    _status, body = scrape(lb)
    before = metric(body, "hardened_nginx_responses_total", status_class="2xx")
    hist_before = metric(body, "hardened_nginx_request_duration_seconds_count")
    for _i in range(5):
        assert curl(lb, "/")[0] == 200
    after = wait_metric(lb, "hardened_nginx_responses_total", before + 5, status_class="2xx")
    assert after >= before + 5, (before, after)
    _status, body = scrape(lb)
    assert metric(body, "hardened_nginx_request_duration_seconds_count") >= hist_before + 5
    # Every observation lands in a bucket (+Inf equals the count).
    assert metric(body, "hardened_nginx_request_duration_seconds_bucket", le="+Inf") == \
        metric(body, "hardened_nginx_request_duration_seconds_count")
    # Each attempt is counted per peer of the upstream group.
    assert metric(body, "hardened_nginx_upstream_responses_total", upstream="hs_shop", status_class="2xx") >= 5
    # No prog label on the collection's metrics (mtail's own mtail_* metrics keep theirs).
    assert not re.search(r"^hardened_nginx_\S*prog=", body, re.M)


def test_stopped_backends_raise_5xx_and_upstream_failure_counters():
    lb = "nginx-lb1"
    app1 = verifier.host_port(APP_IPS["nginx-app1"], APP_PORT)
    _status, body = scrape(lb)
    failed_before = metric(body, "hardened_nginx_upstream_responses_total", peer=app1, status_class="5xx")
    connect_before = metric(body, "hardened_nginx_upstream_failures_total", peer=app1, reason="connect")
    fivexx_before = metric(body, "hardened_nginx_responses_total", status_class="5xx")
    unavailable_before = metric(body, "hardened_nginx_upstream_unavailable_total", upstream="hs_shop")
    disabled_before = metric(body, "hardened_nginx_upstream_peer_disabled_total", peer=app1)
    try:
        # One backend stopped: clients still get 200 (the next peer answers), but every attempt
        # on the stopped peer is a 502 and a refused connection.
        host("nginx-app1").run("systemctl stop hs-backend.service")
        codes = [curl(lb, "/")[0] for _i in range(8)]
        assert codes == [200] * 8, codes
        assert wait_metric(lb, "hardened_nginx_upstream_responses_total", failed_before + 1,
                           peer=app1, status_class="5xx") >= failed_before + 1
        assert wait_metric(lb, "hardened_nginx_upstream_failures_total", connect_before + 1,
                           peer=app1, reason="connect") >= connect_before + 1
        # max_fails reached: nginx logs (warn) that it stops sending to the peer for fail_timeout.
        assert wait_metric(lb, "hardened_nginx_upstream_peer_disabled_total", disabled_before + 1,
                           peer=app1) >= disabled_before + 1
        # Both stopped: 502 to the client, then no live peer at all.
        host("nginx-app2").run("systemctl stop hs-backend.service")
        codes = [curl(lb, "/")[0] for _i in range(8)]
        assert set(codes) == {502}, codes
        assert wait_metric(lb, "hardened_nginx_responses_total", fivexx_before + 8,
                           status_class="5xx") >= fivexx_before + 8
        assert wait_metric(lb, "hardened_nginx_upstream_unavailable_total", unavailable_before + 1,
                           upstream="hs_shop") >= unavailable_before + 1
    finally:
        for app in APPS:
            host(app).run("systemctl start hs-backend.service")
    # fail_timeout (10 s) passes and the peers are back.
    deadline = time.time() + 30
    while time.time() < deadline and curl(lb, "/")[0] != 200:
        time.sleep(1)
    assert curl(lb, "/")[0] == 200


# --- the exporters' basic auth rotation (roles/exporters/README.md, Secrets) ---------------

ROTATION_USER = "prometheus-rotation"
# A vault-style password (no "{{": -e values are templated by Ansible).
NEW_PASSWORD = 'n3w "pässwörd" $HOME #1 \\ %i `x`'  # noqa: S105 (a test value)


def scrape_as(lb, user, password, port=NGINX_EXPORTER_PORT):
    """HTTP status of GET /metrics on a load balancer's exporter port from the monitoring host."""
    res = host(MON).run(f"curl -sS -o /dev/null --max-time 10 --cacert {CA} -u {shlex.quote(user + ':' + password)} "
                        f"-w '%{{http_code}}' --resolve {lb}:{port}:{verifier.url_host(LBS[lb])} "
                        f"https://{lb}:{port}/metrics")
    assert res.rc == 0, res.stderr
    return int(res.stdout)


def rotate(*steps, password=None):
    extra = {"steps": list(steps)}
    if password is not None:
        extra["exporters_auth_password"] = password
    rc, out = playbook("rotate_auth.yml", "-e", json.dumps(extra))
    assert rc == 0, out[-4000:]
    assert NEW_PASSWORD not in out and scrape_password() not in out, "a password reached the output"
    return out


def test_basic_auth_rotation_accepts_both_then_refuses_the_old_one():
    old = scrape_password()
    lbs = sorted(LBS)
    # The converged htpasswd: both users with the generated password, nothing else.
    for lb in lbs:
        assert [scrape_as(lb, u, old) for u in ("prometheus", ROTATION_USER)] == [200, 200]
        assert scrape_as(lb, "prometheus", NEW_PASSWORD) == 401
    # accept: Prometheus keeps authenticating as prometheus with the old password, the
    # rotation user takes the new one (nginx reads the file per request: no reload).
    rotate("accept", password=NEW_PASSWORD)
    for lb in lbs:
        assert scrape_as(lb, "prometheus", old) == 200, "the old password must still work during accept"
        assert scrape_as(lb, ROTATION_USER, NEW_PASSWORD) == 200
        assert scrape_as(lb, ROTATION_USER, old) == 401
        assert scrape_as(lb, "prometheus", NEW_PASSWORD, port=NGINX_LOG_PORT) == 401
    # switch: Prometheus (nginx-mon) scrapes with the new password; then withdraw: the old one refused.
    rotate("switch", password=NEW_PASSWORD)
    rotate("withdraw", password=NEW_PASSWORD)
    for lb in lbs:
        for port in (NGINX_EXPORTER_PORT, NGINX_LOG_PORT):
            assert [scrape_as(lb, u, old, port) for u in ("prometheus", ROTATION_USER)] == [401, 401]
            assert [scrape_as(lb, u, NEW_PASSWORD, port) for u in ("prometheus", ROTATION_USER)] == [200, 200]
    # Each step is a no-op once done.
    assert verifier.recap_changed(rotate("accept", "switch", "withdraw", password=NEW_PASSWORD)) == 0
    # Back to the scenario's password the same way (the tests above keep using it).
    rotate("accept", "switch", "withdraw")
    for lb in lbs:
        assert scrape_as(lb, "prometheus", old) == 200 and scrape_as(lb, "prometheus", NEW_PASSWORD) == 401
