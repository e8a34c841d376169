"""The public entry probed from outside (issue 19 point 4): the monitoring host's blackbox
exporter probes https://shop.lab.test/health (the site's name as Host and SNI, its certificate
verified against the lab CA) and the http redirect, at the front door (the virtual address when
the pair has one) and at each load balancer; Prometheus scrapes the probes (job blackbox).
Stopping nginx on both load balancers turns probe_success to 0 and BlackboxProbeFailed pending
or firing (the shipped rule; the scenario only makes the probes and evaluations frequent);
nginx is started again and the probes recover before the next test.

Everything is read from Prometheus' HTTP API as the monitoring host sees it, polled until the
expected answer (or the timeout): no sleeps stand in for a result.
"""

import json
import os
import shlex
import sys
import urllib.parse

import pytest
import testinfra
import yaml

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
sys.path.insert(0, os.path.join(PROJECT, "molecule", "_shared"))
import verifier  # noqa: E402  (molecule/_shared/verifier.py)

MON = "nginx-mon"
LBS = sorted(verifier.group("loadbalancers", SCENARIO))
LB_ADDRS = verifier.cluster_addresses_of(LBS, SCENARIO)
CA = "/etc/hardened-stack/pki/ca.crt"
SITE = "shop.lab.test"
HTTPS_URL = f"https://{SITE}/health"
HTTP_URL = f"http://{SITE}/health"
# The pair's virtual address (set by the scenario when keepalived runs; "" without one).
VIP = verifier.rendered(LBS[0], {"vip": "{{ hardened_stack_virtual_address | default('') }}"}, SCENARIO)["vip"]


def _port_map():
    with open(os.path.join(PROJECT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["_common_port_map_defaults"]


PROM = verifier.url("https", verifier.cluster_address(MON, SCENARIO), _port_map()["prometheus"]["port"])


def host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


def password():
    """Prometheus' basic auth password, as the monitoring host gets it."""
    return verifier.secret("monitoring", on=MON, vault="prometheus_auth_password", scenario=SCENARIO)


def query(expr):
    """The vector ``expr`` evaluates to now, ``{(instance, address): value}``, from the API."""
    cred = shlex.quote("prometheus:" + password())
    url = f"{PROM}/api/v1/query?query={urllib.parse.quote(expr)}"
    res = host(MON).run(f"curl -sS --max-time 10 --cacert {CA} -u {cred} {shlex.quote(url)}")
    assert res.rc == 0, res.stderr
    answer = json.loads(res.stdout)
    assert answer["status"] == "success", answer
    return {
        (r["metric"].get("instance"), r["metric"].get("address")): float(r["value"][1])
        for r in answer["data"]["result"]
    }


def expected_addresses():
    """Where https://shop.lab.test is dialled: every load balancer, and the virtual address."""
    return sorted(list(LB_ADDRS.values()) + ([VIP] if VIP else []))


def probes(url):
    return query(f'probe_success{{job="blackbox", instance="{url}"}}')


def all_succeed(url):
    got = probes(url)
    return sorted(a for (_i, a) in got) == expected_addresses() and all(v == 1 for v in got.values())


@pytest.fixture(name="healthy")
def fixture_healthy():
    """Every probe of the public URL and of the redirect succeeds (waited for)."""
    for url in (HTTPS_URL, HTTP_URL):
        assert verifier.wait(lambda u=url: all_succeed(u), timeout=120), (url, probes(url))


def test_public_url_and_redirect_probed_at_every_front_door(healthy):
    assert sorted(a for (_i, a) in probes(HTTPS_URL)) == expected_addresses()
    # The certificate users get, seen from outside: the lab CA's, valid for weeks.
    expiry = query(f'probe_ssl_earliest_cert_expiry{{job="blackbox", instance="{HTTPS_URL}"}} - time()')
    assert expiry and all(v > 86400 for v in expiry.values()), expiry
    # The host's own name is probed at that host only (the VIP serves the names both serve).
    for lb, address in LB_ADDRS.items():
        assert probes(f"https://{lb}/health") == {(f"https://{lb}/health", address): 1.0}


def test_both_nginx_stopped_fails_the_probes_and_the_alert_then_recovers(healthy):
    stopped = []
    try:
        for lb in LBS:
            host(lb).run_expect([0], "systemctl stop nginx.service")
            stopped.append(lb)

        def all_fail():
            got = probes(HTTPS_URL)
            return sorted(a for (_i, a) in got) == expected_addresses() and all(v == 0 for v in got.values())

        assert verifier.wait(all_fail, timeout=60), probes(HTTPS_URL)

        def alert():
            return query(
                f'ALERTS{{alertname="BlackboxProbeFailed", instance="{HTTPS_URL}", alertstate=~"pending|firing"}}'
            )

        # Every failing probe alerts, the front door's (what users see) as well as each host's.
        def alerted_everywhere():
            return {a for (_i, a) in alert()} == set(expected_addresses())

        assert verifier.wait(alerted_everywhere, timeout=60), alert()
    finally:
        for lb in stopped:
            host(lb).run_expect([0], "systemctl start nginx.service")
    for url in (HTTPS_URL, HTTP_URL):
        assert verifier.wait(lambda u=url: all_succeed(u), timeout=120), (url, probes(url))
    assert verifier.wait(lambda: not query('ALERTS{alertname="BlackboxProbeFailed", alertstate="firing"}'), timeout=120)
