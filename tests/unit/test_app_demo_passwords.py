"""The demo app (roles/app/files/hardened_stack_demo.py) through a password rotation, against a
real PostgreSQL and a real redis-server + redis-sentinel on loopback.

The app runs under Debian's /usr/bin/python3 with Debian's python3-psycopg2 (libpq) and
python3-redis, as it does on the app hosts. PostgreSQL holds one password per role, so while
ALTER ROLE happens the app holds the new password and the old one (APP_PG_PASSWORD_PREVIOUS):
a connection refused for its password is tried once more with the other one, and the value that
worked is tried first next time. Redis and Sentinel get the same treatment.

Needs Debian's postgresql-15, python3-psycopg2, python3-redis, redis-server, redis-sentinel and
redis-tools (tests/unit/debian.py; tests/run.py installs them). PostgreSQL refuses to run as
root: as root the server runs as the unprivileged `postgres` (or `nobody`) account. The
``main`` cluster postgresql-common creates on port 5432 is never touched: this server has a free
port from the kernel and its socket in its own temporary directory, Redis and Sentinel too.
"""

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import textwrap

import debian
import pytest
from loopback import SENTINEL, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP_DIR = os.path.join(ROOT, "roles", "app", "files")
PYTHON = debian.PYTHON

OLD, NEW, OTHER = "old pw 'x' \"y\" $HOME #1 50% \\", "new-Pw-2 ü", "neither"
# Redis ACL user app and Sentinel ACL user sentinel, before and after
APP_OLD, APP_NEW, SENTINEL_OLD, SENTINEL_NEW = "oldapp", "newapp", "oldsentinel", "newsentinel"


pytestmark = debian.needs("postgresql-15", "python3", "python3-psycopg2", "python3-redis", "redis-server",
                          "redis-sentinel", "redis-tools")


# --- PostgreSQL --------------------------------------------------------------------------------

class Postgres:
    def __init__(self):
        self.bin = debian.POSTGRESQL_BIN
        self.base = tempfile.mkdtemp(prefix="hs-app-pg-")
        self.data = os.path.join(self.base, "data")
        self.log = os.path.join(self.base, "server.log")
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                self.user = pwd.getpwnam("nobody")
            os.chown(self.base, self.user.pw_uid, self.user.pw_gid)  # mkdtemp: mode 0700

    def _demote(self):
        if self.user is not None:
            os.setgid(self.user.pw_gid)
            os.setgroups([])
            os.setuid(self.user.pw_uid)

    def run(self, *argv):
        subprocess.run([os.path.join(self.bin, argv[0]), *argv[1:]], check=True, capture_output=True,
                       preexec_fn=self._demote, cwd=self.base)  # noqa: PLW1509 (drop root before PostgreSQL starts)

    def start(self):
        self.run("initdb", "-D", self.data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                 "--encoding=UTF8", "--locale=C.UTF-8")
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a", encoding="utf-8") as fh:
            fh.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.base}'\n"
                     "log_connections = on\npassword_encryption = 'scram-sha-256'\nfsync = off\n")
        self.run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")

    def stop(self):
        try:
            self.run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def sql(self, statement, *params):
        """As the superuser over the unix socket (trust): the test's own administration."""
        import psycopg2  # noqa: PLC0415 (the controller venv's psycopg2, only for ALTER ROLE)

        conn = psycopg2.connect(host=self.base, port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
        finally:
            conn.close()

    def password_failures(self):
        with open(self.log, encoding="utf-8", errors="replace") as fh:
            return fh.read().count('password authentication failed for user "app"')


@pytest.fixture(scope="module")
def postgres():
    pg = Postgres()
    pg.start()
    try:
        pg.sql("CREATE ROLE app LOGIN PASSWORD %s", OLD)
        pg.sql("CREATE DATABASE app OWNER app")
        yield pg
    finally:
        pg.stop()


# --- Redis + Sentinel --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def redis_stack(tmp_path_factory, module_procs):
    base = tmp_path_factory.mktemp("app-redis")
    server, sentinel = free_port(), free_port()
    with open(os.path.join(base, "users.acl"), "w", encoding="utf-8") as fh:
        fh.write("user default off resetpass -@all\nuser admin on >adminpw ~* &* +@all\n"
                 f"user app on >{APP_OLD} ~hsdemo:* +@all\n")
    with open(os.path.join(base, "sentinel-users.acl"), "w", encoding="utf-8") as fh:
        fh.write(f"user default off resetpass -@all\nuser sentinel on >{SENTINEL_OLD} ~* &* +@all\n")
    with open(os.path.join(base, "sentinel.conf"), "w", encoding="utf-8") as fh:
        fh.write(f"port {sentinel}\nbind 127.0.0.1\ndir {base}\naclfile {base}/sentinel-users.acl\n"
                 f"sentinel monitor main 127.0.0.1 {server} 1\nsentinel auth-user main admin\n"
                 "sentinel auth-pass main adminpw\nsentinel down-after-milliseconds main 30000\n")
    module_procs.redis_server(base, "--aclfile", f"{base}/users.acl", port=server)
    module_procs.serve(sentinel, SENTINEL, os.path.join(base, "sentinel.conf"))

    def acl(*args, port=server, user="admin", password="adminpw"):  # noqa: S107 (the test's own admin)
        return subprocess.run(["redis-cli", "-p", str(port), "--user", user, "--pass", password,
                               "--no-auth-warning", *args], capture_output=True, text=True, check=True).stdout
    return {"server": server, "sentinel": sentinel, "acl": acl}


# --- the app -----------------------------------------------------------------------------------

HARNESS = textwrap.dedent("""
    import io, json, sys
    sys.path.insert(0, sys.argv[1])
    import hardened_stack_demo as app

    def call(path, method="GET", query=""):
        seen = {}
        def start(status, headers):
            seen["status"] = status
        body = b"".join(app.application({"PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": query,
                                         "wsgi.input": io.BytesIO()}, start))
        return {"status": seen["status"], "body": json.loads(body)}

    out = []
    for step in json.loads(sys.argv[2]):
        if step == "db":
            out.append(app.check_database())
        elif step == "cache":
            out.append(app.check_cache())
        elif step.startswith("write:"):
            out.append(call("/write", "POST", "id=" + step[6:]))
        elif step.startswith("read:"):
            out.append(call("/read", "GET", "id=" + step[5:]))
        elif step == "wait":
            print("WAITING", flush=True)
            input()
            out.append("resumed")
    print(json.dumps(out))
""")


def app_env(pg=None, stack=None, **secrets):
    env = {"PATH": "/usr/bin:/bin", "APP_TIMEOUT": "3"}
    if pg is not None:
        env.update(APP_PG_HOSTS="127.0.0.1", APP_PG_PORT=str(pg.port), APP_PG_DB="app", APP_PG_USER="app",
                   APP_PG_SSLMODE="disable")
    if stack is not None:
        env.update(APP_REDIS_SENTINELS=f"127.0.0.1:{stack['sentinel']}", APP_REDIS_MASTER="main",
                   APP_REDIS_USER="app", APP_SENTINEL_USER="sentinel")
    env.update(secrets)
    return env


def run_app(env, steps):
    res = subprocess.run([PYTHON, "-c", HARNESS, APP_DIR, json.dumps(steps)], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_pg_previous_password_is_the_fallback_until_alter_role(postgres):
    postgres.sql("ALTER ROLE app PASSWORD %s", OLD)
    env = app_env(postgres, APP_PG_PASSWORD=NEW, APP_PG_PASSWORD_PREVIOUS=OLD)
    before = postgres.password_failures()
    # the server still has the old password: the new one is refused once, the old one works and
    # is tried first afterwards (one refusal for three connections)
    db1, write, db2 = run_app(env, ["db", "write:1", "db"])
    assert db1["ok"] and db2["ok"], (db1, db2)
    assert write["status"] == "200 OK" and write["body"]["ok"] is True
    assert postgres.password_failures() - before == 1


def test_pg_switch_while_the_app_runs(postgres):
    """One process across ALTER ROLE: the old password (tried first) is refused once, then the
    new one is used."""
    postgres.sql("ALTER ROLE app PASSWORD %s", OLD)
    env = app_env(postgres, APP_PG_PASSWORD=NEW, APP_PG_PASSWORD_PREVIOUS=OLD)
    proc = subprocess.Popen([PYTHON, "-c", HARNESS, APP_DIR, json.dumps(["db", "wait", "db", "write:3", "db"])],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WAITING"
        before = postgres.password_failures()
        postgres.sql("ALTER ROLE app PASSWORD %s", NEW)
        out, err = proc.communicate("\n", timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    db1, resumed, db2, read, db3 = json.loads(out)
    assert resumed == "resumed"
    assert db1["ok"] and db2["ok"] and db3["ok"], (db1, db2, db3)
    assert read["status"] == "200 OK"
    # after the switch: the remembered old password is refused once, then the new one sticks
    assert postgres.password_failures() - before == 1


def test_pg_without_previous_the_old_server_password_fails(postgres):
    postgres.sql("ALTER ROLE app PASSWORD %s", OLD)
    (db,) = run_app(app_env(postgres, APP_PG_PASSWORD=NEW), ["db"])
    assert not db["ok"] and "password authentication failed" in db["error"]


def test_pg_two_wrong_candidates_fail_after_one_retry(postgres):
    postgres.sql("ALTER ROLE app PASSWORD %s", OLD)
    before = postgres.password_failures()
    (db,) = run_app(app_env(postgres, APP_PG_PASSWORD=NEW, APP_PG_PASSWORD_PREVIOUS=OTHER), ["db"])
    assert not db["ok"] and "password authentication failed" in db["error"]
    assert postgres.password_failures() - before == 2


def test_pg_final_phase_uses_the_new_password_only(postgres):
    postgres.sql("ALTER ROLE app PASSWORD %s", NEW)
    before = postgres.password_failures()
    db, write, read = run_app(app_env(postgres, APP_PG_PASSWORD=NEW), ["db", "write:2", "read:2"])
    assert db["ok"] and write["status"] == "200 OK" and read["status"] == "200 OK"
    assert postgres.password_failures() == before


def redis_env(stack, app, sentinel, app_previous="", sentinel_previous=""):
    secrets = {"APP_REDIS_PASSWORD": app, "APP_SENTINEL_PASSWORD": sentinel}
    if app_previous:
        secrets["APP_REDIS_PASSWORD_PREVIOUS"] = app_previous
    if sentinel_previous:
        secrets["APP_SENTINEL_PASSWORD_PREVIOUS"] = sentinel_previous
    return app_env(stack=stack, **secrets)


def set_passwords(stack, app, sentinel, sentinel_now):
    stack["acl"]("ACL", "SETUSER", "app", "resetpass", ">" + app)
    stack["acl"]("ACL", "SETUSER", "sentinel", "resetpass", ">" + sentinel, port=stack["sentinel"],
                 user="sentinel", password=sentinel_now)


def test_redis_and_sentinel_fall_back_to_the_previous_password(redis_stack):
    both = redis_env(redis_stack, APP_NEW, SENTINEL_NEW, APP_OLD, SENTINEL_OLD)
    (cache,) = run_app(both, ["cache"])
    assert cache["ok"], cache
    # without the previous values the same servers refuse the app
    (cache,) = run_app(redis_env(redis_stack, APP_NEW, SENTINEL_OLD), ["cache"])
    assert not cache["ok"] and "WRONGPASS" in cache["error"], cache
    (cache,) = run_app(redis_env(redis_stack, APP_OLD, SENTINEL_NEW), ["cache"])
    assert not cache["ok"], cache
    # the servers switch: the new values work alone, and with the old ones as fallback
    set_passwords(redis_stack, APP_NEW, SENTINEL_NEW, SENTINEL_OLD)
    try:
        (cache,) = run_app(redis_env(redis_stack, APP_NEW, SENTINEL_NEW), ["cache"])
        assert cache["ok"], cache
        (cache,) = run_app(both, ["cache"])
        assert cache["ok"], cache
    finally:
        set_passwords(redis_stack, APP_OLD, SENTINEL_OLD, SENTINEL_NEW)
