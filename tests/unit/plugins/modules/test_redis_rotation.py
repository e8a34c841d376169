"""Password rotation of the redis role against real redis-server and redis-sentinel on loopback.

A master, a replica and two Sentinels start from the role's own templates (users.acl.j2,
sentinel-users.acl.j2, hardened-stack.conf.j2, redis.conf.j2, sentinel.conf.j2), one directory
per "host". The three phases then run as the role's task files run them, through the same
modules (redis_acl, redis_config, redis_sentinel executed as Ansible runs a module) and the same
templates:

- accept: each ACL file is rendered with the new password hashes plus the hashes the module
  reads from the deployed file; redis_acl applies it with ACL SETUSER (admin login: the new
  password first, the old one as fallback). Both passwords of every user are accepted and
  nobody is disconnected (the replica's link keeps its client id, an application connection
  and a Sentinel event subscriber stay open).
- switch: redis_config sets masterauth (the replica's link keeps its id), redis_sentinel sets
  auth-pass and sentinel-pass compared with sentinel.conf; no Sentinel publishes +sdown, and a
  restarted Sentinel sees the master up.
- withdraw: only the new hashes; every old password gets WRONGPASS, forced reconnections (the
  replica, Sentinel at the master, Sentinel at its peer) succeed with the new passwords alone.

Skipped when the binaries are absent (``apt-get install redis-server redis-sentinel``;
tests/run.py installs them). The servers run and are reached as tests/unit/loopback.py has it
(the collection's own RESP client).
"""

import hashlib
import json
import os
import subprocess
import sys

import jinja2
import pytest
from loopback import SENTINEL, SERVER, free_port, needs_redis, redis_client, until

from ansible.plugins.filter.core import FilterModule as CoreFilters
from ansible_collections.hardened.stack.plugins.filter import encode as encode_filters
from ansible_collections.hardened.stack.plugins.module_utils import redis_auth
from ansible_collections.hardened.stack.plugins.module_utils.resp import (
    RespConnectionError,
    RespError,
    pairs_to_dict,
    parse_info,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
DOWN_AFTER_MS = 1500

pytestmark = needs_redis

USERS = {"redis_admin_user": "admin", "redis_app_user": "app", "redis_replication_user": "replication",
         "redis_sentinel_user": "sentinel", "redis_exporter_user": "exporter"}
SERVER_USERS = ("admin", "app", "replication", "sentinel", "exporter")
SENTINEL_USERS = ("sentinel", "admin", "app", "exporter")
OLD = {"admin": "old admin pw", "app": 'old "app" pw', "replication": "old repl\\pw $HOME",
       "sentinel": "oldSentinel#1", "exporter": "old exporter's pw"}
# vault-style: spaces, quotes, $, #, backslash; Sentinel's is one bare word (sentinel.conf)
NEW = {"admin": "new admin # pw", "app": "new 'app' $pw", "replication": 'new "repl" \\ pw',
       "sentinel": "new$Sentinel#%!", "exporter": "new exporter pw  "}


# --- rendering the role's templates ------------------------------------------------------------

def _env():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROOT, "roles", "redis", "templates")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True,
                             autoescape=False)  # noqa: S701 (configuration files, not HTML)
    env.filters.update(CoreFilters().filters())
    for name, func in encode_filters.FilterModule().filters().items():
        env.filters["hardened.stack." + name] = func
    return env


ENV = _env()


def render(template, **variables):
    base = dict(USERS, ansible_managed="Ansible managed", redis_app_acl="~* &* +@all -@dangerous -@admin +info +role",
                redis_exporter_acl="-@all +ping +info +role", redis_sentinel_app_acl="-@all +auth +hello +ping "
                "+sentinel|get-master-addr-by-name +subscribe +psubscribe &*")
    base.update(variables)
    return ENV.get_template(template).render(**base)


def write_if_changed(path, text):
    """What ansible.builtin.template reports: True when the file changed."""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return False
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return True


def auth(port, user, password):
    """AUTH on a new connection: "OK", or the server's error (``WRONGPASS ...``)."""
    with redis_client(port) as c:
        try:
            return c.execute("AUTH", user, password)
        except RespError as exc:
            return str(exc)


# --- running the modules as Ansible does ----------------------------------------------------

def module(name, tmp, **args):
    path = os.path.join(tmp, f"args-{name}.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, fh)
    res = subprocess.run([sys.executable, os.path.join(ROOT, "plugins", "modules", f"{name}.py"), path],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=COLLECTIONS),
                         timeout=120, check=False)
    out = json.loads(res.stdout)
    for secret in list(OLD.values()) + list(NEW.values()):
        assert secret not in res.stdout, f"{name} printed a password"
    return out


# --- the set ---------------------------------------------------------------------------------

class Host:
    """One 'host': its directory, its server (and its Sentinel)."""

    def __init__(self, base, name, procs):
        self.name = name
        self.procs = procs
        self.dir = os.path.join(base, name)
        os.makedirs(os.path.join(self.dir, "data"))
        self.port = free_port()
        self.sport = free_port()
        self.acl = os.path.join(self.dir, "users.acl")
        self.sacl = os.path.join(self.dir, "sentinel-users.acl")
        self.conf = os.path.join(self.dir, "redis.conf")
        self.base = os.path.join(self.dir, "hardened-stack.conf")
        self.sconf = os.path.join(self.dir, "sentinel.conf")
        self.kept = OLD["admin"]   # the role's root-only file on the host
        self.server = self.sentinel = None

    def e(self):
        return {"server_pid": f"{self.dir}/server.pid", "sentinel_pid": f"{self.dir}/sentinel.pid",
                "log_dir": self.dir, "server_package": "server", "sentinel_package": "sentinel",
                "data_dir": f"{self.dir}/data"}

    def render_base(self, secrets):
        return render("hardened-stack.conf.j2", redis_engine="redis", _redis_main_conf=self.conf,
                      _redis_address="127.0.0.2", redis_tls=False, _redis_port=self.port, _redis_e=self.e(),
                      redis_loglevel="notice", _redis_acl_file=self.acl, redis_maxmemory_mb=16,
                      redis_maxmemory_policy="noeviction", redis_appendonly=False, redis_appendfsync="everysec",
                      _redis_auth_keys=["masteruser", "masterauth"], _redis_secrets=secrets,
                      redis_min_replicas_to_write=0, redis_min_replicas_max_lag=10, redis_replica_announce_ip="")

    def bootstrap(self, secrets, master_port):
        write_if_changed(self.acl, render("users.acl.j2", _redis_secrets=secrets))
        write_if_changed(self.sacl, render("sentinel-users.acl.j2", _redis_secrets=secrets))
        write_if_changed(self.base, self.render_base(secrets))
        extra = 'save ""\nrepl-diskless-sync-delay 0\n'
        if master_port != self.port:
            extra += f"replicaof 127.0.0.1 {master_port}\n"
        write_if_changed(self.conf, render("redis.conf.j2", redis_engine="redis", _redis_main_conf=self.conf,
                                           _redis_base_conf=self.base) + extra)
        write_if_changed(self.sconf, render(
            "sentinel.conf.j2", _redis_sentinel_marker="# hardened.stack: sentinel bootstrap",
            _redis_address="127.0.0.2", redis_tls=False, _redis_sentinel_port=self.sport, _redis_e=self.e(),
            _redis_sentinel_acl_file=self.sacl, _redis_secrets=secrets, redis_sentinel_announce_ip="",
            redis_master_name="main", _redis_master_address="127.0.0.1", _redis_port=master_port,
            _redis_quorum=1, redis_sentinel_down_after_ms=DOWN_AFTER_MS, redis_sentinel_failover_timeout_ms=180000,
            redis_sentinel_parallel_syncs=1))

    def start_server(self):
        self.server = self.procs.serve(self.port, SERVER, self.conf)

    def start_sentinel(self):
        self.sentinel = self.procs.serve(self.sport, SENTINEL, self.sconf)

    def stop_sentinel(self):
        self.procs.stop(self.sentinel)

    def login(self):
        return {"login_user": "admin", "login_passwords": [NEW["admin"], self.kept]}

    # the phases, as roles/redis/tasks/secrets_*.yml run them on one host
    def accept(self, tmp, secrets, check=False):
        changed = {}
        for path, tmpl, var, port in ((self.acl, "users.acl.j2", "_redis_acl_accepted", self.port),
                                      (self.sacl, "sentinel-users.acl.j2", "_redis_sentinel_acl_accepted", self.sport)):
            deployed = module("redis_acl", tmp, path=path, sync=False)
            assert deployed["exists"] and not deployed.get("failed"), deployed
            written = write_if_changed(path, render(tmpl, _redis_secrets=secrets, **{var: deployed["passwords"]}))
            live = module("redis_acl", tmp, path=path, force=written, login_port=port, _ansible_check_mode=check,
                          **self.login())
            assert live.get("managed") and not live.get("failed"), live
            changed[tmpl] = written or live["changed"]
            changed[tmpl + " live"] = live
        if changed["users.acl.j2 live"]["first_login_accepted"] and changed["sentinel-users.acl.j2 live"][
                "first_login_accepted"]:
            self.kept = secrets["admin"]
        return changed

    def switch(self, tmp, secrets):
        written = write_if_changed(self.base, self.render_base(secrets))
        server = module("redis_config", tmp, login_port=self.port, **self.login(),
                        settings={"masteruser": "replication", "masterauth": secrets["replication"]})
        sentinel = module("redis_sentinel", tmp, login_port=self.sport, master_name="main", action="set",
                          config_file=self.sconf, settings={"auth-user": "sentinel", "auth-pass": secrets["sentinel"]},
                          sentinel_config={"sentinel-user": "sentinel", "sentinel-pass": secrets["sentinel"]},
                          **self.login())
        assert not server.get("failed") and not sentinel.get("failed"), (server, sentinel)
        return written, server, sentinel

    def withdraw(self, tmp, secrets):
        changed = []
        for path, tmpl, port in ((self.acl, "users.acl.j2", self.port),
                                 (self.sacl, "sentinel-users.acl.j2", self.sport)):
            written = write_if_changed(path, render(tmpl, _redis_secrets=secrets))
            live = module("redis_acl", tmp, path=path, force=written, login_port=port, **self.login())
            assert live.get("managed") and not live.get("failed"), live
            changed.append(written or live["changed"])
        return changed


def replica_ids(master):
    """Client ids of the replication links at the master (a new id = the link was cut)."""
    with redis_client(master.port, "admin", master.kept) as c:
        return sorted(line.split()[0] for line in c.execute("CLIENT", "LIST", "TYPE", "replica").splitlines())


def info(host, section="replication"):
    with redis_client(host.port, "admin", host.kept) as c:
        return parse_info(c.execute("INFO", section))


def sentinel_master(host):
    with redis_client(host.sport, "admin", host.kept) as c:
        return pairs_to_dict(c.execute("SENTINEL", "MASTER", "main"))


def sentinel_peers(host):
    with redis_client(host.sport, "admin", host.kept) as c:
        return [pairs_to_dict(e) for e in c.execute("SENTINEL", "SENTINELS", "main")]


def masterauth_values(path):
    """Every masterauth value in a configuration file, read as redis-server reads it."""
    with open(path, encoding="utf-8") as fh:
        words = [redis_auth.split_args(line) for line in fh if line.strip() and not line.startswith("#")]
    return [w[1] for w in words if w and w[0] == "masterauth"]


def subscriber(host):
    """A connection to the host's Sentinel that receives every event (``messages``)."""
    c = redis_client(host.sport, "admin", host.kept)
    c.execute("PSUBSCRIBE", "*")
    return c


def sdown_events(messages):
    return [m for m in messages if isinstance(m, list) and len(m) == 4 and m[2] in ("+sdown", "+odown")]


@pytest.fixture(scope="module", name="stack")
def fixture_stack(tmp_path_factory, module_procs):
    base = str(tmp_path_factory.mktemp("rotation"))
    master, replica = Host(base, "master", module_procs), Host(base, "replica", module_procs)
    for h in (master, replica):
        h.bootstrap(OLD, master.port)
    for h in (master, replica):
        h.start_server()
    for h in (master, replica):
        h.start_sentinel()
    assert until(lambda: info(replica).get("master_link_status") == "up"), info(replica)
    # both Sentinels know the replica and each other before anything changes
    assert until(lambda: all(int(sentinel_master(h)["num-other-sentinels"]) == 1
                             and int(sentinel_master(h)["num-slaves"]) == 1 for h in (master, replica)), timeout=30)
    return {"master": master, "replica": replica, "hosts": (master, replica), "tmp": base}


# --- the tests (in file order: they share the set) ---------------------------------------------

def test_templates_render_accepted_hashes():
    new_app = hashlib.sha256(NEW["app"].encode()).hexdigest()
    old_app = hashlib.sha256(OLD["app"].encode()).hexdigest()
    out = render("users.acl.j2", _redis_secrets=NEW, _redis_acl_accepted={"app": [old_app, new_app, old_app]})
    line = next(x for x in out.splitlines() if x.startswith("user app "))
    assert line.split()[3:5] == [f"#{new_app}", f"#{old_app}"] and line.count("#") == 2
    assert redis_auth.acl_file_passwords(out)["app"] == [new_app, old_app]
    assert redis_auth.acl_file_passwords(out)["admin"] == [hashlib.sha256(NEW["admin"].encode()).hexdigest()]
    # without accepted hashes: the new one only (what secrets_withdraw.yml writes)
    assert redis_auth.acl_file_passwords(render("users.acl.j2", _redis_secrets=NEW))["app"] == [new_app]


def test_baseline(stack):
    for h in stack["hosts"]:
        for user in SERVER_USERS:
            assert auth(h.port, user, OLD[user]) == "OK", (h.name, user)
        for user in SENTINEL_USERS:
            assert auth(h.sport, user, OLD[user]) == "OK", (h.name, user)
    # a converged set: the accept phase changes nothing (the kept admin password is the old one)
    for h in stack["hosts"]:
        changed = h.accept(stack["tmp"], OLD)
        assert not changed["users.acl.j2"] and not changed["sentinel-users.acl.j2"], changed


def test_acl_load_would_disconnect_everybody(stack, tmp_path):
    """Why the role never sends ACL LOAD: Redis 7.0 drops every authenticated connection."""
    port = stack["master"].port
    with redis_client(port, "app", OLD["app"]) as probe, redis_client(port, "admin", OLD["admin"]) as admin:
        before = replica_ids(stack["master"])
        assert admin.execute("ACL", "LOAD") == "OK"
        with pytest.raises(RespConnectionError):
            probe.execute("PING")
    # the replica reconnects on its own, with a new link
    assert until(lambda: replica_ids(stack["master"]) and replica_ids(stack["master"]) != before)
    assert until(lambda: info(stack["replica"]).get("master_link_status") == "up")


def test_accept_takes_both_passwords_and_disconnects_nobody(stack):
    tmp, master = stack["tmp"], stack["master"]
    links = replica_ids(master)
    app = redis_client(master.port, "app", OLD["app"])
    events = [subscriber(h) for h in stack["hosts"]]
    try:
        # check mode first (the files put back as Ansible would not have written them): would
        # change, changes nothing
        saved = {path: open(path, encoding="utf-8").read() for path in (master.acl, master.sacl)}
        res = master.accept(tmp, NEW, check=True)
        assert res["users.acl.j2 live"]["changed"] and res["users.acl.j2 live"]["login_index"] == 1
        assert res["users.acl.j2 live"]["first_login_accepted"] is False and master.kept == OLD["admin"]
        assert auth(master.port, "app", NEW["app"]).startswith("WRONGPASS")
        for path, text in saved.items():
            write_if_changed(path, text)
        # the phase on every host: new admin password refused, the kept one logs in
        for h in stack["hosts"]:
            res = h.accept(tmp, NEW)
            assert res["users.acl.j2"] and res["sentinel-users.acl.j2"]
            assert res["users.acl.j2 live"]["login_index"] == 1
            assert sorted(res["users.acl.j2 live"]["applied"]) == sorted(["default", *SERVER_USERS])
            assert res["users.acl.j2 live"]["first_login_accepted"] is True
        for h in stack["hosts"]:
            for user in SERVER_USERS:
                assert auth(h.port, user, OLD[user]) == "OK", (h.name, user, "old")
                assert auth(h.port, user, NEW[user]) == "OK", (h.name, user, "new")
            for user in SENTINEL_USERS:
                assert auth(h.sport, user, OLD[user]) == "OK", (h.name, user, "old, Sentinel")
                assert auth(h.sport, user, NEW[user]) == "OK", (h.name, user, "new, Sentinel")
            assert auth(h.port, "app", "neither").startswith("WRONGPASS")
        # nobody was disconnected: the same replication link, the application's connection,
        # the Sentinel subscribers (their channel rules did not change)
        assert replica_ids(master) == links
        assert app.execute("PING") == "PONG"
        for e in events:
            assert e.execute("PING") == ["pong", ""]
        # idempotent: a second run changes nothing, now logged in with the new admin password
        for h in stack["hosts"]:
            res = h.accept(tmp, NEW)
            assert not res["users.acl.j2"] and not res["sentinel-users.acl.j2"], res
            assert res["users.acl.j2 live"]["login_index"] == 0
    finally:
        app.close()
        for e in events:
            e.close()


def test_switch_keeps_the_replica_link_and_sentinel_never_flags_the_master(stack):
    tmp, master, replica = stack["tmp"], stack["master"], stack["replica"]
    links = replica_ids(master)
    events = [subscriber(h) for h in stack["hosts"]]
    try:
        for h in stack["hosts"]:  # one host at a time, as the role throttles Sentinel
            written, server, sentinel = h.switch(tmp, NEW)
            assert written and server["changed"] and server["changes"] == ["masterauth"]
            assert sorted(sentinel["changes"]) == ["auth-pass", "sentinel-pass"]
            assert "disconnected" not in sentinel["master"]["flags"] and "s_down" not in sentinel["master"]["flags"]
            text = open(h.sconf, encoding="utf-8").read()
            assert redis_auth.sentinel_conf_values(text, "main") == {
                "auth-pass": NEW["sentinel"], "auth-user": "sentinel",
                "sentinel-pass": NEW["sentinel"], "sentinel-user": "sentinel"}
            assert OLD["sentinel"] not in text
            # the base file and the main file (CONFIG REWRITE) hold the new masterauth only
            for path in (h.base, h.conf):
                assert masterauth_values(path) == [NEW["replication"]], path
        assert info(replica)["master_link_status"] == "up"
        assert replica_ids(master) == links  # CONFIG SET masterauth did not cut the link
        with redis_client(replica.port, "admin", NEW["admin"]) as c:
            assert c.execute("CONFIG", "GET", "masterauth") == ["masterauth", NEW["replication"]]
        # well past down-after-milliseconds: no Sentinel saw the master (or a peer) down
        got = [sdown_events(e.messages(3 * DOWN_AFTER_MS / 1000)) for e in events]
        assert got == [[], []], got
        for h in stack["hosts"]:
            assert sentinel_master(h)["flags"] == "master"
            assert all("disconnected" not in p["flags"] and "s_down" not in p["flags"] for p in sentinel_peers(h))
        # idempotent
        for h in stack["hosts"]:
            written, server, sentinel = h.switch(tmp, NEW)
            assert not written and not server["changed"] and not sentinel["changed"], (server, sentinel)
    finally:
        for e in events:
            e.close()


def test_restarted_sentinel_sees_the_master_up(stack):
    h = stack["master"]
    h.stop_sentinel()
    h.start_sentinel()
    events = subscriber(h)
    try:
        got = sdown_events(events.messages(3 * DOWN_AFTER_MS / 1000))
        assert got == [], got
        assert sentinel_master(h)["flags"] == "master"
        assert until(lambda: int(sentinel_master(h)["num-slaves"]) == 1)
    finally:
        events.close()


def test_withdraw_refuses_every_old_password(stack):
    tmp, master = stack["tmp"], stack["master"]
    app = redis_client(master.port, "app", OLD["app"])  # logged in before: keeps working
    try:
        for h in stack["hosts"]:
            assert h.withdraw(tmp, NEW) == [True, True]
        for h in stack["hosts"]:
            for user in SERVER_USERS:
                assert auth(h.port, user, OLD[user]).startswith("WRONGPASS"), (h.name, user)
                assert auth(h.port, user, NEW[user]) == "OK", (h.name, user)
            for user in SENTINEL_USERS:
                assert auth(h.sport, user, OLD[user]).startswith("WRONGPASS"), (h.name, user)
                assert auth(h.sport, user, NEW[user]) == "OK", (h.name, user)
            for path in (h.acl, h.sacl):
                text = open(path, encoding="utf-8").read()
                for old in OLD.values():
                    assert hashlib.sha256(old.encode()).hexdigest() not in text
        assert app.execute("PING") == "PONG"
        # idempotent
        for h in stack["hosts"]:
            assert h.withdraw(tmp, NEW) == [False, False]
    finally:
        app.close()


def test_after_withdraw_every_link_reconnects_with_the_new_passwords(stack):
    master, replica = stack["master"], stack["replica"]
    links = replica_ids(master)
    events = [subscriber(h) for h in stack["hosts"]]
    try:
        with redis_client(master.port, "admin", NEW["admin"]) as admin:
            # the replica, and the Sentinels at the master, must log in again
            admin.execute("CLIENT", "KILL", "TYPE", "replica")
            admin.execute("CLIENT", "KILL", "USER", "sentinel")
        for h in stack["hosts"]:  # each Sentinel's peer must log in again with sentinel-pass
            with redis_client(h.sport, "admin", NEW["admin"]) as c:
                c.execute("CLIENT", "KILL", "USER", "sentinel")
        assert until(lambda: replica_ids(master) and replica_ids(master) != links)
        assert until(lambda: info(replica).get("master_link_status") == "up")
        got = [sdown_events(e.messages(3 * DOWN_AFTER_MS / 1000)) for e in events]
        assert got == [[], []], got
        for h in stack["hosts"]:
            assert sentinel_master(h)["flags"] == "master"
            peers = sentinel_peers(h)
            assert len(peers) == 1 and "disconnected" not in peers[0]["flags"] and "s_down" not in peers[0]["flags"]
        # Sentinel is logged in at the master again, as the sentinel user
        with redis_client(master.port, "admin", NEW["admin"]) as c:
            assert until(lambda: "user=sentinel" in c.execute("CLIENT", "LIST"))
    finally:
        for e in events:
            e.close()


# --- the modules' edge cases ----------------------------------------------------------------------

def test_redis_acl_unreachable_unmanaged_and_wrong_passwords(stack, tmp_path, procs):
    tmp = str(tmp_path)
    acl = stack["master"].acl
    res = module("redis_acl", tmp, path=acl, login_port=free_port(), login_passwords=["x"], allow_unreachable=True)
    assert res["reachable"] is False and not res.get("failed")
    res = module("redis_acl", tmp, path=acl, login_port=free_port(), login_passwords=["x"])
    assert res.get("failed") and "cannot connect" in res["msg"]
    res = module("redis_acl", tmp, path=acl, login_port=stack["master"].port,
                 login_passwords=[OLD["admin"], "also wrong"])
    assert res.get("failed") and "none of the 2 password(s) given for admin is accepted" in res["msg"]
    assert "WRONGPASS" in res["msg"]
    # a server without ACL users (a package's default configuration)
    port = procs.redis_server(tmp)
    res = module("redis_acl", tmp, path=acl, login_port=port, login_passwords=["x"], allow_unmanaged=True)
    assert res["managed"] is False and res["changed"] is False and not res.get("failed")
    res = module("redis_acl", tmp, path=os.path.join(tmp, "missing.acl"), sync=False)
    assert res == {"changed": False, "exists": False, "passwords": {}, "invocation": res["invocation"]}


def test_redis_config_masks_secrets_in_diff(stack, tmp_path):
    res = module("redis_config", str(tmp_path),
                 settings={"masterauth": "another one", "maxmemory-policy": "noeviction"},
                 login_port=stack["replica"].port, login_passwords=[NEW["admin"]], _ansible_check_mode=True,
                 _ansible_diff=True)
    assert res["changed"] and res["changes"] == ["masterauth"]
    assert "another one" not in json.dumps(res) and "********" in res["diff"]["after"]
    res = module("redis_config", str(tmp_path), settings={"no-such-setting": "1"}, login_port=stack["replica"].port,
                 login_passwords=[NEW["admin"]])
    assert res.get("failed") and "no-such-setting" in res["msg"]


# --- pure helpers -------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "words"), [
    ("sentinel auth-pass main s3cret", ["sentinel", "auth-pass", "main", "s3cret"]),
    ('masterauth "a \\"b\\" \\\\ c\\x41"', ["masterauth", 'a "b" \\ cA']),
    ("masterauth 'it\\'s'", ["masterauth", "it's"]),
    ('x ab"cd"', ["x", "abcd"]),
    ("  spaced   out  ", ["spaced", "out"]),
])
def test_split_args(line, words):
    assert redis_auth.split_args(line) == words


@pytest.mark.parametrize("line", ['a "unterminated', 'a "x"y', "a 'x'y"])
def test_split_args_refuses(line):
    with pytest.raises(redis_auth.ConfigSyntaxError):
        redis_auth.split_args(line)


def test_rule_passwords_follow_acl_setuser():
    h1, h2 = hashlib.sha256(b"one").hexdigest(), "a" * 64
    assert redis_auth.rule_passwords(["on", f"#{h1}", ">one", f"#{h2.upper()}", "~*"]) == ([h1, h2], True)
    assert redis_auth.rule_passwords(["on", f"#{h1}", f"!{h1}", "off"]) == ([], False)
    assert redis_auth.rule_passwords([">one", "<one", f"#{h2}", "resetpass", f"#{h1}"]) == ([h1], False)
    with pytest.raises(redis_auth.ConfigSyntaxError, match="line 2"):
        redis_auth.parse_acl_file("user a on\nnot a user line\n")
    with pytest.raises(redis_auth.ConfigSyntaxError, match="defined twice"):
        redis_auth.parse_acl_file("user a on\n\nuser a off\n")


def test_without_secrets():
    msg = redis_auth.without_secrets("Error in ACL SETUSER modifier '#%s': x pw1 y" % ("b" * 64), ["pw1"])
    assert msg == "Error in ACL SETUSER modifier '#<hash>': x ******** y"
