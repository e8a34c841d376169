"""YAML, pgBackRest, Prometheus/Alertmanager and HTTP basic auth: each encoder, the role
templates that use it, and the real consumer reading the corpus back.

- YAML (patroni.yml.j2, alertmanager.yml.j2, prometheus.yml.j2 through ``yaml_document``; hand
  written YAML through ``yaml_string``): loaded back with PyYAML (Patroni's loader) and with
  libyaml (``CSafeLoader``; Go's yaml.v2/v3 are ports of it), and read by the real Go
  programs: Prometheus 2.42 sends the rendered basic auth user and password file, Alertmanager
  0.25 authenticates at an SMTP server with the rendered ``smtp_auth_password``.
- pgBackRest (pgbackrest-repo.conf.j2): the real ``pgbackrest`` 2.45 encrypts a file with the
  ``repo1-cipher-pass`` it read from the rendered configuration, and decrypts it with the
  corpus value given raw through its environment (``PGBACKREST_REPO1_CIPHER_PASS``): both
  agree only when the file carried the value exactly.
- What a format cannot carry is refused (one test per format), and shown to be lost by the
  real program when written anyway.

Programs (tests/unit/debian.py, which tests/run.py runs first): ``pgbackrest`` installed from
Debian's pgbackrest package; ``prometheus`` and ``prometheus-alertmanager`` from Debian's
prometheus and prometheus-alertmanager packages, unpacked, never installed (no service starts).
"""

import base64
import collections.abc
import http.server
import json
import os
import socketserver
import subprocess
import threading
import urllib.request

import debian
import pytest
import yaml
from loopback import free_port, until
from test_encode_corpus import CORPUS, LINE_BREAKS, render, task_template

from ansible.errors import AnsibleFilterError
from ansible.parsing.vault import VaultedValue
from ansible.plugins.filter.core import to_nice_yaml
from ansible_collections.hardened.stack.plugins.filter import encode as flt
from ansible_collections.hardened.stack.plugins.filter import prometheus as prometheus_filters
from ansible_collections.hardened.stack.plugins.module_utils import encode

PGBACKREST = debian.INSTALLED["pgbackrest"][0]
needs_pgbackrest = debian.needs("pgbackrest")


# Characters YAML does not allow raw, or reads as line breaks.
YAML_AWKWARD = ["\x85nel", "line\u2028sep", "para\u2029sep", "del\x7f", "esc\x1b[0m", "\ufeffbom", "c1\x9f",
                "bell\a", "vt\v ff\f"]
LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])


def _loads(text):
    """Every loader must read the same data (PyYAML as Patroni does, libyaml as Go's ports)."""
    docs = [yaml.load(text, Loader=loader) for loader in LOADERS]  # noqa: S506 (safe loaders only)
    assert all(d == docs[0] for d in docs)
    return docs[0]


# --- YAML -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("plain", '"plain"'),
    ('a"b\\c', '"a\\"b\\\\c"'),
    ("t\tn\nr\r", '"t\\tn\\nr\\r"'),
    ("\x01\x7f\x85\x9f", '"\\x01\\x7f\\x85\\x9f"'),
    ("\u2028\u2029\ufeff", '"\\u2028\\u2029\\ufeff"'),
    ("pässwörd 😀 #: - {x}", '"pässwörd 😀 #: - {x}"'),
    ("", '""'),
])
def test_yaml_string_rules(value, expected):
    assert encode.yaml_string(value) == expected


@pytest.mark.parametrize("value", [*CORPUS, *LINE_BREAKS, *YAML_AWKWARD])
def test_yaml_string_round_trip(value):
    """A value, a mapping key and a list item, in block and flow context."""
    enc = encode.yaml_string(value)
    assert "\n" not in enc
    doc = _loads("a: %s\n%s: key\nl:\n  - %s\nf: {k: %s}\n" % (enc, enc, enc, enc))
    assert doc == {"a": value, value: "key", "l": [value], "f": {"k": value}}


@pytest.mark.parametrize("value", [*CORPUS, *LINE_BREAKS, *YAML_AWKWARD])
def test_yaml_document_round_trip(value):
    data = {"password": value, "nested": {"list": [value, 1, True, None], value: "as a key"}, "n": 5}
    assert _loads(encode.yaml_document(data)) == data
    assert _loads(encode.yaml_document(data, width=20)) == data  # folded long lines too


def test_yaml_document_is_to_nice_yaml_for_plain_data():
    """Plain data renders byte for byte like ansible.builtin.to_nice_yaml (no change on a
    rerun after the templates switched to yaml_document)."""
    data = {"scope": "main", "b": [{"x": 1}, "y", 2.5, False, None], "long": "w " * 100, "z": {"k": "v: w"}}
    for kwargs in ({"indent": 2, "width": 120}, {"indent": 2, "width": 1000, "sort_keys": False}):
        assert encode.yaml_document(data, **kwargs) == to_nice_yaml(data, **kwargs)


def test_yaml_document_writes_vault_values_as_text():
    """A value from an inline-vaulted variable: to_nice_yaml writes its ciphertext (Patroni and
    Alertmanager cannot read '!vault'); yaml_document writes the value."""
    secret = VaultedValue(ciphertext="$ANSIBLE_VAULT;1.1;AES256\n3031").tag("correct horse")
    assert "!vault" in to_nice_yaml({"password": secret})
    out = flt.FilterModule().filters()["yaml_document"]({"password": secret, "list": [secret]})
    assert out == "list:\n- correct horse\npassword: correct horse\n"
    assert encode.systemd_env_value(secret) == '"correct horse"'


class _OldVaultValue(collections.abc.Sequence):
    """Like ansible-core 2.18's AnsibleVaultEncryptedUnicode: a Sequence (not a str) whose
    str() is the decrypted value."""

    def __init__(self, text):
        self._text = text

    def __str__(self):
        return self._text

    def __len__(self):
        return len(self._text)

    def __getitem__(self, index):
        return self._text[index]


def test_plain_data_reads_an_old_vault_value_as_text():
    got = encode.plain_data({"p": _OldVaultValue("correct horse"), "l": (1, "a")})
    assert got == {"p": "correct horse", "l": [1, "a"]}
    assert encode.yaml_string(_OldVaultValue("x y")) == '"x y"'


@pytest.mark.parametrize("name", ["yaml_string", "yaml_document"])
def test_yaml_refuses_nul(name):
    func = flt.FilterModule().filters()[name]
    with pytest.raises(AnsibleFilterError, match=name + ": .*NUL"):
        func({"k": ["a\x00b"]} if name == "yaml_document" else "a\x00b")


def _patroni_vars(secrets):
    return {"inventory_hostname": "pg1", "postgresql_tls_dir": "/etc/patroni/tls", "postgresql_cluster_name": "main",
            "_postgresql_address": "10.0.0.1", "_postgresql_api_port": 8008, "_postgresql_port": 5432,
            "postgresql_patroni_api_user": "patroni", "_postgresql_secrets": secrets,
            "_postgresql_etcd_hosts": ["10.0.0.1:2379"], "_postgresql_dcs": {"ttl": 30, "postgresql": {}},
            "postgresql_data_dir": "/var/lib/postgresql/15/main", "postgresql_version": 15,
            "postgresql_superuser": "postgres", "postgresql_replication_user": "replicator",
            "postgresql_rewind_user": "rewinder", "_postgresql_pg_hba": ["local all all peer"],
            "_postgresql_watchdog": "off", "postgresql_patroni_tags": {}}


@pytest.mark.parametrize("value", [*CORPUS, *LINE_BREAKS])
def test_patroni_template(value):
    """patroni.yml.j2: Patroni loads it with PyYAML; every password comes back exactly."""
    secrets = {"api": "A" + value, "superuser": value, "replication": value + "R", "rewind": "w" + value}
    doc = _loads(render("postgresql", "patroni.yml.j2", **_patroni_vars(secrets)))
    assert doc["restapi"]["authentication"] == {"username": "patroni", "password": "A" + value}
    auth = doc["postgresql"]["authentication"]
    assert auth["superuser"] == {"username": "postgres", "password": value}
    assert auth["replication"]["password"] == value + "R" and auth["replication"]["sslmode"] == "verify-full"
    assert auth["rewind"]["password"] == "w" + value
    assert doc["scope"] == "main" and doc["postgresql"]["pg_hba"] == ["local all all peer"]


def _alertmanager_data(password, smarthost="127.0.0.1:25"):
    return prometheus_filters.alertmanager_config(
        [{"name": "mail", "type": "email", "to": "ops@example.org"}],
        {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        {"smarthost": smarthost, "from": "am@example.org", "auth_username": "am", "auth_password": password,
         "require_tls": False})


@pytest.mark.parametrize("value", [*CORPUS, *LINE_BREAKS])
def test_alertmanager_template(value):
    doc = _loads(render("alertmanager", "alertmanager.yml.j2", _alertmanager_config_data=_alertmanager_data(value)))
    assert doc["global"]["smtp_auth_password"] == value
    assert doc["receivers"][0]["email_configs"][0]["to"] == "ops@example.org"


# --- pgBackRest -------------------------------------------------------------------------------

PGBACKREST_REFUSED = [v for v in CORPUS if v != v.strip(" \t\r")]
PGBACKREST_CORPUS = [v for v in CORPUS if v not in PGBACKREST_REFUSED]


def test_pgbackrest_value_keeps_everything_else():
    for value in PGBACKREST_CORPUS + ["a\rb", "# not a comment", "[section]", "k=v"]:
        assert encode.pgbackrest_value(value) == value


@pytest.mark.parametrize(("value", "what"), [
    ("", "empty"), ("two\nlines", "line feed"), (" lead", "start with a space"), ("trail ", "end with a space"),
    ("\ttab", "start with a tab"), ("cr\r", "end with a carriage return"), ("a\x00b", "NUL"),
])
def test_pgbackrest_value_refuses(value, what):
    with pytest.raises(encode.EncodeError, match=what):
        encode.pgbackrest_value(value)


def _repo_conf(tmp_path, cipher):
    return render("backup", "pgbackrest-repo.conf.j2", inventory_hostname="backup1",
                  backup_repo_path=str(tmp_path / "repo"), backup_retention_full=2, backup_retention_diff=3,
                  backup_repo_cipher=True,
                  _backup_secrets={"cipher": cipher}, backup_compress_type="gz", backup_process_max=1,
                  backup_from_standby=True, _backup_address="127.0.0.1", _backup_tls_port=8432,
                  _backup_members=["pg1", "pg2"], _backup_pg_port=5432, backup_stanza="main",
                  hostvars={"pg1": {"_backup_patroni": {"data_dir": "/d1"}},
                            "pg2": {"_backup_patroni": {"data_dir": "/d2"}}})


def _pgbackrest(args, env=None, data=None):
    base = [PGBACKREST, "--log-level-console=error", "--log-level-file=off", "--log-level-stderr=error"]
    return subprocess.run(base + args, input=data, capture_output=True, timeout=30, check=False,
                          env=dict({"PATH": "/usr/bin:/bin"}, **(env or {})))


def _put_then_get(tmp_path, conf_text, raw_pass):
    """Encrypt with the pass pgBackRest read from ``conf_text``, decrypt with ``raw_pass``
    given through the environment (taken as is): True when both are the same pass."""
    (tmp_path / "repo").mkdir(exist_ok=True)
    conf = tmp_path / "pgbackrest.conf"
    conf.write_text(conf_text, encoding="utf-8")
    data = os.urandom(64).hex().encode()
    put = _pgbackrest(["--config=%s" % conf, "repo-put", "archive/main/archive.info"], data=data)
    assert put.returncode == 0, put.stderr
    stored = (tmp_path / "repo" / "archive" / "main" / "archive.info").read_bytes()
    assert stored.startswith(b"Salted__") and data not in stored  # encrypted
    get = _pgbackrest(["--no-config", "--repo1-path=%s" % (tmp_path / "repo"), "--repo1-cipher-type=aes-256-cbc",
                       "repo-get", "archive/main/archive.info"], env={"PGBACKREST_REPO1_CIPHER_PASS": raw_pass})
    return get.returncode == 0 and get.stdout == data


@needs_pgbackrest
@pytest.mark.parametrize("value", PGBACKREST_CORPUS)
def test_pgbackrest_reads_rendered_cipher_pass(value, tmp_path):
    conf = _repo_conf(tmp_path, value)
    assert "repo1-cipher-pass=%s\n" % value in conf
    assert _put_then_get(tmp_path, conf, value)
    assert not _put_then_get(tmp_path, conf, value + "x")  # the check can fail


@needs_pgbackrest
@pytest.mark.parametrize("value", PGBACKREST_REFUSED)
def test_pgbackrest_cannot_carry_outer_white_space(value, tmp_path):
    """The template refuses the value; written anyway, pgBackRest would use it trimmed."""
    with pytest.raises(AnsibleFilterError, match="pgbackrest_value: .*(start|end) with"):
        _repo_conf(tmp_path, value)
    raw = _repo_conf(tmp_path, "PLACEHOLDER").replace("PLACEHOLDER", value)
    assert not _put_then_get(tmp_path, raw, value)
    assert _put_then_get(tmp_path, raw, value.strip(" \t\r"))


# --- HTTP basic auth: Prometheus, exporter-toolkit, nginx ------------------------------------

PROMETHEUS_REFUSED = [v for v in CORPUS if v != v.strip()]
PROMETHEUS_CORPUS = [v for v in CORPUS if v not in PROMETHEUS_REFUSED]


@pytest.mark.parametrize("value", ["\u3000ideographic", "nbsp\xa0", "\x85nel", "\u2009thin", "tab\t", "\nlf",
                                   " space", "end\r"])
def test_prometheus_password_refuses_outer_white_space(value):
    with pytest.raises(encode.EncodeError, match="white space"):
        encode.prometheus_password(value)


def test_prometheus_password_keeps_inner_and_non_go_space():
    # \x1c-\x1f are white space to Python's str.strip, not to Go's unicode.IsSpace
    for value in PROMETHEUS_CORPUS + ["in ner", "\x1cfs", "zwsp\u200b"]:
        assert encode.prometheus_password(value) == value


@pytest.mark.parametrize(("value", "ok"), [("x" * 72, True), ("x" * 73, False), ("ä" * 36, True),
                                           ("ä" * 36 + "x", False), ("😀" * 18, True), ("😀" * 18 + "x", False)])
def test_bcrypt_password_72_bytes(value, ok):
    if ok:
        assert encode.bcrypt_password(value) == value
    else:
        with pytest.raises(encode.EncodeError, match="72 bytes"):
            encode.bcrypt_password(value)


@pytest.mark.parametrize(("value", "what"), [("", "empty"), ("a:b", "colon"), ("tab\tuser", "control"),
                                             ("del\x7f", "control"), ("l\nf", "control")])
def test_basic_auth_user_refuses(value, what):
    for func in (encode.basic_auth_user, encode.htpasswd_user):
        with pytest.raises(encode.EncodeError, match=what):
            func(value)


def test_htpasswd_user_refuses_a_comment():
    assert encode.basic_auth_user("#ops") == "#ops"
    with pytest.raises(encode.EncodeError, match="start with #"):
        encode.htpasswd_user("#ops")
    for value in ("prometheus", "ops team", "pässwörd", "a=b;c", "$HOME", "'q'"):
        assert encode.htpasswd_user(value) == value


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every GET with one metric and keeps the first Authorization header per path."""

    def do_GET(self):  # noqa: N802 (BaseHTTPRequestHandler's name)
        self.server.seen.setdefault(self.path, self.headers.get("Authorization"))
        body = b"hs_encode_test 1\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # every scrape at once


@pytest.fixture(name="http_recorder")
def fixture_http_recorder():
    server = _HTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _credentials(header):
    assert header and header.startswith("Basic "), header
    user, colon, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    assert colon
    return user, password


def test_prometheus_sends_the_rendered_credentials(tmp_path, http_recorder, procs):
    """prometheus.yml.j2 (basic_auth username) and the role's password file (the copy task's
    content, prometheus_password): Prometheus 2.42 scrapes with exactly the corpus values.
    Jobs written by hand with yaml_string check that encoder with Go's YAML reader; raw
    password files with outer white space show Prometheus trims it."""
    prometheus = debian.needed("prometheus", "usr/bin/prometheus")
    port = http_recorder.server_address[1]
    password_file = task_template("prometheus", "ansible.builtin.copy", "_prometheus_password_file")
    jobs, expected = [], {}
    for i, value in enumerate(PROMETHEUS_CORPUS):
        user = value if not encode.refusals(value, ["basic_auth_user"]) else "user%d" % i
        path = tmp_path / ("password%d" % i)
        path.write_text(password_file.render(_prometheus_auth_password=value), encoding="utf-8")
        jobs.append({"job_name": "j%d" % i, "metrics_path": "/j%d" % i, "scheme": "http",
                     "basic_auth": {"username": user, "password_file": str(path)},
                     "static_configs": [{"targets": ["127.0.0.1:%d" % port]}]})
        expected["/j%d" % i] = (user, value)
    config = render("prometheus", "prometheus.yml.j2", _prometheus_config_data={
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": jobs})
    assert list(_loads(config)) == ["global", "scrape_configs"]  # jobs appended below land in the list
    for i, value in enumerate(CORPUS):
        path = tmp_path / ("raw%d" % i)
        path.write_text(value, encoding="utf-8")
        user = value if not encode.refusals(value, ["basic_auth_user"]) else "raw%d" % i
        config += ("- job_name: %s\n  metrics_path: %s\n  scheme: http\n  basic_auth:\n    username: %s\n"
                   "    password_file: %s\n  static_configs:\n  - targets: [%s]\n"
                   % (encode.yaml_string("y%d" % i), encode.yaml_string("/y%d" % i), encode.yaml_string(user),
                      encode.yaml_string(str(path)), encode.yaml_string("127.0.0.1:%d" % port)))
        expected["/y%d" % i] = (user, value.strip())
    assert len(_loads(config)["scrape_configs"]) == len(expected)
    (tmp_path / "prometheus.yml").write_text(config, encoding="utf-8")
    procs.append(subprocess.Popen([prometheus, "--config.file=%s" % (tmp_path / "prometheus.yml"),
                                   "--storage.tsdb.path=%s" % (tmp_path / "data"),
                                   "--web.listen-address=127.0.0.1:%d" % free_port(), "--log.level=error"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    assert until(lambda: set(expected) <= set(http_recorder.seen), timeout=60), \
        sorted(set(expected) - set(http_recorder.seen))
    for path, (user, password) in expected.items():
        assert _credentials(http_recorder.seen[path]) == (user, password), path
    trimmed = [v for v in CORPUS if v != v.strip()]
    assert trimmed and all(_credentials(http_recorder.seen["/y%d" % CORPUS.index(v)])[1] != v for v in trimmed)


@pytest.mark.parametrize("value", PROMETHEUS_REFUSED)
def test_prometheus_password_file_refuses_outer_white_space(value):
    with pytest.raises(AnsibleFilterError, match="prometheus_password: .*white space"):
        task_template("prometheus", "ansible.builtin.copy", "_prometheus_password_file").render(
            _prometheus_auth_password=value)


# --- Alertmanager: SMTP AUTH with the rendered password --------------------------------------

class _SMTP(socketserver.StreamRequestHandler):
    """Just enough ESMTP for Alertmanager's email notifier: AUTH PLAIN recorded per RCPT."""

    def _say(self, line):
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        auth, rcpt, in_data = None, None, False
        self._say("220 hs-test ESMTP")
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if in_data:
                if line == ".":
                    in_data = False
                    self.server.seen.setdefault(rcpt, auth)
                    self._say("250 2.0.0 queued")
                continue
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.wfile.write(b"250-hs-test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
            elif verb == "AUTH":
                parts = line.split(" ")
                if len(parts) < 3:
                    self._say("334 ")
                    parts.append(self.rfile.readline().decode().strip())
                auth = base64.b64decode(parts[2]).split(b"\0")
                self._say("235 2.7.0 Authentication successful")
            elif verb == "RCPT":
                rcpt = line.split(":", 1)[1].strip().strip("<>")
                self._say("250 2.1.5 ok")
            elif verb == "DATA":
                in_data = True
                self._say("354 go ahead")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 ok")


class _SMTPServer(socketserver.ThreadingTCPServer):
    request_queue_size = 128  # every receiver's notification at once


@pytest.fixture(name="smtp_server")
def fixture_smtp_server():
    server = _SMTPServer(("127.0.0.1", 0), _SMTP)
    server.daemon_threads = True
    server.seen = {}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_alertmanager_authenticates_with_the_rendered_password(tmp_path, smtp_server, procs):
    """alertmanager.yml.j2 through the real Alertmanager 0.25: the global smtp_auth_password
    (the role's path) and one receiver per corpus value (the same YAML reader and Secret
    type): the SMTP server sees every password exactly."""
    smarthost = "127.0.0.1:%d" % smtp_server.server_address[1]
    data = _alertmanager_data(CORPUS[0], smarthost)
    data["route"]["routes"] = []
    for i, value in enumerate(CORPUS):
        data["receivers"].append({"name": "r%d" % i, "email_configs": [
            {"to": "r%d@example.org" % i, "send_resolved": False, "auth_username": "am", "auth_password": value}]})
        data["route"]["routes"].append({"receiver": "r%d" % i, "matchers": ['alertname="a%d"' % i]})
    (tmp_path / "alertmanager.yml").write_text(render("alertmanager", "alertmanager.yml.j2",
                                                      _alertmanager_config_data=data), encoding="utf-8")
    port = free_port()
    procs.append(subprocess.Popen(debian.alertmanager_command([
        "--config.file=%s" % (tmp_path / "alertmanager.yml"), "--storage.path=%s" % (tmp_path / "data"),
        "--cluster.listen-address=", "--web.listen-address=127.0.0.1:%d" % port, "--log.level=error"],
        str(tmp_path / "share")), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    alerts = [{"labels": {"alertname": "a%d" % i}} for i in range(len(CORPUS))] + [{"labels": {"alertname": "x"}}]
    body = json.dumps(alerts).encode()

    def call(path, data=None):
        try:
            req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,  # noqa: S310
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (loopback http)
                return resp.status == 200
        except OSError:
            return False

    # posted once ready (the configuration loaded and the dispatcher running)
    assert until(lambda: call("/-/ready"), timeout=30)
    assert call("/api/v2/alerts", body)
    wanted = {"r%d@example.org" % i: value for i, value in enumerate(CORPUS)}
    wanted["ops@example.org"] = CORPUS[0]
    assert until(lambda: set(wanted) <= set(smtp_server.seen), timeout=60), sorted(set(wanted) - set(smtp_server.seen))
    for rcpt, value in wanted.items():
        assert smtp_server.seen[rcpt] == [b"", b"am", value.encode("utf-8")], rcpt
