"""Behaviour of the redis scenario: replication, Sentinel, ACLs, failover, reruns, bad input.

Tests run in file order and share the cluster: the failover tests move the master, the rerun
tests then prove that converge leaves the new topology alone.
"""

import functools
import json
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


# -- changed passwords (issue 16): a rerun with new vault values -----------------------------------

# Vault-style values (spaces, quotes, $, #, \, non-ASCII); Sentinel's must be one bare word.
NEW_PASSWORDS = {
    "admin": "adm new 'pw' $HOME #1 \\",
    "app": "app new \"pw\" %s #2 ü",
    "replication": "repl new pw \\ \"q\" #3",
    "sentinel": "Sent$new#4!%\\x",
    "exporter": "exp new pw  ",
}
SERVER_USERS = ("admin", "app", "replication", "sentinel", "exporter")
SENTINEL_USERS = ("sentinel", "admin", "app", "exporter")


def login(name, user, password, port=6379, binary="redis-cli"):
    """What a fresh login as ``user`` gets: PONG, or redis-cli's AUTH error (WRONGPASS ...)."""
    res = host(name).run(f"REDISCLI_AUTH={shlex.quote(password)} {binary} -h 127.0.0.1 -p {port} --user {user} "
                         "--no-auth-warning PING")
    return (res.stdout + res.stderr).strip()


def as_admin(name, password, *args, port=6379):
    return host(name).run(f"REDISCLI_AUTH={shlex.quote(password)} redis-cli -h 127.0.0.1 -p {port} --user admin "
                          "--no-auth-warning " + " ".join(args)).stdout.strip()


def fields(flat):
    lines = flat.splitlines()
    return dict(zip(lines[::2], lines[1::2], strict=False))


def main_pids():
    """MainPID of every server and Sentinel: unchanged = nothing restarted."""
    return {(n, unit): host(n).run(f"systemctl show -p MainPID --value {unit}").stdout.strip()
            for n in NODES for unit in ("redis-server", "redis-sentinel")}


def sentinel_healthy(name, admin_password):
    """This Sentinel sees the master up, both replicas up, the two other Sentinels up."""
    master = fields(as_admin(name, admin_password, "SENTINEL", "MASTER", "main", port=26379))
    replicas = as_admin(name, admin_password, "SENTINEL", "REPLICAS", "main", port=26379)
    peers = as_admin(name, admin_password, "SENTINEL", "SENTINELS", "main", port=26379)
    lines = (replicas + "\n" + peers).splitlines()
    flags = [lines[i + 1] for i in range(len(lines) - 1) if lines[i] == "flags"]
    return (master.get("flags") == "master" and master.get("num-slaves") == "2"
            and master.get("num-other-sentinels") == "2" and len(flags) == 4
            and not [f for f in flags if "down" in f or "disconnected" in f])


def test_changed_passwords_converge_without_wrongpass_and_old_ones_are_refused(tmp_path):
    old = {u: secret(u) for u in SERVER_USERS}
    old_valkey = {u: secret(u, cluster="valkey") for u in SERVER_USERS}
    master = node_of(master_ip())
    pids = main_pids()
    links = as_admin(master, old["admin"], "CLIENT", "LIST", "TYPE", "replica")
    link_ids = sorted(line.split()[0] for line in links.splitlines())
    assert len(link_ids) == 2, links
    # a Sentinel event subscriber for the whole run (logged in before: it stays connected)
    watcher = next(n for n in NODES if n != master)
    host(watcher).run(f"REDISCLI_AUTH={shlex.quote(old['admin'])} setsid nohup timeout 900 redis-cli -h 127.0.0.1 "
                      "-p 26379 --user admin --no-auth-warning psubscribe '+sdown' '+odown' '+switch-master' "
                      "> /tmp/hs-sentinel-events 2>&1 < /dev/null &")
    extra = tmp_path / "vault.json"  # a file: the values stay out of the process list
    extra.write_text(json.dumps({f"redis_{u}_password": v for u, v in NEW_PASSWORDS.items()}))

    rc, out = playbook("converge.yml", "-e", f"@{extra}")
    assert rc == 0, out[-3000:]
    assert "WRONGPASS" not in out and "NOAUTH" not in out, out[-3000:]
    # nothing restarted, no replication link cut, the master stayed
    assert main_pids() == pids, "a password change restarted something"
    links = as_admin(master, NEW_PASSWORDS["admin"], "CLIENT", "LIST", "TYPE", "replica")
    assert sorted(line.split()[0] for line in links.splitlines()) == link_ids, links
    assert master_ip_as(NEW_PASSWORDS["admin"]) == NODES[master]
    # every old password refused, every new one accepted, on every server and Sentinel
    for name in NODES:
        for user in SERVER_USERS:
            assert "WRONGPASS" in login(name, user, old[user]), (name, user)
            assert login(name, user, NEW_PASSWORDS[user]) == "PONG", (name, user)
        for user in SENTINEL_USERS:
            assert "WRONGPASS" in login(name, user, old[user], port=26379), (name, user, "Sentinel")
            assert login(name, user, NEW_PASSWORDS[user], port=26379) == "PONG", (name, user, "Sentinel")
    for user in SERVER_USERS:  # the Valkey set rotated the same way
        assert "WRONGPASS" in login(VALKEY, user, old_valkey[user], binary="valkey-cli"), user
        assert login(VALKEY, user, NEW_PASSWORDS[user], binary="valkey-cli") == "PONG", user
    # no old password left in any file, Sentinel's own rewrite included; the replicas'
    # masterauth is the new one (CONFIG REWRITE wrote it to the main file)
    for name in NODES:
        h = host(name)
        for path in ("/etc/redis/sentinel.conf", "/etc/redis/redis.conf", "/etc/redis/hardened-stack.conf"):
            text = h.file(path).content_string
            assert not [u for u in SERVER_USERS if old[u] in text], (name, path)
        conf = h.file("/etc/redis/sentinel.conf").content_string
        assert f"sentinel auth-pass main {NEW_PASSWORDS['sentinel']}\n" in conf
        assert f"sentinel sentinel-pass {NEW_PASSWORDS['sentinel']}\n" in conf
        assert as_admin(name, NEW_PASSWORDS["admin"], "CONFIG", "GET", "masterauth").splitlines()[1] \
            == NEW_PASSWORDS["replication"]
        assert h.file("/etc/hardened-stack/redis/redis-admin").mode == 0o600
    # Sentinel sees the master, its replicas and the other Sentinels, also after a restart
    assert wait(lambda: all(sentinel_healthy(n, NEW_PASSWORDS["admin"]) for n in NODES), timeout=30)
    restarted = next(n for n in NODES if n not in (master, watcher))
    host(restarted).run("systemctl restart redis-sentinel")
    time.sleep(12)  # longer than down-after-milliseconds (5000): a refused login would show by now
    pids = main_pids()
    assert wait(lambda: all(sentinel_healthy(n, NEW_PASSWORDS["admin"]) for n in NODES), timeout=30)
    for name in NODES:
        out_ck = as_admin(name, NEW_PASSWORDS["admin"], "SENTINEL", "CKQUORUM", "main", port=26379)
        assert out_ck.startswith("OK 3 usable Sentinels"), (name, out_ck)
    host(watcher).run("pkill -f 'psubscribe [+]sdown' || true")
    events = host(watcher).file("/tmp/hs-sentinel-events").content_string
    assert events.startswith("psubscribe"), events  # the watcher was subscribed all along
    # no event about the master or a replica (+sdown master ..., +sdown slave ..., +switch-master)
    assert not [e for e in events.splitlines() if e.startswith(("master ", "slave ", "main "))], events

    # the same values again: nothing changes
    rc, out = playbook("converge.yml", "-e", f"@{extra}")
    assert rc == 0, out[-3000:]
    rows = recap(out)
    assert rows and all(r.get("changed", -1) == 0 for r in rows.values()), changed_tasks(out)

    # back to the generated values (the secrets directory's files): converges the same way
    rc, out = playbook("converge.yml")
    assert rc == 0, out[-3000:]
    assert "WRONGPASS" not in out, out[-3000:]
    for name in NODES:
        assert login(name, "app", old["app"]) == "PONG" and "WRONGPASS" in login(name, "app", NEW_PASSWORDS["app"])
    assert wait(lambda: all(sentinel_healthy(n, old["admin"]) for n in NODES), timeout=30)
    assert main_pids() == pids, "going back to the generated passwords restarted something"
    assert master_ip() == NODES[master]


def master_ip_as(admin_password, name="redis-1"):
    return as_admin(name, admin_password, "SENTINEL", "get-master-addr-by-name", "main", port=26379).splitlines()[0]
