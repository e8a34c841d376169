"""The whole stack, used from a client host as users use it.

The client is in no tier group: it reaches the stack through nginx (443, 80) and nothing
else, on the load balancer's management address (the public entry, as the world dials it) as
on its cluster address; every internal service listens on cluster addresses only. The first
test proves the converge ran the collection installed from its tarball (the scenario's
prepare builds and installs it). Monitoring is verified in test_monitoring.py, which pytest
runs first. The last test reruns the site playbook in check/diff mode with -v on the
converged stack: nothing may change and no secret may appear in that output. Shared helpers:
stackutil.py.
"""

# ruff: noqa: S310 (https URLs to the scenario's hosts only)
import json
import os
import re
import subprocess
import uuid

import pytest
from stackutil import (ADDR, CLIENT, MGMT, PORT_MAP, PROJECT, fetch, host, known_secrets, leaks, patroni_members,
                       playbook, recap_changed, streaming_replicas, verifier)

LB = ADDR["stack-lb1"]  # the load balancer's cluster address (HAProxy endpoints, nginx)
FRONT = MGMT["stack-lb1"]  # its management address: the public entry (nginx 80/443) only
# (host, port map entry) of each internal service; dialled on cluster and management addresses.
INTERNAL = {"postgresql": ("stack-pg1", "postgresql"), "patroni": ("stack-pg1", "patroni_api"),
            "etcd": ("stack-pg1", "etcd_client"), "redis": ("stack-redis1", "redis"),
            "sentinel": ("stack-redis1", "redis_sentinel"), "pg_write": ("stack-lb1", "pg_write"),
            "node_exporter": ("stack-pg1", "node_exporter"), "app": ("stack-app1", "app_http")}


def curl(path, method="GET", scheme="https", *, on=CLIENT, address=FRONT):
    """(status, body) of a request from a host (the client by default) to the load balancer."""
    url = f"{scheme}://{verifier.url_host(address)}{path}"
    return fetch([url], on=on, method=method)[url]


def reach(on, address, port):
    """Whether a TCP connection from host ``on`` to address:port is accepted (4 s)."""
    return host(on).run(f"timeout 4 bash -c 'echo > /dev/tcp/{address}/{port}'").rc == 0


def test_the_converge_used_the_collection_installed_from_its_tarball():
    """prepare built the tarball and installed it into the ephemeral directory, first on the
    scenario's collections path: hardened.stack resolves there, not to the checkout link."""
    installed = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "collections")
    assert os.environ["ANSIBLE_COLLECTIONS_PATH"].split(":")[0] == installed
    res = subprocess.run(["ansible-galaxy", "collection", "list", "hardened.stack"], cwd=PROJECT,
                         env=dict(os.environ, ANSIBLE_NOCOLOR="1"), capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    sections = re.findall(r"^# (\S+)\n(.*?)(?=^# |\Z)", res.stdout, re.M | re.S)
    holding = [path for path, body in sections if re.search(r"^hardened\.stack\s", body, re.M)]
    assert holding and holding[0] == os.path.join(installed, "ansible_collections"), res.stdout
    tree = os.path.join(holding[0], "hardened", "stack")
    assert not os.path.islink(tree) and os.path.isfile(os.path.join(tree, "MANIFEST.json")), tree
    assert not {"molecule", "tests", "lab", ".venv", ".build"} & set(os.listdir(tree)), os.listdir(tree)


def test_health_through_the_load_balancer_reports_database_and_cache_ok():
    status, body = curl("/health")
    assert status == "200", body
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["database"]["ok"] is True and health["cache"]["ok"] is True


def test_http_redirects_to_https():
    status = curl("/health", scheme="http")[0]
    assert status == "301"


def test_the_public_entry_answers_on_the_cluster_address_too():
    status, body = curl("/health", address=LB)
    assert status == "200", body
    assert curl("/health", scheme="http", address=LB)[0] == "301"


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


@pytest.mark.parametrize("network", ["cluster", "management"])
@pytest.mark.parametrize("service", sorted(INTERNAL))
def test_client_cannot_reach_internal_services(service, network):
    name, entry = INTERNAL[service]
    address, port = (ADDR if network == "cluster" else MGMT)[name], PORT_MAP[entry]["port"]
    assert not reach(CLIENT, address, port), f"{service} ({address}:{port}) answered the client"


def test_app_server_reaches_its_database_and_cache_directly_only_as_the_port_map_allows():
    # app -> write endpoint on the load balancer: allowed; app -> etcd: not in the port map.
    assert reach("stack-app1", LB, PORT_MAP["pg_write"]["port"])
    assert not reach("stack-app1", ADDR["stack-pg1"], PORT_MAP["etcd_client"]["port"])
    # The same flows over the management network: the app server is nobody there.
    assert not reach("stack-app1", MGMT["stack-lb1"], PORT_MAP["pg_write"]["port"])
    assert not reach("stack-app1", MGMT["stack-pg1"], PORT_MAP["postgresql"]["port"])


def test_one_patroni_leader_two_streaming_replicas():
    members = patroni_members()
    assert [m["role"] for m in members].count("leader") == 1, members
    assert len(streaming_replicas(members)) == 2, members


def test_check_diff_verbose_rerun_changes_nothing_and_prints_no_secret():
    known = {s for s in known_secrets() if len(s) >= 8}
    assert len(known) >= 8, f"expected the stack's generated and vault passwords, found {len(known)}"
    rc, out = playbook("--check", "--diff", "-v")
    assert rc == 0, out[-4000:]
    assert recap_changed(out) == 0, out[-4000:]
    # as written, and as a JSON or YAML double-quoted string would escape it (-v prints results)
    found = leaks.leaked(out, known)
    assert not found, f"secrets in the -v --check --diff output: {found}"
