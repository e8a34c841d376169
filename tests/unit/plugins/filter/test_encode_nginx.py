"""nginx: the htpasswd file and double-quoted directive parameters, read by a real nginx.

One nginx 1.22 (Debian 12's package unpacked, never installed: tests/unit/debian.py, which
tests/run.py runs first) serves on loopback:

- a location per corpus value, guarded by an htpasswd file rendered from the exporters role's
  own task (``htpasswd_user``) with the value as the user name and a bcrypt hash of the value
  as the password: the right credentials get 200, a wrong password 401;
- a response header per corpus value written with ``nginx_string``: the raw response carries
  the value byte for byte.

bcrypt hashes come from Debian's python3-bcrypt under /usr/bin/python3, the library the
exporters role hashes with on the hosts.
"""

import base64
import json
import socket
import subprocess

import debian
import pytest
from loopback import free_port, until
from test_encode_corpus import CORPUS, task_template

from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.module_utils import encode

USERS = [v for v in CORPUS if not encode.refusals(v, ["htpasswd_user", "bcrypt_password"])]
HEADERS = [v for v in CORPUS if not encode.refusals(v, ["nginx_string"])]


def bcrypt_hashes(passwords):
    """A bcrypt hash (cost 4) of every password, in one run of Debian's python3-bcrypt."""
    script = ("import bcrypt, json, sys\n"
              "print(json.dumps([bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()\n"
              "                  for p in json.load(sys.stdin)]))")
    res = subprocess.run([debian.PYTHON, "-c", script], input=json.dumps(passwords), capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, check=True)
    return json.loads(res.stdout)


def get(port, path, credentials=None):
    """Status line and raw header lines, exactly as nginx wrote them."""
    lines = ["GET %s HTTP/1.0" % path, "Host: 127.0.0.1"]
    if credentials:
        lines.append("Authorization: Basic " + base64.b64encode(("%s:%s" % credentials).encode("utf-8")).decode())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    return head[0].decode(), head[1:]


def test_corpus_reaches_nginx():
    assert len(USERS) > 20 and len(HEADERS) > 20


@pytest.mark.parametrize(("value", "what"), [("$HOME", r"hold \$"), ("a\nb", "control"), ("cr\r", "control"),
                                             ("x" * 4094, "longer than")])
def test_nginx_string_refuses(value, what):
    with pytest.raises(encode.EncodeError, match=what):
        encode.nginx_string(value)


def test_nginx_string_rules():
    assert encode.nginx_string('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert encode.nginx_string("tab\there; {x} #y 'z' ä") == "\"tab\there; {x} #y 'z' ä\""


@debian.needs("python3", "python3-bcrypt")
def test_nginx_reads_htpasswd_and_strings(tmp_path, procs):
    nginx = debian.needed("nginx", "usr/sbin/nginx")
    hashes = dict(zip(USERS + ["r"], bcrypt_hashes(USERS + ["r"]), strict=True))
    htpasswd = task_template("exporters", "ansible.builtin.copy", "_exporters_nginx_htpasswd")
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "ok.txt").write_text("ok\n", encoding="utf-8")
    locations = []
    for i, value in enumerate(USERS):
        slots = [value, value + "-rotation"]
        path = tmp_path / ("htpasswd%d" % i)
        path.write_text(htpasswd.render(_exporters_auth_slots=slots,
                                        _exporters_auth_users={value: hashes[value], slots[1]: hashes["r"]}),
                        encoding="utf-8")
        locations.append("location /u%d/ { auth_basic %s; auth_basic_user_file %s; alias %s/; }"
                         % (i, encode.nginx_string("metrics"), encode.nginx_string(str(path)),
                            tmp_path / "www"))
    headers = "".join("add_header X-T%d %s always;\n" % (i, encode.nginx_string(v)) for i, v in enumerate(HEADERS))
    port = free_port()
    temp = " ".join("%s_temp_path %s;" % (k, tmp_path / k)
                    for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        "daemon off;\nmaster_process off;\npid %s;\nerror_log stderr crit;\nevents { worker_connections 64; }\n"
        "http {\naccess_log off;\n%s\nserver {\nlisten 127.0.0.1:%d;\n%s%s\n"
        "location = /h { root %s; try_files /ok.txt =404; }\n}\n}\n"
        % (tmp_path / "nginx.pid", temp, port, headers, "\n".join(locations), tmp_path / "www"), encoding="utf-8")
    procs.append(subprocess.Popen([nginx, "-e", "stderr", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def answers():
        try:
            return get(port, "/h")[0].endswith("200 OK")
        except OSError:
            return False

    assert until(answers, timeout=20)
    lines = get(port, "/h")[1]
    got = dict(line.split(b": ", 1) for line in lines if line.startswith(b"X-T"))
    for i, value in enumerate(HEADERS):
        assert got[b"X-T%d" % i] == value.encode("utf-8"), value
    for i, value in enumerate(USERS):
        assert get(port, "/u%d/ok.txt" % i, (value, value))[0].endswith("200 OK"), value
        assert get(port, "/u%d/ok.txt" % i, (value, value + "x"))[0].endswith("401 Unauthorized"), value
        assert get(port, "/u%d/ok.txt" % i, (value + "-rotation", "r"))[0].endswith("200 OK"), value


@pytest.mark.parametrize("user", ["#ops", "a:b", "l\nf"])
def test_htpasswd_task_refuses_what_nginx_cannot_match(user):
    with pytest.raises(AnsibleFilterError, match="htpasswd_user: "):
        task_template("exporters", "ansible.builtin.copy", "_exporters_nginx_htpasswd").render(
            _exporters_auth_slots=[user], _exporters_auth_users={user: "$2b$04$x"})
