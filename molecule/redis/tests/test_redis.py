"""Behaviour of the redis scenario: replication, Sentinel, ACLs, failover, reruns, bad input.

Tests run in file order and share the cluster: the failover tests move the master, the rerun
tests then prove that converge leaves the new topology alone.
"""

import functools
import os
import shlex
import sys
import time

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
sys.path.insert(0, os.path.join(PROJECT, "molecule", "_shared"))
import verifier  # noqa: E402  (molecule/_shared/verifier.py)
# Cluster addresses (where Redis and Sentinel listen, what Sentinel reports), from molecule.yml.
NODES = verifier.cluster_addresses_of(verifier.group("redis", SCENARIO), SCENARIO)
CLIENT = "redis-client"
VALKEY = "redis-valkey"


def host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


def secret(user, cluster="redis"):
    """ACL user ``user``'s password in replication set ``cluster`` (the set's group: the role's
    redis_cluster_name defaults to redis_group), as the set's hosts get it."""
    on = verifier.group(cluster, SCENARIO)[0]
    return verifier.secret("redis", on=on, vault=f"redis_{user}_password", scenario=SCENARIO, user=user)


def cli(name, *args, user="admin", cluster="redis", addr="127.0.0.1", port=6379, binary="redis-cli"):
    auth = f"REDISCLI_AUTH={shlex.quote(secret(user, cluster))} " if user else ""
    userarg = f"--user {user} " if user else ""
    cmd = f"{auth}{binary} -h {addr} -p {port} {userarg}--no-auth-warning " + " ".join(args)
    return host(name).run(cmd).stdout.strip()


def sentinel(name, *args, **kw):
    return cli(name, "SENTINEL", *args, user="sentinel", port=26379, **kw)


def master_ip(name="redis-1"):
    return sentinel(name, "get-master-addr-by-name", "main").splitlines()[0]


def node_of(ip):
    return next(n for n, a in NODES.items() if a == ip)


wait = verifier.wait


playbook = functools.partial(verifier.playbook, cwd=SCENARIO, timeout=900)
recap = verifier.recap


def changed_tasks(out):
    """'TASK [...] host' for every changed result (to say what a rerun changed)."""
    found, task = [], None
    for line in out.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed: ["):
            found.append(f"{task} {line}")
    return found


def test_services_and_listeners():
    for name, ip in NODES.items():
        h = host(name)
        assert h.service("redis-server").is_running
        assert h.service("redis-server").is_enabled
        assert h.service("redis-sentinel").is_running
        assert h.socket(verifier.socket_url(ip, 6379)).is_listening
        assert h.socket("tcp://127.0.0.1:6379").is_listening
        assert not h.socket("tcp://0.0.0.0:6379").is_listening
        assert h.socket(verifier.socket_url(ip, 26379)).is_listening
        # Neither listens on the management address, nor answers a client there.
        mgmt = verifier.management_address(name, SCENARIO)
        for port in (6379, 26379):
            assert not h.socket(verifier.socket_url(mgmt, port)).is_listening
            assert host(CLIENT).run(f"timeout 4 bash -c 'echo > /dev/tcp/{mgmt}/{port}'").rc != 0, (name, port)
        # container-only relaxation present, sandboxing kept
        dropin = h.file("/etc/systemd/system/redis-server.service.d/50-hardened-stack.conf").content_string
        assert "PrivateUsers=false" in dropin and "ProtectSystem=strict" in dropin


def test_one_master_two_replicas_and_replicaof_not_templated():
    m = master_ip()
    roles = {n: cli(n, "ROLE").splitlines()[0] for n in NODES}
    assert roles[node_of(m)] == "master"
    assert sorted(roles.values()) == ["master", "slave", "slave"]
    for name in NODES:
        assert host(name).run("grep -c '^replicaof' /etc/redis/hardened-stack.conf").stdout.strip() == "0"


def test_write_on_master_readable_on_replicas():
    m = node_of(master_ip())
    value = str(time.time())
    assert cli(m, "SET", "hs:probe", value, user="app") == "OK"
    assert cli(m, "WAIT", "2", "5000", user="app") == "2"
    for name in NODES:
        assert wait(lambda n=name: cli(n, "GET", "hs:probe", user="app") == value, timeout=10)


def test_ckquorum_on_every_sentinel():
    for name in NODES:
        out = sentinel(name, "ckquorum", "main")
        assert out.startswith("OK 3 usable Sentinels"), out


def test_sentinels_know_the_master_and_each_other_by_cluster_address():
    m = master_ip()
    assert m in NODES.values(), m
    for name in NODES:
        assert sentinel(name, "get-master-addr-by-name", "main").splitlines()[0] == m
        peers = sentinel(name, "sentinels", "main").splitlines()
        ips = {peers[i + 1] for i in range(len(peers) - 1) if peers[i] == "ip"}
        assert ips == set(NODES.values()) - {NODES[name]}, (name, ips)
        replicas = sentinel(name, "replicas", "main").splitlines()
        ips = {replicas[i + 1] for i in range(len(replicas) - 1) if replicas[i] == "ip"}
        assert ips == set(NODES.values()) - {m}, (name, ips)


def test_sentinel_tunables():
    info = sentinel("redis-2", "master", "main").splitlines()
    fields = dict(zip(info[::2], info[1::2], strict=True))
    assert fields["down-after-milliseconds"] == "5000"
    assert fields["failover-timeout"] == "60000"
    assert fields["parallel-syncs"] == "1"
    assert fields["quorum"] == "2"


def test_anonymous_client_refused_and_app_user_limited():
    ip = master_ip()
    assert "NOAUTH" in cli(CLIENT, "PING", user=None, addr=ip)
    assert "NOAUTH" in cli(CLIENT, "SENTINEL", "masters", user=None, addr=ip, port=26379)
    assert cli(CLIENT, "PING", user="app", addr=ip) == "PONG"
    for cmd in ("FLUSHALL", "FLUSHDB", "CONFIG GET maxmemory", "KEYS '*'", "SHUTDOWN", "MODULE LIST"):
        assert "NOPERM" in cli(CLIENT, cmd, user="app", addr=ip), cmd
    # DEBUG is also refused by enable-debug-command; the ACL must refuse it on its own
    assert "no permissions" in cli(node_of(ip), "ACL DRYRUN app DEBUG SLEEP 0")
    # the application finds the master through Sentinel but cannot fail it over
    assert cli(CLIENT, "SENTINEL get-master-addr-by-name main", user="app", addr=ip, port=26379).startswith(ip)
    assert "NOPERM" in cli(CLIENT, "SENTINEL failover main", user="app", addr=ip, port=26379)
    # the exporter reads, never writes
    assert "redis_version" in cli(CLIENT, "INFO server", user="exporter", addr=ip)
    assert "NOPERM" in cli(CLIENT, "SET x 1", user="exporter", addr=ip)


def test_runtime_settings():
    m = node_of(master_ip())
    assert cli(m, "CONFIG GET maxmemory-policy").splitlines()[1] == "allkeys-lru"
    assert cli(m, "CONFIG GET appendonly").splitlines()[1] == "yes"
    assert cli(m, "CONFIG GET appendfsync").splitlines()[1] == "everysec"
    assert cli(m, "CONFIG GET min-replicas-to-write").splitlines()[1] == "1"
    assert cli(m, "CONFIG GET protected-mode").splitlines()[1] == "yes"
    assert cli(m, "CONFIG GET maxmemory").splitlines()[1] == str(128 * 1024 * 1024)
    assert cli(m, "CONFIG GET save").splitlines()[1] == "3600 1"


def test_failover_through_the_module():
    before = master_ip()
    rc, out = playbook("failover.yml")
    assert rc == 0, out[-3000:]
    after = wait(lambda: master_ip() if master_ip() != before else None, timeout=60)
    assert after and after != before
    # the old master follows the new one
    assert wait(lambda: "master_link_status:up" in cli(node_of(before), "INFO replication")
                and f"master_host:{after}" in cli(node_of(before), "INFO replication"), timeout=60)


def test_master_stopped_new_master_elected_old_rejoins():
    old = master_ip()
    h = host(node_of(old))
    h.run("systemctl stop redis-server")
    try:
        new = wait(lambda: master_ip("redis-1" if node_of(old) != "redis-1" else "redis-2") != old, timeout=90)
        assert new, "no new master within 90 s"
    finally:
        h.run("systemctl start redis-server")
    new = master_ip()
    assert new != old
    assert wait(lambda: f"master_host:{new}" in cli(node_of(old), "INFO replication")
                and "master_link_status:up" in cli(node_of(old), "INFO replication"), timeout=90)
    assert wait(lambda: all(sentinel(n, "ckquorum", "main").startswith("OK") for n in NODES), timeout=30)
    # what the restarted node read back from its rewritten configuration file
    assert cli(node_of(old), "CONFIG GET save").splitlines()[1] == "3600 1"
    pytest.current_master = new


def test_rerun_after_failover_changes_nothing():
    before = master_ip()
    rc, out = playbook("converge.yml")
    assert rc == 0, out[-3000:]
    rows = recap(out)
    assert rows and all(r.get("changed", -1) == 0 for r in rows.values()), changed_tasks(out)
    assert master_ip() == before
    assert getattr(pytest, "current_master", before) == before


def test_check_diff_changes_nothing():
    rc, out = playbook("converge.yml", "--check", "--diff")
    assert rc == 0, out[-3000:]
    rows = recap(out)
    assert rows and all(r.get("changed", -1) == 0 for r in rows.values()), changed_tasks(out)


def test_valkey_on_debian13():
    h = host(VALKEY)
    assert h.system_info.codename == "trixie"
    assert h.service("valkey-server").is_running
    assert h.service("valkey-sentinel").is_running
    vk = dict(cluster="valkey", binary="valkey-cli")
    assert "valkey_version:8" in cli(VALKEY, "INFO server", **vk)
    assert cli(VALKEY, "SET hs:v 1", user="app", **vk) == "OK"
    assert "NOPERM" in cli(VALKEY, "FLUSHALL", user="app", **vk)
    assert "NOAUTH" in cli(VALKEY, "PING", user=None, addr=verifier.cluster_address(VALKEY, SCENARIO), **vk)
    out = cli(VALKEY, "SENTINEL ckquorum main", user="sentinel", port=26379, **vk)
    assert out.startswith("OK 1 usable Sentinels"), out


@pytest.mark.parametrize("extra, limit, message", [
    (["-e", "redis_sentinel_quorum=4"], "redis", "cannot be larger than the number of Sentinels"),
    (["-e", "redis_sentinel_allow_fewer_than_three=false"], VALKEY, "at least three Sentinels"),
    (["-e", "redis_generate_passwords=false"], "redis", "redis_generate_passwords is false"),
    (["-e", "redis_maxmemory_policy=most-recent"], "redis", "redis_maxmemory_policy"),
])
def test_bad_input_stops_before_any_change(extra, limit, message):
    rc, out = playbook("converge.yml", "--limit", limit, *extra)
    assert rc != 0
    assert message in out, out[-3000:]
    rows = recap(out)
    assert rows and all(r.get("changed", -1) == 0 for r in rows.values()), out[-3000:]
