"""Behaviour of the postgres scenario: etcd TLS, replication, endpoints, pg_hba, switchover,
leader loss, reruns after a failover, check mode and bad input.

The stack runs on IPv6 cluster addresses (molecule.yml cluster_address, fd00:172:30:35::/64):
every service address below is read from molecule.yml through verifier.cluster_address; URLs
bracket it, libpq host= strings take it bare. Ansible reaches the hosts over the IPv4
management network, where none of these services answers.

Tests run in file order and share the cluster: the switchover and the leader kill move the
leader, the rerun tests then prove that converge leaves the new leader alone.
"""

# ruff: noqa: S608, S310 (SQL from uuid tokens in tests; https URLs to the lab hosts only)
import functools
import ipaddress
import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
sys.path.insert(0, os.path.join(PROJECT, "molecule", "_shared"))
import verifier  # noqa: E402  (molecule/_shared/verifier.py)
SECRETS = os.path.join(EPHEMERAL, "secrets", "postgres")
CA = os.path.join(EPHEMERAL, "ca", "ca.crt")
# Cluster addresses (where the services listen), from molecule.yml.
NODES = verifier.cluster_addresses_of(verifier.group("postgres", SCENARIO), SCENARIO)
LB = verifier.cluster_address("pg-lb", SCENARIO)
WRITE, READ, API = 5000, 5001, 8008
APP = "pg-app"
OUTSIDER = "pg-outsider"
ETCD = verifier.url("https", NODES["pg-1"], 2379)


def host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def secret(user):
    with open(os.path.join(SECRETS, user), encoding="utf-8") as fh:
        return fh.read().split()[0]


def api(node, path="/cluster", timeout=3):
    ctx = ssl.create_default_context(cafile=CA)
    with urllib.request.urlopen(verifier.url("https", NODES[node], API, path), context=ctx, timeout=timeout) as resp:
        return json.loads(resp.read())


def cluster():
    for node in NODES:
        try:
            return api(node)
        except OSError:
            continue
    return {"members": []}


def leader():
    return next((m["name"] for m in cluster()["members"] if m["role"] in ("leader", "master")), None)


def healthy(expected=3):
    c = cluster()
    ms = c["members"]
    lead = [m for m in ms if m["role"] in ("leader", "master") and m["state"] == "running"]
    reps = [m for m in ms if m["role"] not in ("leader", "master")]
    return (len(ms) == expected and len(lead) == 1 and all(
        m["state"] in ("running", "streaming") and isinstance(m.get("lag"), int)
        and m.get("timeline") == lead[0].get("timeline") for m in reps))


def wait(predicate, timeout=90, step=1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def psql(name, sql, *, user="app", addr=LB, port=WRITE, db="appdb", sslmode="verify-full", password=None):
    """Run SQL from a client host as an application role; returns the command result."""
    pw = password if password is not None else secret(user)
    root = "sslrootcert=/etc/hardened-stack/pki/ca.crt " if sslmode.startswith("verify") else ""
    dsn = f"host={addr} port={port} dbname={db} user={user} sslmode={sslmode} {root}connect_timeout=3"
    return host(name).run(f"PGPASSWORD='{pw}' psql '{dsn}' -XAtqc \"{sql}\"")


def local_sql(node, sql, db="appdb"):
    return host(node).run(f"cd /tmp && sudo -u postgres psql -XAtqd {db} -c \"{sql}\"")


playbook = functools.partial(verifier.playbook, cwd=SCENARIO, timeout=1200)
recap = verifier.recap


def endpoint_server(port=WRITE, user="app"):
    """The address the endpoint's server answered on (normalised, to compare with NODES)."""
    res = psql(APP, "select inet_server_addr()", user=user, port=port)
    return normal(res.stdout.strip()) if res.rc == 0 and res.stdout.strip() else None


def normal(address):
    """An IP literal in one spelling (brackets and a /prefix dropped, IPv6 compressed)."""
    return str(ipaddress.ip_address(address.strip().strip("[]").split("/")[0]))


# -- etcd --------------------------------------------------------------------------------------

def test_etcd_cluster_is_healthy_over_mutual_tls():
    node = host("pg-1")
    tls = "--cacert /etc/etcd/tls/ca.crt --cert /etc/etcd/tls/server.crt --key /etc/etcd/tls/server.key"
    res = node.run(f"sudo etcdctl --endpoints {ETCD} {tls} endpoint health --cluster")
    assert res.rc == 0, res.stderr
    assert res.stdout.count("is healthy") + res.stderr.count("is healthy") == 3
    # Every member advertises its (bracketed IPv6) cluster address.
    for addr in NODES.values():
        assert verifier.url("https", addr, 2379) in res.stdout + res.stderr, res.stdout + res.stderr
    # No client certificate: refused.
    res = node.run(f"sudo etcdctl --endpoints {ETCD} --cacert /etc/etcd/tls/ca.crt "
                   "--dial-timeout 2s --command-timeout 3s endpoint health")
    assert res.rc != 0
    # Plain HTTP: not served.
    health = verifier.url("http", NODES["pg-1"], 2379, "/health")
    plain = f"import urllib.request; urllib.request.urlopen('{health}', timeout=3)"
    assert node.run(f"python3 -c \"{plain}\"").rc != 0
    # Not on the management network: with the client certificate, nothing answers there.
    mgmt = verifier.url("https", verifier.management_address("pg-1", SCENARIO), 2379)
    res = node.run(f"sudo etcdctl --endpoints {mgmt} {tls} --dial-timeout 2s --command-timeout 3s endpoint health")
    assert res.rc != 0


def test_etcd_config_says_existing_after_bootstrap():
    for node in NODES:
        env = host(node).check_output("sudo cat /etc/default/etcd")
        assert 'ETCD_INITIAL_CLUSTER_STATE="existing"' in env
        assert 'ETCD_CLIENT_CERT_AUTH="true"' in env and 'ETCD_PEER_CLIENT_CERT_AUTH="true"' in env


# -- replication and endpoints -------------------------------------------------------------------

def test_one_leader_two_streaming_replicas():
    assert wait(healthy, 60)
    lead = leader()
    res = local_sql(lead, "select count(*) from pg_stat_replication where state = 'streaming'", db="postgres")
    assert res.stdout.strip() == "2", res.stdout + res.stderr
    slots = local_sql(lead, "select count(*) from pg_replication_slots where active", db="postgres")
    assert slots.stdout.strip() == "2"
    # Patroni reports each member on its cluster address (an IPv6 literal here).
    hosts = {m["name"]: normal(m["host"]) for m in cluster()["members"]}
    assert hosts == NODES, hosts


def test_default_debian_cluster_is_absent():
    for node in NODES:
        h = host(node)
        assert not h.file("/etc/postgresql/15/main").exists
        assert "create_main_cluster = false" in h.file("/etc/postgresql-common/createcluster.conf").content_string


def test_write_through_endpoint_is_readable_on_both_replicas_within_a_second():
    res = psql(APP, "create table if not exists probe (id text primary key, at timestamptz default now())")
    assert res.rc == 0, res.stderr
    token = uuid.uuid4().hex
    res = psql(APP, f"insert into probe (id) values ('{token}')")
    assert res.rc == 0, res.stderr
    lead = leader()
    query = f"select 1 from probe where id = '{token}'"
    for node in NODES:
        if node == lead:
            continue
        # Polled on the replica itself with a one-second deadline; the deadline starts once
        # the SSH session is up, a few tens of milliseconds after the acknowledged commit.
        res = host(node).run(
            "cd /tmp; end=$(( $(date +%s%N) + 1000000000 )); "
            "while [ $(date +%s%N) -lt $end ]; do "
            f"[ \"$(sudo -u postgres psql -XAtqd appdb -c \"{query}\")\" = 1 ] && exit 0; sleep 0.02; done; exit 1")
        assert res.rc == 0, f"row not on {node} within a second"


def test_write_endpoint_is_the_leader_and_read_endpoint_a_replica():
    lead = leader()
    assert wait(lambda: endpoint_server(WRITE) == NODES[lead], 10)
    res = psql(APP, "select pg_is_in_recovery()", port=READ)
    assert res.stdout.strip() == "t", res.stderr


def test_settings_are_hardened():
    lead = leader()
    for name, want in (("password_encryption", "scram-sha-256"), ("ssl", "on"),
                       ("ssl_min_protocol_version", "TLSv1.2"), ("wal_log_hints", "on"), ("shared_buffers", "256MB")):
        assert local_sql(lead, f"show {name}", db="postgres").stdout.strip() == want, name


def test_pg_hba_has_no_trust_md5_or_password_and_remote_lines_are_hostssl():
    for node in NODES:
        rows = local_sql(node, "select type, coalesce(address, ''), auth_method from pg_hba_file_rules", db="postgres")
        assert rows.rc == 0 and rows.stdout.strip(), rows.stderr
        for line in rows.stdout.splitlines():
            kind, address, method = line.split("|")
            assert method not in ("trust", "md5", "password"), line
            if kind == "host":
                assert address.startswith("127."), line
            assert kind in ("local", "host", "hostssl"), line
        text = host(node).check_output("sudo cat /var/lib/postgresql/15/hardened-stack/pg_hba.conf")
        assert not re.search(r"^\s*[^#].*\b(trust|md5|password)\s*$", text, re.M)


def test_pg_hba_admits_cluster_addresses_only():
    """Remote lines name cluster addresses (the members' and the app host's), never a
    management address; the outsider's is absent."""
    cluster = {normal(verifier.cluster_address(n, SCENARIO)): n for n in verifier.platforms(SCENARIO)}
    management = {verifier.management_address(n, SCENARIO) for n in verifier.platforms(SCENARIO)}
    for node in NODES:
        rows = local_sql(node, "select coalesce(address, '') from pg_hba_file_rules where type = 'hostssl'",
                         db="postgres")
        assert rows.rc == 0, rows.stderr
        found = {normal(a) for a in rows.stdout.split() if a and a not in ("all", "samehost", "samenet")}
        assert found and found <= set(cluster), found
        assert not found & management, found
        assert {normal(NODES[n]) for n in NODES} | {normal(verifier.cluster_address(APP, SCENARIO))} <= found, found
        assert normal(verifier.cluster_address(OUTSIDER, SCENARIO)) not in found, found


def test_outsider_is_rejected():
    res = psql(OUTSIDER, "select 1", addr=NODES[leader()], port=5432, sslmode="require")
    assert res.rc != 0
    assert "no pg_hba.conf entry" in res.stderr, res.stderr
    # ... and named by its cluster address (it dialled over the cluster network).
    assert verifier.cluster_address(OUTSIDER, SCENARIO) in res.stderr, res.stderr


def test_services_do_not_answer_on_the_management_address():
    """PostgreSQL, Patroni and the endpoints listen on cluster addresses only."""
    lead = leader()
    res = psql(APP, "select 1", addr=verifier.management_address(lead, SCENARIO), port=5432)
    assert res.rc != 0 and "pg_hba" not in res.stderr, res.stderr
    res = psql(APP, "select 1", addr=verifier.management_address("pg-lb", SCENARIO), port=WRITE)
    assert res.rc != 0, res.stdout
    for node in NODES:
        for port in (5432, API, 2379, 2380):
            probe = f"timeout 4 bash -c 'echo > /dev/tcp/{verifier.management_address(node, SCENARIO)}/{port}'"
            assert host(APP).run(probe).rc != 0, (node, port)


def test_non_tls_remote_connection_is_rejected():
    res = psql(APP, "select 1", addr=NODES[leader()], port=5432, sslmode="disable")
    assert res.rc != 0
    assert "no pg_hba.conf entry" in res.stderr and "no encryption" in res.stderr, res.stderr


def test_app_host_connects_directly_over_tls_with_verification():
    res = psql(APP, "select ssl from pg_stat_ssl where pid = pg_backend_pid()", addr=NODES[leader()], port=5432)
    assert res.stdout.strip() == "t", res.stderr


def test_readonly_role_reads_but_cannot_write():
    assert psql(APP, "select count(*) from probe", user="app_ro").rc == 0
    res = psql(APP, "insert into probe (id) values ('nope')", user="app_ro")
    assert res.rc != 0 and "permission denied" in res.stderr


def test_patroni_api_unsafe_endpoints_need_a_client_certificate_and_a_password():
    ctx = ssl.create_default_context(cafile=CA)
    req = urllib.request.Request(verifier.url("https", NODES["pg-1"], API, "/config"), data=b'{"ttl": 30}',
                                 method="PATCH")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, context=ctx, timeout=3)
    assert exc.value.code == 403  # no client certificate
    # With the member's certificate but without the password: 401.
    script = (
        "import ssl, urllib.request, urllib.error\n"
        "ctx = ssl.create_default_context(cafile='/etc/patroni/tls/ca.crt')\n"
        "ctx.load_cert_chain('/etc/patroni/tls/server.crt', '/etc/patroni/tls/server.key')\n"
        f"req = urllib.request.Request('{verifier.url('https', NODES['pg-1'], API, '/config')}', data=b'{{}}', "
        "method='PATCH')\n"
        "try:\n"
        "    urllib.request.urlopen(req, context=ctx, timeout=3)\n"
        "    print(200)\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n")
    res = host("pg-1").run("sudo python3 -c " + shlex.quote(script))
    assert res.stdout.strip() == "401", res.stdout + res.stderr


def test_patroni_cluster_info_module_reports_members():
    rc, out = playbook("info.yml")
    assert rc == 0, out
    assert "healthy=True" in out and "members=3" in out, out


# -- switchover and leader loss ----------------------------------------------------------------

def test_switchover_with_the_module_moves_leader_and_write_endpoint_follows():
    before = leader()
    rc, out = playbook("switchover.yml")
    assert rc == 0, out
    after = wait(lambda: (leader() if leader() != before else None), 30)
    assert after and after != before
    assert wait(lambda: endpoint_server(WRITE) == NODES[after], 15), "write endpoint did not follow"
    assert wait(healthy, 60), cluster()
    old = next(m for m in cluster()["members"] if m["name"] == before)
    assert old["role"] != "leader" and old["state"] in ("running", "streaming")


def test_leader_killed_new_leader_serves_writes_old_rejoins():
    before = leader()
    subprocess.run(["docker", "kill", before], check=True, capture_output=True)
    try:
        after = wait(lambda: (leader() if leader() not in (None, before) else None), 60)
        assert after and after != before
        token = uuid.uuid4().hex
        res = wait(lambda: psql(APP, f"insert into probe (id) values ('{token}')").rc == 0, 30)
        assert res, "write endpoint does not accept writes after the leader was killed"
    finally:
        subprocess.run(["docker", "start", before], check=True, capture_output=True)
    assert wait(healthy, 180), cluster()
    old = next(m for m in cluster()["members"] if m["name"] == before)
    assert old["role"] != "leader"
    # The row written after the failover reached the old leader too (it follows the new timeline).
    assert wait(lambda: local_sql(before, f"select 1 from probe where id = '{token}'").stdout.strip() == "1", 30)


# -- reruns --------------------------------------------------------------------------------------

def test_rerun_after_failover_changes_nothing_and_keeps_the_leader():
    lead = leader()
    rc, out = playbook("converge.yml")
    assert rc == 0, out[-3000:]
    rows = recap(out)
    assert rows and all(r["changed"] == 0 for r in rows.values()), {h: r["changed"] for h, r in rows.items()}
    assert leader() == lead


def test_check_diff_run_changes_nothing():
    rc, out = playbook("converge.yml", "--check", "--diff")
    assert rc == 0, out[-3000:]
    rows = recap(out)
    assert rows and all(r["changed"] == 0 for r in rows.values()), {h: r["changed"] for h, r in rows.items()}


# -- bad input: refused before anything changes --------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    ({"postgresql_patroni_ttl": 10, "postgresql_patroni_loop_wait": 5, "postgresql_patroni_retry_timeout": 5},
     "loop_wait + 2 x retry_timeout must not exceed ttl"),
    ({"postgresql_parameters": {"shared_bufers": "1GB"}},
     "unknown PostgreSQL 15 parameter(s) in postgresql_parameters: shared_bufers"),
    ({"postgresql_generate_passwords": False}, "postgresql_generate_passwords is false"),
    ({"postgresql_synchronous_mode": True, "postgresql_synchronous_mode_strict": True, "postgresql_group": "solo"},
     "synchronous_mode_strict needs synchronous_mode and at least 2 members"),
    ({"postgresql_watchdog_mode": "sometimes"}, "postgresql_watchdog_mode"),
])
def test_bad_input_stops_before_any_change(tmp_path, extra, message):
    solo = tmp_path / "solo.yml"
    solo.write_text("solo:\n  hosts:\n    pg-1:\n")
    rc, out = playbook("-i", str(solo), "converge.yml", "-e", json.dumps(extra))
    assert rc != 0
    assert message in " ".join(out.split()), out[-3000:]
    rows = recap(out)
    assert all(r["changed"] == 0 for r in rows.values()), rows


def test_even_etcd_count_stops_before_any_change(tmp_path):
    extra = tmp_path / "etcd4.yml"
    extra.write_text("etcd:\n  hosts:\n    pg-lb:\n")
    rc, out = playbook("-i", str(extra), "converge.yml")
    assert rc != 0
    assert "must have an odd number of members" in " ".join(out.split()), out[-3000:]
    assert all(r["changed"] == 0 for r in recap(out).values())
