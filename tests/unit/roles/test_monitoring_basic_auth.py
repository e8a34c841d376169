"""The monitoring basic auth and its rotation (issue 16, item 4) against the real programs.

exporter-toolkit (``basic_auth_users``) and nginx (htpasswd) hold one bcrypt hash per user,
so every server file holds two users, the auth user and ``<user>-rotation``, and Prometheus
moves from one to the other with its own password file per user (roles/exporters/README.md,
Secrets). These tests run the roles' own pieces, not copies:

- the hashing script of ``roles/exporters/tasks/auth_users.yml`` (its ``argv`` and its
  ``stdin`` template) under Debian's /usr/bin/python3 with python3-bcrypt, as on the hosts;
- ``web-config.yml.j2`` and the htpasswd ``copy`` task of ``htpasswd.yml``, rendered like
  Ansible renders them, read by Debian 12's prometheus-node-exporter 1.5.0 and nginx 1.22 on
  loopback (no restart, no reload between the steps: both read the files for every request);
- Debian 12's Prometheus 2.42 scraping that node exporter every second through accept, switch
  (one SIGHUP moves user and password file) and withdraw: not one scrape fails, and a wrong
  password file is seen at once (the check can fail);
- ``prometheus_clients.yml`` (who each Prometheus authenticates as, the withdraw guard) and
  ``client_now.yml`` + ``client.yml`` (which user Prometheus takes) through ansible-playbook.

The servers are Debian's packages unpacked, never installed (no service starts on the test
machine), and python3-bcrypt is installed: tests/unit/debian.py, which tests/run.py runs first.
"""

import base64
import datetime
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import debian
import jinja2
import pytest
import yaml
from loopback import free_port, until

from ansible.parsing.dataloader import DataLoader
from ansible.plugins.filter.core import FilterModule as CoreFilters
from ansible.template import Templar, trust_as_template
from ansible_collections.hardened.stack.plugins.filter import encode as flt

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TASKS = os.path.join(ROOT, "roles", "exporters", "tasks")

# A user name and passwords as users pick them (the preflight allows them: no ':' in the user,
# no white space at the ends of a password, at most 72 bytes).
USER = 'prométheus "scraper" #1'
SLOTS = [USER, USER + "-rotation"]
OLD = 'correct horse "battery" staple ü \\ $HOME'
NEW = "pässwörd: {{ not jinja }} #x %i `u` 😀"
COST = 10  # exporters_bcrypt_cost's default

pytestmark = debian.needs("python3", "python3-bcrypt")


# --- the roles' own pieces ------------------------------------------------------------------

def _load_tasks(name):
    with open(os.path.join(TASKS, name), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _walk(tasks):
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _walk(task.get(key))


def jinja():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROOT, "roles", "exporters", "templates")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True,
                             autoescape=False)  # noqa: S701 (configuration files, not HTML)
    env.filters.update(CoreFilters().filters())
    for name, func in flt.FilterModule().filters().items():
        env.filters["hardened.stack." + name] = func
    return env


def hash_users(mode, password, deployed, keep):
    """auth_users.yml's command: its script, fed with its own stdin template."""
    task = next(t for t in _load_tasks("auth_users.yml") if "ansible.builtin.command" in t)
    argv = task["ansible.builtin.command"]["argv"]
    assert argv[:2] == ["python3", "-c"]
    stdin = jinja().from_string(task["ansible.builtin.command"]["stdin"]).render(
        _exporters_auth_password_in=password, _exporters_auth_slots=SLOTS, _exporters_auth_mode=mode,
        _exporters_scrape_users=keep, _exporters_auth_deployed=deployed, exporters_bcrypt_cost=COST)
    res = subprocess.run([debian.PYTHON, "-c", argv[2]], input=stdin, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, check=True)
    return json.loads(res.stdout)


def web_config(users, cert, key):
    return jinja().get_template("web-config.yml.j2").render(
        ansible_managed="Ansible managed", exporters_web_tls_cert=cert, exporters_web_tls_key=key,
        _exporters_auth_slots=SLOTS, _exporters_auth_users=users)


def htpasswd(users):
    content = next(t["ansible.builtin.copy"]["content"] for t in _walk(_load_tasks("htpasswd.yml"))
                   if "htpasswd" in str(t.get("ansible.builtin.copy", {}).get("dest", "")))
    return jinja().from_string(content).render(_exporters_auth_slots=SLOTS, _exporters_auth_users=users)


def password_file_content(password):
    """The content the prometheus role's client.yml writes to a password file."""
    with open(os.path.join(ROOT, "roles", "prometheus", "tasks", "client.yml"), encoding="utf-8") as fh:
        task = next(t for t in yaml.safe_load(fh) if "ansible.builtin.copy" in t)
    return jinja().from_string(task["ansible.builtin.copy"]["content"]).render(_prometheus_auth_password=password)


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)  # as Ansible writes: a complete file renamed into place


def ansible_eval(expression, **variables):
    """``expression`` (a task file's Jinja, as it stands there) templated by Ansible itself."""
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template(expression))


def block_var(tasks_file, name):
    """The value of block variable ``name`` in ``roles/exporters/tasks/<tasks_file>``."""
    found = [t["vars"][name] for t in _walk(_load_tasks(tasks_file)) if name in (t.get("vars") or {})]
    assert len(found) == 1, (tasks_file, name, found)
    return found[0]


def read_back(tasks_file, text, register):
    """What the task file learns from the deployed file ``text`` (its slurp result)."""
    content = base64.b64encode(text.encode("utf-8")).decode()
    return ansible_eval(block_var(tasks_file, "_exporters_auth_deployed"), **{register: {"content": content}})


# --- servers on loopback (free_port, until and the ``procs`` fixture: tests/unit/loopback.py) ---

@pytest.fixture(scope="module", name="tls")
def fixture_tls(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = str(folder / "tls.crt"), str(folder / "tls.key")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return cert_path, key_path


def status(url, user, password, ca=None):
    """HTTP status of GET url with basic auth (user and password as UTF-8, as Go and curl send
    them); None while nothing listens."""
    req = urllib.request.Request(url)  # noqa: S310 (test URL)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    ctx = ssl.create_default_context(cafile=ca) if ca else None
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:  # noqa: S310 (test URL)
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None  # not listening (yet)


def start_node_exporter(procs, tmp, tls, users):
    binary = debian.needed("prometheus-node-exporter", "usr/bin/prometheus-node-exporter")
    config = os.path.join(tmp, "web-config.yml")
    write(config, web_config(users, *tls))
    port = free_port()
    procs.append(subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={config}",
                                   "--collector.disable-defaults", "--collector.time"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    url = f"https://127.0.0.1:{port}/metrics"
    assert until(lambda: status(url, USER, "x", tls[0]) == 401), "node exporter did not start"
    return url, config, port


# --- the hashing script ---------------------------------------------------------------------

def test_auth_users_script_keeps_what_is_wanted_and_hashes_the_rest():
    def verifies(stored, password):
        """bcrypt.checkpw of Debian's python3-bcrypt (the library the script hashed with)."""
        res = subprocess.run([debian.PYTHON, "-c", "import bcrypt, sys; a = sys.stdin.buffer.read().split(b'\\0'); "
                              "print(bcrypt.checkpw(a[1], a[0]))"], input=stored.encode() + b"\0" + password.encode(),
                             capture_output=True, env={"PATH": "/usr/bin:/bin"}, check=True)
        return res.stdout.strip() == b"True"

    # First run: both users get the password, the auth user logs in.
    first = hash_users("accept", OLD, {}, [USER])
    assert set(first["users"]) == set(SLOTS) and first["login"] == USER
    assert all(verifies(first["users"][u], OLD) for u in SLOTS)
    # A rerun keeps every hash (no file change).
    assert hash_users("accept", OLD, first["users"], [USER]) == first
    # accept: the user Prometheus uses keeps its (old) hash, the other one takes the new password.
    accepted = hash_users("accept", NEW, first["users"], [USER])
    assert accepted["users"][USER] == first["users"][USER]
    assert verifies(accepted["users"][SLOTS[1]], NEW) and accepted["login"] == SLOTS[1]
    assert hash_users("accept", NEW, accepted["users"], [USER]) == accepted
    # withdraw: both users verify the new password only; the old one is refused; then stable.
    withdrawn = hash_users("withdraw", NEW, accepted["users"], [SLOTS[1]])
    assert withdrawn["users"][SLOTS[1]] == accepted["users"][SLOTS[1]]
    assert all(verifies(withdrawn["users"][u], NEW) and not verifies(withdrawn["users"][u], OLD) for u in SLOTS)
    assert withdrawn["login"] == USER
    assert hash_users("withdraw", NEW, withdrawn["users"], [SLOTS[1]]) == withdrawn
    # The next rotation starts from Prometheus on the rotation user: the auth user takes it.
    nxt = hash_users("accept", "third", withdrawn["users"], [SLOTS[1]])
    assert nxt["users"][SLOTS[1]] == withdrawn["users"][SLOTS[1]] and verifies(nxt["users"][USER], "third")
    # Two Prometheus servers on both users with an old password: no user left, no login
    # (the task file then fails with its message instead of refusing one of them).
    assert hash_users("accept", "fourth", accepted["users"], SLOTS)["login"] == ""


def test_deployed_users_are_read_back_so_a_rerun_keeps_every_hash(tls):
    users = hash_users("accept", OLD, {}, [USER])["users"]
    assert read_back("web_config.yml", web_config(users, *tls), "_exporters_web_current") == users
    assert read_back("htpasswd.yml", htpasswd(users), "_exporters_htpasswd_current") == users
    # nothing deployed yet (the slurp failed): no users
    assert ansible_eval(block_var("web_config.yml", "_exporters_auth_deployed"), _exporters_web_current={}) == {}
    assert ansible_eval(block_var("htpasswd.yml", "_exporters_auth_deployed"), _exporters_htpasswd_current={}) == {}
    # a file from before the rotation user (one user) is read as it stands
    one = {USER: users[USER]}
    assert read_back("htpasswd.yml", f"{USER}:{users[USER]}\n", "_exporters_htpasswd_current") == one


# --- node exporter (exporter-toolkit) and nginx read the files for every request ------------

def test_node_exporter_accepts_both_passwords_then_refuses_the_old_one(tls, procs, tmp_path):
    ca = tls[0]
    steady = hash_users("accept", OLD, {}, [USER])
    url, config, _port = start_node_exporter(procs, str(tmp_path), tls, steady["users"])
    assert [status(url, u, OLD, ca) for u in SLOTS] == [200, 200]
    assert status(url, USER, NEW, ca) == 401

    # accept (Prometheus authenticates as USER with OLD): the rewritten file is read at once.
    accepted = hash_users("accept", NEW, steady["users"], [USER])
    write(config, web_config(accepted["users"], *tls))
    assert until(lambda: status(url, SLOTS[1], NEW, ca) == 200)
    assert status(url, USER, OLD, ca) == 200, "the old password must still be accepted during accept"
    assert status(url, SLOTS[1], OLD, ca) == 401
    assert status(url, USER, NEW, ca) == 401

    # withdraw (Prometheus moved to the rotation user): the old password is refused.
    withdrawn = hash_users("withdraw", NEW, accepted["users"], [SLOTS[1]])
    write(config, web_config(withdrawn["users"], *tls))
    assert until(lambda: status(url, USER, OLD, ca) == 401)
    assert [status(url, u, NEW, ca) for u in SLOTS] == [200, 200]
    assert [status(url, u, OLD, ca) for u in SLOTS] == [401, 401]
    # The file carries the awkward user name as YAML that loads back to the same users.
    with open(config, encoding="utf-8") as fh:
        assert list(yaml.safe_load(fh)["basic_auth_users"]) == SLOTS


def test_nginx_htpasswd_accepts_both_passwords_then_refuses_the_old_one(procs, tmp_path):
    nginx = debian.needed("nginx", "usr/sbin/nginx")
    tmp = str(tmp_path)
    users = hash_users("accept", OLD, {}, [USER])["users"]
    passwd = os.path.join(tmp, "htpasswd")
    write(passwd, htpasswd(users))
    port = free_port()
    os.makedirs(os.path.join(tmp, "www"))
    write(os.path.join(tmp, "www", "metrics"), "up 1\n")
    with open(os.path.join(tmp, "nginx.conf"), "w", encoding="utf-8") as fh:
        fh.write(f"""daemon off; master_process off; pid {tmp}/nginx.pid; error_log stderr;
events {{}}
http {{
    access_log off;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        auth_basic "metrics";
        auth_basic_user_file {passwd};
        # a file, not "return": return answers in the rewrite phase, before auth_basic checks
        root {tmp}/www;
    }}
}}
""")
    procs.append(subprocess.Popen([nginx, "-p", tmp, "-c", os.path.join(tmp, "nginx.conf")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    url = f"http://127.0.0.1:{port}/metrics"
    assert until(lambda: status(url, USER, OLD) == 200), "nginx did not start"
    assert status(url, SLOTS[1], OLD) == 200 and status(url, USER, NEW) == 401 and status(url, "other", OLD) == 401

    accepted = hash_users("accept", NEW, users, [USER])["users"]
    write(passwd, htpasswd(accepted))
    assert until(lambda: status(url, SLOTS[1], NEW) == 200), "nginx reads htpasswd for every request"
    assert status(url, USER, OLD) == 200 and status(url, SLOTS[1], OLD) == 401

    withdrawn = hash_users("withdraw", NEW, accepted, [SLOTS[1]])["users"]
    write(passwd, htpasswd(withdrawn))
    assert until(lambda: status(url, USER, OLD) == 401)
    assert [status(url, u, NEW) for u in SLOTS] == [200, 200]
    assert [status(url, u, OLD) for u in SLOTS] == [401, 401]


# --- Prometheus through the whole rotation: no scrape fails --------------------------------

def prometheus_config(target, ca, user, password_file):
    """The shape the prometheus role renders (vars/main.yml: _prometheus_scrape_options)."""
    return yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "node", "scheme": "https",
                            "tls_config": {"ca_file": ca, "min_version": "TLS12"},
                            "basic_auth": {"username": user, "password_file": password_file},
                            "static_configs": [{"targets": [target]}]}]}, allow_unicode=True)


def api(base, path, **params):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (test URL)
        return json.loads(resp.read())["data"]


def test_prometheus_switch_refuses_no_scrape(tls, procs, tmp_path):
    tmp, ca = str(tmp_path), tls[0]
    binary = debian.needed("prometheus", "usr/bin/prometheus")
    steady = hash_users("accept", OLD, {}, [USER])
    _url, web, port = start_node_exporter(procs, tmp, tls, steady["users"])
    files = {USER: os.path.join(tmp, "auth.password"), SLOTS[1]: os.path.join(tmp, "auth-rotation.password")}
    write(files[USER], password_file_content(OLD))
    config = os.path.join(tmp, "prometheus.yml")
    write(config, prometheus_config(f"127.0.0.1:{port}", ca, USER, files[USER]))
    prom_port = free_port()
    prom = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(prom)
    base = f"http://127.0.0.1:{prom_port}"

    def health():
        try:
            return [t["health"] for t in api(base, "/api/v1/targets")["activeTargets"]]
        except (OSError, ValueError, KeyError):
            return None

    assert until(lambda: health() == ["up"], timeout=60), health()
    started = time.time()

    # accept: the node exporter takes NEW as the rotation user, keeps OLD for USER
    accepted = hash_users("accept", NEW, steady["users"], [USER])
    write(web, web_config(accepted["users"], *tls))
    time.sleep(3)
    # switch: the rotation user's own password file, then one reload for user and file
    write(files[SLOTS[1]], password_file_content(NEW))
    write(config, prometheus_config(f"127.0.0.1:{port}", ca, SLOTS[1], files[SLOTS[1]]))
    prom.send_signal(signal.SIGHUP)

    def running_user():
        loaded = yaml.safe_load(api(base, "/api/v1/status/config")["yaml"])
        return loaded["scrape_configs"][0]["basic_auth"]["username"]

    assert until(lambda: running_user() == SLOTS[1]), "Prometheus did not load the switched configuration"
    # wait_config.yml's condition, on this Prometheus' own answer
    with open(os.path.join(ROOT, "roles", "prometheus", "tasks", "wait_config.yml"), encoding="utf-8") as fh:
        wait = yaml.safe_load(fh)[0]
    with urllib.request.urlopen(base + "/api/v1/status/config", timeout=5) as resp:  # noqa: S310 (test URL)
        loaded = {"status": resp.status, "json": json.loads(resp.read())}
    for user, expected in ((SLOTS[1], True), (USER, False)):
        variables = {"_prometheus_loaded": loaded, "_prometheus_client_user": user,
                     **{k: trust_as_template(v) for k, v in wait["vars"].items()}}
        assert ansible_eval("{{ (" + wait["until"] + ") }}", **variables) is expected  # a conditional
    time.sleep(3)
    # withdraw: OLD refused, the unused password file removed
    withdrawn = hash_users("withdraw", NEW, accepted["users"], [SLOTS[1]])
    write(web, web_config(withdrawn["users"], *tls))
    os.remove(files[USER])
    time.sleep(4)

    window = int(time.time() - started) + 1
    result = api(base, "/api/v1/query", query=f'min_over_time(up{{job="node"}}[{window}s])')["result"]
    count = api(base, "/api/v1/query", query=f'count_over_time(up{{job="node"}}[{window}s])')["result"]
    assert int(count[0]["value"][1]) >= window - 3, "Prometheus scraped once a second through the rotation"
    assert result[0]["value"][1] == "1", "a scrape failed during accept, switch or withdraw"
    assert status(f"https://127.0.0.1:{port}/metrics", USER, OLD, ca) == 401

    # The check sees a refused scrape: the old password in the file Prometheus reads (it reads
    # it for every scrape, no reload) makes the next scrape fail.
    write(files[SLOTS[1]], password_file_content(OLD))
    assert until(lambda: health() == ["down"], timeout=15), "a refused scrape must show"


# --- the Ansible task files: who Prometheus is, the withdraw guard, the user it takes -------

PLAYBOOK = """
- hosts: monitoring
  gather_facts: false
  vars:
    _exporters_prometheus_config: "{{ tmp }}/prometheus.yml"
    _exporters_auth_slots: "{{ slots }}"
    _exporters_auth_password_in: "{{ password }}"
    _exporters_require_switched: true
    _prometheus_config: "{{ tmp }}/prometheus.yml"
    _prometheus_auth_users: "{{ slots }}"
    _prometheus_password_files: "{{ dict(slots | zip([tmp ~ '/auth.password', tmp ~ '/auth-rotation.password'])) }}"
    _prometheus_auth_password: "{{ password }}"
    _prometheus_group: "{{ lookup('ansible.builtin.pipe', 'id -gn') }}"
  tasks:
    - name: The roles' task files
      block:
        - ansible.builtin.include_tasks: "{{ root }}/roles/exporters/tasks/prometheus_clients.yml"
        - ansible.builtin.set_fact:
            guard: passed
      rescue:
        - ansible.builtin.set_fact:
            guard: "{{ ansible_failed_result.msg }}"
    - ansible.builtin.include_tasks: "{{ root }}/roles/prometheus/tasks/client.yml"
    - ansible.builtin.copy:
        content: "{{ {'keep': _exporters_scrape_users, 'guard': guard, 'user_now': _prometheus_user_now,
          'client': _prometheus_client_user} | to_json }}"
        dest: "{{ tmp }}/out.json"
        mode: "0600"
"""


def run_tasks(tmp, password):
    inventory = os.path.join(tmp, "hosts.yml")
    with open(inventory, "w", encoding="utf-8") as fh:
        yaml.safe_dump({"all": {"children": {"monitoring": {"hosts": {"mon1": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}}}, fh)
    with open(os.path.join(tmp, "play.yml"), "w", encoding="utf-8") as fh:
        fh.write(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"), ANSIBLE_NOCOLOR="1")
    # A vault value holding "{{" is tagged !unsafe (Ansible would template it otherwise).
    extra = os.path.join(tmp, "extra.yml")
    with open(extra, "w", encoding="utf-8") as fh:
        fh.write(yaml.safe_dump({"tmp": tmp, "root": ROOT, "slots": SLOTS}, allow_unicode=True)
                 + "password: !unsafe " + json.dumps(password, ensure_ascii=False) + "\n")
    res = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
                          os.path.join(tmp, "play.yml"), "-e", "@" + extra], capture_output=True, text=True,
                         env=env, check=False)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert OLD not in res.stdout and NEW not in res.stdout, "a password reached the output"
    with open(os.path.join(tmp, "out.json"), encoding="utf-8") as fh:
        return json.load(fh)


def test_task_files_find_the_user_guard_withdraw_and_choose_the_next_user(tmp_path):
    tmp = str(tmp_path)
    # Before any Prometheus: the auth user is kept, nothing to guard, Prometheus starts as it.
    out = run_tasks(tmp, NEW)
    assert out == {"keep": [USER], "guard": "passed", "user_now": "", "client": USER}

    # Prometheus runs as USER with OLD (scrape job and Alertmanager, as the role renders them).
    doc = yaml.safe_load(prometheus_config("127.0.0.1:1", "/ca", USER, f"{tmp}/auth.password"))
    doc["alerting"] = {"alertmanagers": [{"basic_auth": {"username": USER, "password_file": f"{tmp}/auth.password"}}]}
    write(f"{tmp}/prometheus.yml", "# Ansible managed\n" + yaml.safe_dump(doc, allow_unicode=True))
    write(f"{tmp}/auth.password", password_file_content(OLD))
    out = run_tasks(tmp, NEW)
    # The servers keep USER's hash; withdraw would be refused (Prometheus not switched); the
    # new password goes to the rotation user, whose file client.yml wrote.
    assert out["keep"] == [USER] and out["user_now"] == USER and out["client"] == SLOTS[1]
    assert "mon1" in out["guard"] and "secrets_switch" in out["guard"]
    with open(f"{tmp}/auth-rotation.password", encoding="utf-8") as fh:
        assert fh.read() == NEW
    # Unchanged password: Prometheus stays where it is, and withdraw may go on.
    out = run_tasks(tmp, OLD)
    assert out == {"keep": [USER], "guard": "passed", "user_now": USER, "client": USER}
