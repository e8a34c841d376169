"""app: a sandboxed service on the cluster address only, secrets private, stack facts wired."""

import json
import os
import sys

import pytest
import testinfra

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(SCENARIO)), "molecule", "_shared"))
import verifier  # noqa: E402  (molecule/_shared/verifier.py)
# The `host` fixture runs each test on every app server (not on the load balancer).
testinfra_hosts = [f"ansible://app?ansible_inventory={INVENTORY}&sudo=true"]


@pytest.fixture(name="lb")
def fixture_lb():
    return testinfra.get_host(f"ansible://app-lb?ansible_inventory={INVENTORY}", sudo=True)


def name_of(host):
    return host.ansible.get_variables()["inventory_hostname"]


def address(host):
    """Where the app listens: the host's cluster address (molecule.yml cluster_address)."""
    return verifier.cluster_address(name_of(host), SCENARIO)


@pytest.mark.parametrize("name", ["app-d12", "app-d13"])
def test_answers_from_another_host_with_its_name(lb, name):
    backend = testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)
    out = lb.check_output(f"python3 -c \"import urllib.request;print(urllib.request.urlopen("
                          f"'{verifier.url('http', address(backend), 8000, '/')}').read().decode())\"")
    assert out.strip() == f"hello from {name}"


def test_health_reports_missing_database_and_cache(host):
    res = host.run(f"python3 - <<'EOF'\nimport urllib.request,urllib.error\ntry:\n"
                   f"    urllib.request.urlopen('{verifier.url('http', address(host), 8000, '/health')}')\n"
                   f"except urllib.error.HTTPError as e:\n    print(e.code, e.read().decode())\nEOF")
    code, body = res.stdout.split(" ", 1)
    assert code == "503"
    data = json.loads(body)
    assert data["status"] == "degraded"
    assert data["database"]["ok"] is False and data["cache"]["ok"] is False


def test_listens_only_on_the_cluster_address(host, lb):
    sockets = [s for s in host.socket.get_listening_sockets() if s.endswith(":8000")]
    assert sockets == [verifier.socket_url(address(host), 8000)]
    # Not on the management network: the load balancer, which reaches it on the cluster
    # address, gets no answer on the host's management address.
    mgmt = verifier.management_address(name_of(host))
    assert lb.run(f"timeout 4 bash -c 'echo > /dev/tcp/{mgmt}/8000'").rc != 0


def test_runs_unprivileged_and_sandboxed(host):
    props = host.check_output("systemctl show app-hsdemo.service -p User -p NoNewPrivileges "
                              "-p ProtectSystem -p PrivateTmp -p CapabilityBoundingSet")
    assert "User=hsdemo" in props
    assert "NoNewPrivileges=yes" in props
    assert "ProtectSystem=strict" in props
    pid = host.check_output("systemctl show -p MainPID --value app-hsdemo.service")
    assert host.check_output(f"ps -o user= -p {pid}").strip() == "hsdemo"
    caps = host.check_output(f"grep CapEff /proc/{pid}/status")
    assert caps.split()[1] == "0000000000000000"


def service_environment(host):
    """The environment the running app process got from systemd: the env file as systemd
    parsed it (its values are quoted and escaped for that parser, hardened.stack.systemd_env_value)."""
    pid = host.check_output("systemctl show -p MainPID --value app-hsdemo.service")
    raw = host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    return dict(line.split("=", 1) for line in raw.splitlines() if "=" in line)


def test_secrets_only_in_a_private_file(host):
    env = host.file("/etc/hardened-stack/app/hsdemo.env")
    assert env.mode == 0o600 and env.user == "root"
    assert 'APP_API_TOKEN="lab-token-secret-value"' in env.content_string
    assert service_environment(host)["APP_API_TOKEN"] == "lab-token-secret-value"  # noqa: S105 (the test value)
    # Not visible to other users through the process table or systemd.
    show = host.check_output("systemctl show app-hsdemo.service")
    assert "lab-token-secret-value" not in show and "lab-db-secret-value" not in show


def test_stack_connection_facts_are_wired(host):
    env = service_environment(host)
    # The write endpoint: the load balancer's cluster address (no postgres group here).
    assert env["APP_PG_HOSTS"] == verifier.cluster_address("app-lb", SCENARIO)
    assert env["APP_PG_PORT"] == "5000"
