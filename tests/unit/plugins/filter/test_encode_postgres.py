"""libpq's formats with a real PostgreSQL server on loopback and the real libpq (psql).

A throw-away PostgreSQL (Debian's postgresql-15 binaries: initdb, pg_ctl; run as the
``postgres`` user when the tests run as root) listens on 127.0.0.1 with SCRAM authentication.
For every corpus value a role gets it as its password (and, where PostgreSQL allows the name,
a role is named after it), then:

- the backup role's pg_dump password file (the ``copy`` task's content, ``pgpass_field``)
  logs ``psql`` in through ``passfile``;
- ``libpq_conninfo_value`` passes user and password inside a connection string;
- patroni.yml.j2's passwords, loaded with PyYAML as Patroni loads them and written to a
  pgpass file by ports of Patroni's own writer (3.0.2 as in Debian 12, 4.0 as in Debian 13),
  log in; a trailing space, which ``patroni_pgpass_field`` refuses, is shown to be lost by
  Patroni 3.0.2;
- app.env.j2, read with systemd's rules, gives the demo app's psycopg2 the password.

Needs Debian's postgresql-15 installed (tests/unit/debian.py; tests/run.py installs it). Its own
``main`` cluster on port 5432 is never touched: the server here has a free port from the kernel
and its socket in its own temporary directory.
"""

# ruff: noqa: S106 (the passwords are test data)
import os
import re
import shutil
import subprocess
import tempfile

import debian
import psycopg2
import pytest
import yaml
from psycopg2 import sql
from loopback import free_port
from test_encode_corpus import CORPUS, LINE_BREAKS, parse_env_file, render, task_template

from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.module_utils import encode

BINDIR = debian.POSTGRESQL_BIN
PSQL = os.path.join(BINDIR, "psql")
pytestmark = debian.needs("postgresql-15", "postgresql-client-15")

# Role names PostgreSQL can hold (up to 63 bytes, no NUL): the corpus values that fit.
NAMEABLE = [v for v in CORPUS if len(v.encode("utf-8")) <= 63]


class Server:
    """initdb + pg_ctl in a temporary directory; ``admin`` is a superuser connection over the
    Unix socket (trust), TCP on 127.0.0.1 asks for SCRAM."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hs-encode-pg-")
        self.port = free_port()
        self.prefix = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
            self.prefix = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        data = os.path.join(self.dir, "data")
        self._run([os.path.join(BINDIR, "initdb"), "-D", data, "-U", "postgres", "-E", "UTF8", "--locale=C",
                   "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"])
        opts = "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off" % (
            self.port, self.dir)
        self._run([os.path.join(BINDIR, "pg_ctl"), "-D", data, "-l", os.path.join(self.dir, "log"), "-w", "-o", opts,
                   "start"])
        self.admin = psycopg2.connect(host=self.dir, port=self.port, user="postgres", dbname="postgres")
        self.admin.autocommit = True

    def _run(self, argv):
        subprocess.run(self.prefix + argv, check=True, capture_output=True, timeout=120)

    def role(self, name, password):
        with self.admin.cursor() as cur:
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))

    def stop(self):
        self.admin.close()
        self._run([os.path.join(BINDIR, "pg_ctl"), "-D", os.path.join(self.dir, "data"), "-m", "immediate", "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(name="pg", scope="module")
def fixture_pg():
    server = Server()
    yield server
    server.stop()


def psql(conninfo):
    """The user psql logs in as (real libpq, never prompting), or None."""
    res = subprocess.run([PSQL, "-w", "-XAtq", "-d", conninfo, "-c", "SELECT current_user"], capture_output=True,
                         timeout=30, check=False, env={"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "5"})
    return res.stdout.decode("utf-8").rstrip("\n") if res.returncode == 0 else None


def via_passfile(pg, path, user):
    os.chmod(path, 0o600)  # libpq ignores a password file others can read
    return psql("host=127.0.0.1 port=%d dbname=postgres sslmode=disable passfile=%s user=%s"
                % (pg.port, encode.libpq_conninfo_value(str(path)), encode.libpq_conninfo_value(user)))


PGPASS = task_template("backup", "ansible.builtin.copy", "/etc/pgbackrest/pgdump.pgpass")


def pgpass(pg, user, password):
    return PGPASS.render(_backup_member_addresses=["fd00::31", "127.0.0.1"], _backup_pg_port=pg.port,
                         backup_pg_dump_user=user, _backup_secrets={"pg_dump": password})


# --- pgpass -----------------------------------------------------------------------------------

@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_pgpass_template_logs_in(pg, index, tmp_path):
    """The pg_dump password file for a corpus password, and for a role named after the value."""
    value = CORPUS[index]
    pg.role("pw%d" % index, value)
    path = tmp_path / "pgpass"
    path.write_text(pgpass(pg, "pw%d" % index, value), encoding="utf-8")
    assert "fd00\\:\\:31:%d:*:pw%d:" % (pg.port, index) in path.read_text(encoding="utf-8")
    assert via_passfile(pg, path, "pw%d" % index) == "pw%d" % index
    pg.role("pw%d" % index, value + "x")
    assert via_passfile(pg, path, "pw%d" % index) is None  # the check can fail
    if value in NAMEABLE:
        pg.role(value, "named-%d" % index)
        path.write_text(pgpass(pg, value, "named-%d" % index), encoding="utf-8")
        assert via_passfile(pg, path, value) == value


def test_pgpass_star_user_is_no_wildcard(pg, tmp_path):
    """A role named '*' is escaped: its line does not match every user."""
    pg.role("*", "star-password")
    pg.role("other", "other-password")
    path = tmp_path / "pgpass"
    path.write_text(pgpass(pg, "*", "star-password") + pgpass(pg, "other", "other-password"), encoding="utf-8")
    assert "\\*" in path.read_text(encoding="utf-8")
    assert via_passfile(pg, path, "other") == "other"
    assert via_passfile(pg, path, "*") == "*"


@pytest.mark.parametrize("value", LINE_BREAKS)
def test_pgpass_cannot_carry_a_line_break(value):
    with pytest.raises(AnsibleFilterError, match="pgpass_field: .*line break"):
        PGPASS.render(_backup_member_addresses=["127.0.0.1"], _backup_pg_port=5432, backup_pg_dump_user="u",
                      _backup_secrets={"pg_dump": value})


# --- connection strings ------------------------------------------------------------------------

@pytest.mark.parametrize("index", range(len(CORPUS) + len(LINE_BREAKS)))
def test_conninfo_value_logs_in(pg, index):
    value = (CORPUS + LINE_BREAKS)[index]
    user = value if value in NAMEABLE else "ci%d" % index
    pg.role(user, value)
    conninfo = "host=127.0.0.1 port=%d dbname=postgres sslmode=disable user=%s password=%s" % (
        pg.port, encode.libpq_conninfo_value(user), encode.libpq_conninfo_value(value))
    assert psql(conninfo) == user


# --- Patroni's pgpass file ----------------------------------------------------------------------

def _patroni_escape(value):
    return re.sub(r"([:\\])", r"\\\1", str(value))


def patroni_3_0_pgpass(record):
    """Patroni 3.0.2 (Debian 12), patroni/postgresql/config.py ``ConfigHandler._pgpass_line``."""
    record = {n: _patroni_escape(record.get(n) or "*") for n in ("host", "port", "user", "password")}
    line = ""
    for hostname in record.get("host").split(","):
        line += hostname + ":{port}:*:{user}:{password}".format(**record) + "\n"
    return line.rstrip()


def patroni_4_0_pgpass(record):
    """Patroni 4.0 (Debian 13), patroni/postgresql/config.py ``ConfigHandler._pgpass_content``."""
    hosts = [_patroni_escape(h) for h in filter(None, map(str.strip, (record.get("host", "") or "*").split(",")))]
    record = {n: _patroni_escape(record.get(n) or "*") for n in ("port", "user", "password")}
    return "".join("{host}:{port}:*:{user}:{password}\n".format(**record, host=host) for host in hosts)


def _patroni_passwords(value):
    from test_encode_formats import _patroni_vars  # noqa: PLC0415 (one set of template variables)

    secrets = {"api": "api", "superuser": value, "replication": value + "R", "rewind": "w" + value}
    doc = yaml.safe_load(render("postgresql", "patroni.yml.j2", **_patroni_vars(secrets)))
    return {k: v["password"] for k, v in doc["postgresql"]["authentication"].items()}


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_patroni_pgpass_logs_in(pg, index, tmp_path):
    """patroni.yml.j2 -> PyYAML -> Patroni's pgpass writer -> libpq, for the three roles."""
    value = CORPUS[index]
    for kind, password in sorted(_patroni_passwords(value).items()):
        user = "%s%d" % (kind, index)
        pg.role(user, password)
        writers = [patroni_4_0_pgpass]
        try:
            encode.patroni_pgpass_field(password)
            writers.append(patroni_3_0_pgpass)
        except encode.EncodeError:
            # refused: Patroni 3.0.2 would lose the trailing white space
            assert password != password.rstrip()
            (tmp_path / "old").write_text(patroni_3_0_pgpass({"host": "127.0.0.1", "port": pg.port, "user": user,
                                                              "password": password}), encoding="utf-8")
            assert via_passfile(pg, tmp_path / "old", user) is None
        for writer in writers:
            path = tmp_path / writer.__name__
            path.write_text(writer({"host": "127.0.0.1", "port": pg.port, "user": user, "password": password}),
                            encoding="utf-8")
            assert via_passfile(pg, path, user) == user, (kind, writer.__name__)


def test_patroni_pgpass_field_refuses_what_patroni_loses():
    for value in ("trailing   ", "tab\t", "nbsp\xa0", "two\nlines"):
        with pytest.raises(encode.EncodeError):
            encode.patroni_pgpass_field(value)
    assert encode.patroni_pgpass_field("   leading: a\\b") == "   leading\\: a\\\\b"


# --- the app: systemd environment file -> psycopg2 ---------------------------------------------

@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_app_env_password_logs_in(pg, index):
    """app.env.j2 read with systemd's rules; the password the demo app hands psycopg2."""
    from test_encode import APP_VARS  # noqa: PLC0415 (the app template's other variables)

    value = CORPUS[index]
    pg.role("app%d" % index, value)
    variables = dict(APP_VARS)
    variables.update({"app_db_user": "app%d" % index, "_app_passwords": {"db": value, "redis": "r", "sentinel": "s"},
                      "app_environment": {}, "app_secret_environment": {}})
    env = parse_env_file(render("app", "app.env.j2", **variables))
    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, dbname="postgres", user=env["APP_PG_USER"],
                            password=env["APP_PG_PASSWORD"], sslmode="disable", connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone()[0] == "app%d" % index
    finally:
        conn.close()


@pytest.mark.parametrize("value", ["ümlaut", "pässwörd", "€uro", "plain ASCII 'quoted' \\ $x"])
def test_patroni_role_password_follows_patronis_quoting(value):
    """Patroni's own quoting of the roles it creates at bootstrap (patroni/psycopg.py
    quote_literal with psycopg2: adapt() without a connection, then .decode('utf-8')) fails
    exactly on what patroni_role_password refuses (seen: Patroni 3.0.2's bootstrap died with
    UnicodeDecodeError on a rewind password with an umlaut)."""
    from psycopg2.extensions import adapt  # noqa: PLC0415 (the library Patroni uses on Debian)

    try:
        adapt(value).getquoted().decode("utf-8")
        patroni_ok = True
    except UnicodeError:
        patroni_ok = False
    try:
        assert encode.patroni_role_password(value) == value
        ours = True
    except encode.EncodeError:
        ours = False
    assert ours == patroni_ok
