"""Encoders (plugins/filter/encode.py) and the templates that write secrets with them.

A corpus of awkward vault-style passwords goes through every encoder and through the real
role templates that carry a secret (rendered with Jinja2 and the collection's filters, like
Ansible renders them), and is read back with the consumer's own rules:

- Redis configuration (``masterauth`` in hardened-stack.conf.j2, the ACL files): a real
  redis-server on loopback starts with the rendered files, every ACL user authenticates with
  the corpus password, and a replica configured with the rendered ``masterauth`` reaches
  ``master_link_status:up`` at a master loading the rendered users.acl.
- sentinel.conf.j2: a real redis-sentinel starts with it, accepts the corpus password for its
  ACL user, authenticates at the master with ``auth-pass``, and still does after it rewrote
  its own file (``SENTINEL FLUSHCONFIG``) and restarted.
- systemd EnvironmentFile values (app.env.j2, the redis exporter's /etc/default file): there
  is no systemd manager on the controller (PID 1 is not systemd in the test containers), so
  ``parse_env_file`` below is a faithful Python port of systemd's ``parse_env_file_internal``
  (src/basic/env-file.c, systemd 252 as in Debian 12, unchanged in current main). The same
  files are also sourced by the real ``/bin/sh`` (Debian's init scripts source /etc/default
  files) and must give the same values.

The Redis tests are skipped when redis-server/redis-sentinel are absent
(``apt-get install redis-server redis-sentinel``; tests/run.py installs them in CI). They talk
to the servers with the collection's own RESP client (tests/unit/loopback.py).
"""

import hashlib
import subprocess

import pytest
from loopback import SENTINEL, SERVER, free_port, needs_redis, redis_client, until
from test_encode_corpus import CORPUS, LINE_BREAKS, SENTINEL_CORPUS, parse_env_file, render, shell_env

from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter import encode as flt
from ansible_collections.hardened.stack.plugins.module_utils import encode
from ansible_collections.hardened.stack.plugins.module_utils.resp import RespError


def test_port_matches_systemd_documented_examples():
    """The port against systemd's own test cases (src/test/test-env-file.c)."""
    assert parse_env_file('a=a\nb=b\\\nc\nd= d\\\ne  \\\nf  \ng=g\\ \nh= ąęół\\ śćńźżμ \ni=i\\') == {
        "a": "a", "b": "bc", "d": "de  f", "g": "g ", "h": "ąęół śćńźżμ", "i": "i"}
    assert parse_env_file("one=\"two\\\"\"\nthree='four'\n#five=x\nsix=\"a\\nb\" # c\n") == {
        "one": 'two"', "three": "four", "six": "a\\nb# c"}


# --- the encoders themselves ------------------------------------------------------------------

def test_filters_registered():
    assert set(flt.FilterModule().filters()) == {
        "pgpass_field", "patroni_pgpass_field", "patroni_role_password", "libpq_conninfo_value", "redis_string",
        "redis_sentinel_token",
        "systemd_env_value", "yaml_string", "yaml_document", "pgbackrest_value", "prometheus_password",
        "bcrypt_password", "basic_auth_user", "htpasswd_user", "nginx_string", "encode_problems"}


@pytest.mark.parametrize(("value", "expected"), [
    ("plain", '"plain"'),
    ("correct horse battery staple", '"correct horse battery staple"'),
    ('a"b\\c', '"a\\"b\\\\c"'),
    ("l1\nl2\r\t\a\b", '"l1\\nl2\\r\\t\\a\\b"'),
    ("\x01\x1b\x7f", '"\\x01\\x1b\\x7f"'),
    ("pässwörd $#%!'", "\"pässwörd $#%!'\""),
    ("", '""'),
])
def test_redis_string_rules(value, expected):
    assert encode.redis_string(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("plain", '"plain"'),
    ('a"b\\c`d$e', '"a\\"b\\\\c\\`d\\$e"'),
    ("it's #1 %i !", "\"it's #1 %i !\""),
    ("two\nlines", '"two\nlines"'),
    ("", '""'),
])
def test_systemd_env_value_rules(value, expected):
    assert encode.systemd_env_value(value) == expected


@pytest.mark.parametrize("value", SENTINEL_CORPUS)
def test_redis_sentinel_token_keeps_bare_words(value):
    assert encode.redis_sentinel_token(value) == value


@pytest.mark.parametrize(("value", "what"), [
    ("correct horse", "a space"), ("tab\there", "a tab"), ("l1\nl2", "a line break"),
    ('"quoted"', "double quote"), ("it's", "single quote"), ("", "empty"), ("a\x00b", "NUL"),
])
def test_redis_sentinel_token_refuses(value, what):
    with pytest.raises(encode.EncodeError, match=what):
        encode.redis_sentinel_token(value)


@pytest.mark.parametrize("name", ["redis_string", "systemd_env_value", "redis_sentinel_token"])
def test_nul_and_broken_text_refused(name):
    func = flt.FilterModule().filters()[name]
    for bad in ("a\x00b", "\udcff"):
        with pytest.raises(AnsibleFilterError, match=name) as exc:
            func(bad)
        assert bad not in str(exc.value)


def test_problems_name_the_variable_not_the_value():
    got = flt.encode_problems({"redis_sentinel_password": "correct horse battery staple",
                               "redis_app_password": "", "other": "fine"}, "redis_sentinel_token")
    assert got == ["redis_sentinel_password: a sentinel.conf password cannot hold a space: Sentinel "
                   "rewrites its configuration with the password unquoted"]
    assert "horse" not in got[0]
    got = flt.encode_problems({"K": "a\x00b"}, "systemd_env_value", prefix="app_secret_environment.")
    assert got == ["app_secret_environment.K: a systemd environment file value cannot hold a NUL character"]
    with pytest.raises(AnsibleFilterError, match="unknown format"):
        flt.encode_problems({}, "yaml")


@pytest.mark.parametrize("value", [*CORPUS, *LINE_BREAKS])
def test_systemd_env_value_round_trip(value, tmp_path):
    text = "# comment\nKEY=%s\nNEXT=after\n" % encode.systemd_env_value(value)
    assert parse_env_file(text) == {"KEY": value, "NEXT": "after"}
    path = tmp_path / "env"
    path.write_text(text, encoding="utf-8")
    assert shell_env(path, ["KEY", "NEXT"]) == {"KEY": value, "NEXT": "after"}


def test_old_forms_were_broken():
    """What the templates rendered before the encoders (issue 16), read by systemd's rules."""
    assert parse_env_file('P="quoted\nNEXT=x\n')["P"] != '"quoted'
    assert "NEXT" not in parse_env_file('P="quoted\nNEXT=x\n')
    assert parse_env_file("P='it's'\n")["P"] == "its'"
    assert parse_env_file("P=back\\slash\n")["P"] == "backslash"
    assert parse_env_file("P=trailing   \n")["P"] == "trailing"


# --- the role templates -----------------------------------------------------------------------

APP_VARS = {
    "_app_address": "10.0.0.5", "app_port": 8080,
    "app_connection": {"pg_write_hosts": "10.0.0.1,10.0.0.2", "pg_write_port": 5000,
                       "sentinels": ["10.0.0.1:26379", "10.0.0.2:26379"]},
    "app_db_name": "app", "app_db_user": "app", "app_db_sslmode": "verify-full",
    "app_redis_master_name": "main", "app_redis_user": "app", "app_sentinel_user": "app",
}


@pytest.mark.parametrize("value", CORPUS)
def test_app_env_template(value, tmp_path):
    out = render("app", "app.env.j2", _app_passwords={"db": value, "redis": value + "r", "sentinel": "s" + value},
                 app_environment={"APP_TIMEOUT": 5, "NOTE": value},
                 app_secret_environment={"API_TOKEN": value}, **APP_VARS)
    want = {"APP_PG_PASSWORD": value, "APP_REDIS_PASSWORD": value + "r", "APP_SENTINEL_PASSWORD": "s" + value,
            "NOTE": value, "API_TOKEN": value, "APP_TIMEOUT": "5", "APP_PG_HOSTS": "10.0.0.1,10.0.0.2",
            "APP_REDIS_SENTINELS": "10.0.0.1:26379,10.0.0.2:26379", "APP_PG_PORT": "5000",
            "APP_PG_SSLROOTCERT": "/etc/hardened-stack/pki/ca.crt", "APP_BIND": "10.0.0.5"}
    parsed = parse_env_file(out)
    assert {k: parsed.get(k) for k in want} == want
    path = tmp_path / "app.env"
    path.write_text(out, encoding="utf-8")
    assert shell_env(path, sorted(want)) == want


@pytest.mark.parametrize("value", CORPUS)
def test_redis_exporter_default_template(value, tmp_path):
    out = render("exporters", "redis.default.j2", exporters_redis_user="exporter", _exporters_redis_password=value,
                 _exporters_address="10.0.0.5", _exporters_port={"redis": 9121}, exporters_redis_url="rediss://x:6379",
                 _exporters_tls_cert="/c", _exporters_tls_key="/k", _exporters_tls_ca="/ca",
                 exporters_extra_args={"redis": []})
    parsed = parse_env_file(out)
    assert parsed["REDIS_PASSWORD"] == value and parsed["REDIS_USER"] == "exporter"
    assert parsed["ARGS"].startswith("-web.listen-address=10.0.0.5:9121 ")
    path = tmp_path / "redis.default"
    path.write_text(out, encoding="utf-8")
    assert shell_env(path, ["REDIS_PASSWORD", "REDIS_USER"]) == {"REDIS_PASSWORD": value, "REDIS_USER": "exporter"}


def test_sentinel_template_refuses_what_sentinel_cannot_carry():
    with pytest.raises(AnsibleFilterError, match="redis_sentinel_token: .* a space"):
        render("redis", "sentinel.conf.j2", **_sentinel_vars("/tmp", 1, 2, "correct horse battery staple"))


# --- real redis-server / redis-sentinel on loopback ----------------------------------------

SECRETS_USERS = {"redis_admin_user": "admin", "redis_app_user": "app", "redis_replication_user": "replication",
                 "redis_sentinel_user": "sentinel", "redis_exporter_user": "exporter"}


def _secrets(value):
    # every user gets a variant, so a mix-up between users would show
    return {"admin": value + "A", "app": value + "P", "replication": value, "sentinel": value + "S",
            "exporter": value + "E"}


def _server_conf(d, name, port, secrets):
    base = d / f"{name}-hardened-stack.conf"
    base.write_text(render(
        "redis", "hardened-stack.conf.j2", redis_engine="redis", _redis_main_conf=str(d / f"{name}.conf"),
        _redis_address="127.0.0.2", redis_tls=False, _redis_port=port,
        _redis_e={"server_pid": str(d / f"{name}.pid"), "log_dir": str(d), "server_package": name,
                  "data_dir": str(d / name)},
        redis_loglevel="notice", _redis_acl_file=str(d / "users.acl"), redis_maxmemory_mb=16,
        redis_maxmemory_policy="noeviction", redis_appendonly=False, redis_appendfsync="everysec",
        _redis_auth_keys=["masteruser", "masterauth"], _redis_secrets=secrets, redis_min_replicas_to_write=0,
        redis_min_replicas_max_lag=10, redis_replica_announce_ip="", **SECRETS_USERS), encoding="utf-8")
    (d / name).mkdir()
    main = d / f"{name}.conf"
    main.write_text(render("redis", "redis.conf.j2", redis_engine="redis", _redis_main_conf=str(main),
                           _redis_base_conf=str(base)) + 'save ""\nrepl-diskless-sync-delay 0\n', encoding="utf-8")
    return main


def _sentinel_vars(d, port, master_port, password):
    return dict(_redis_sentinel_marker="# hardened.stack sentinel", _redis_address="127.0.0.2", redis_tls=False,
                _redis_sentinel_port=port,
                _redis_e={"sentinel_pid": f"{d}/sentinel.pid", "log_dir": str(d), "sentinel_package": "sentinel",
                          "data_dir": str(d)},
                _redis_sentinel_acl_file=f"{d}/sentinel-users.acl", _redis_secrets=_secrets(password),
                redis_sentinel_announce_ip="", redis_master_name="main", _redis_master_address="127.0.0.1",
                _redis_port=master_port, _redis_quorum=1, redis_sentinel_down_after_ms=30000,
                redis_sentinel_failover_timeout_ms=180000, redis_sentinel_parallel_syncs=1, **SECRETS_USERS)


def _acl_vars(secrets):
    return dict(_redis_secrets=secrets, redis_app_acl="~app:* +@read +@write", redis_exporter_acl="-@all +info +ping",
                redis_sentinel_app_acl="-@all +sentinel|get-master-addr-by-name", **SECRETS_USERS)


@needs_redis
@pytest.mark.parametrize("value", CORPUS)
def test_redis_server_reads_rendered_config(value, tmp_path, procs):
    """masterauth (hardened-stack.conf.j2) and users.acl.j2 with the corpus password: every ACL
    user authenticates, and a replica reaches its master with the rendered masterauth."""
    secrets = _secrets(value)
    (tmp_path / "users.acl").write_text(render("redis", "users.acl.j2", **_acl_vars(secrets)), encoding="utf-8")
    ports = {"master": free_port(), "replica": free_port()}
    confs = {n: _server_conf(tmp_path, n, p, secrets) for n, p in ports.items()}
    with open(confs["replica"], "a", encoding="utf-8") as f:
        f.write(f"replicaof 127.0.0.1 {ports['master']}\n")
    for n, port in ports.items():
        procs.serve(port, SERVER, confs[n])
    with redis_client(ports["master"]) as master:
        for user in ("admin", "app", "replication", "sentinel", "exporter"):
            assert master.execute("AUTH", user, secrets[user]) == "OK", user
        with pytest.raises(RespError, match="^WRONGPASS"):
            master.execute("AUTH", "replication", value + "x")
        assert master.execute("AUTH", "admin", secrets["admin"]) == "OK"
    with redis_client(ports["replica"], "admin", secrets["admin"]) as replica:
        assert replica.execute("CONFIG", "GET", "masterauth") == ["masterauth", value]
        assert until(lambda: "master_link_status:up" in replica.execute("INFO", "replication")), \
            replica.execute("INFO", "replication")


@needs_redis
@pytest.mark.parametrize("value", SENTINEL_CORPUS)
def test_sentinel_reads_rendered_config_and_its_own_rewrite(value, tmp_path, procs):
    """sentinel.conf.j2 + sentinel-users.acl.j2: Sentinel accepts the password for its ACL user
    and authenticates at the master with auth-pass, before and after it rewrote the file."""
    secrets = _secrets(value)
    master_port, port = free_port(), free_port()
    (tmp_path / "users.acl").write_text(render("redis", "users.acl.j2", **_acl_vars(secrets)), encoding="utf-8")
    procs.serve(master_port, SERVER, _server_conf(tmp_path, "master", master_port, secrets))
    (tmp_path / "sentinel-users.acl").write_text(render("redis", "sentinel-users.acl.j2", **_acl_vars(secrets)),
                                                 encoding="utf-8")
    sconf = tmp_path / "sentinel.conf"
    sconf.write_text(render("redis", "sentinel.conf.j2", **_sentinel_vars(tmp_path, port, master_port, value)),
                     encoding="utf-8")

    def sentinel_authenticated_at_master():
        with redis_client(master_port, "admin", secrets["admin"]) as c:
            return "user=sentinel" in c.execute("CLIENT", "LIST")

    for round_ in ("rendered", "rewritten"):
        proc = procs.serve(port, SENTINEL, sconf)
        with redis_client(port) as s:
            assert s.execute("AUTH", "sentinel", secrets["sentinel"]) == "OK", round_
            assert until(sentinel_authenticated_at_master), round_
            assert s.execute("SENTINEL", "FLUSHCONFIG") == "OK"
        procs.stop(proc)
        with redis_client(master_port, "admin", secrets["admin"]) as c:
            c.execute("CLIENT", "KILL", "USER", "sentinel")
    assert f"sentinel sentinel-pass {secrets['sentinel']}\n" in sconf.read_text(encoding="utf-8")


@needs_redis
def test_sentinel_writes_passwords_back_unquoted(tmp_path, procs):
    """Why redis_sentinel_token refuses spaces: a quoted sentinel-pass is read once, then
    Sentinel's own rewrite drops the quotes and the next start fails."""
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    'sentinel sentinel-pass "correct horse battery staple"\n', encoding="utf-8")
    procs.serve(port, SENTINEL, conf)
    with redis_client(port) as s:
        assert s.execute("SENTINEL", "FLUSHCONFIG") == "OK"
    assert "sentinel sentinel-pass correct horse battery staple\n" in conf.read_text(encoding="utf-8")
    again = subprocess.run([SENTINEL, str(conf)], capture_output=True, timeout=20, check=False)
    assert again.returncode != 0
    assert b"sentinel" in again.stdout + again.stderr


def test_acl_templates_hash_the_exact_value():
    for value in CORPUS:
        out = render("redis", "users.acl.j2", **_acl_vars(_secrets(value)))
        assert f"user replication on #{hashlib.sha256(value.encode()).hexdigest()} " in out
