"""Helpers shared by the stack scenario's verifiers (test_stack.py, test_monitoring.py).

Hosts are reached over SSH with the connection Molecule wrote; requests are made with the
hosts' python3 (they carry no curl), basic-auth credentials travel on stdin, never on a
command line; playbook() reruns the scenario's converge (the site playbook) with the
scenario's environment, so from the collection installed from its tarball.
"""

import json
import os
import shlex
import subprocess
import sys
import time

import testinfra
import yaml

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
sys.path.insert(0, os.path.join(PROJECT, "molecule", "_shared"))
import verifier  # noqa: E402  (molecule/_shared/verifier.py)
from lab import leaks  # noqa: E402  (the stack's secrets, known once; verifier put the checkout on sys.path)
CA = "/etc/hardened-stack/pki/ca.crt"
CLIENT = "stack-client"
MON = "stack-mon1"
SSH_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
# fetch()'s own ssh connections, kept open between requests.
MUX = ["-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", "ControlPersist=60",
       "-o", "ControlPath=/tmp/hs-stack-verify-%C"]


def _instances():
    with open(INVENTORY, encoding="utf-8") as fh:
        return yaml.safe_load(fh)["all"]["hosts"]


INSTANCES = _instances()
PLATFORMS = verifier.platforms(SCENARIO)
# Where each host's services listen and peers dial (molecule.yml cluster_address); MGMT is its
# management address: SSH, and the public entry (nginx 80/443) on the load balancer only.
ADDR = {name: verifier.cluster_address(name, SCENARIO) for name in PLATFORMS}
MGMT = {name: verifier.management_address(name, SCENARIO) for name in PLATFORMS}


def in_group(group):
    return verifier.group(group, SCENARIO)


# The port map (roles/_common/defaults/main.yml): ports are never re-declared here.
with open(os.path.join(PROJECT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as _fh:
    PORT_MAP = yaml.safe_load(_fh)["_common_port_map_defaults"]


def host(name):
    """A host over SSH with the connection Molecule wrote (the linked lab group_vars hold
    templated connection settings that testinfra's ansible backend would not render)."""
    inst = INSTANCES[name]
    return testinfra.get_host(f"ssh://{inst['ansible_user']}@{inst['ansible_host']}",
                              ssh_identity_file=inst["ansible_private_key_file"], sudo=True,
                              ssh_extra_args=SSH_ARGS)


# Requests with python3's urllib, several URLs at once (a filtered port costs its timeout
# once, not once per URL). Prints {url: [status, body]}; status "000" = no HTTP answer
# (refused, filtered, TLS handshake failed), the body then names the error.
PROBE = """import base64, json, ssl, sys, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor
method, cafile, cert, key, timeout = sys.argv[1:6]
urls = sys.argv[6:]
auth = sys.stdin.read().strip()
ctx = ssl.create_default_context(cafile=cafile)
if cert:
    ctx.load_cert_chain(cert, key)
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None
opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
def get(url):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with opener.open(req, timeout=float(timeout)) as r:
            return [str(r.status), r.read().decode()]
    except urllib.error.HTTPError as e:
        return [str(e.code), e.read().decode()]
    except Exception as e:
        return ["000", type(e).__name__ + ": " + str(e)]
with ThreadPoolExecutor(max_workers=16) as pool:
    print(json.dumps(dict(zip(urls, pool.map(get, urls)))))
"""


def fetch(urls, *, on, method="GET", auth="", cert="", key="", timeout=10):
    """{url: (status, body)} of requests made from host ``on``. The basic-auth credentials
    reach the probe on stdin through ssh and sudo: never on a command line of the host (its
    process list, the sudo log)."""
    inst = INSTANCES[on]
    remote = (f"sudo -n python3 -c {shlex.quote(PROBE)} {method} {CA} {shlex.quote(cert)} {shlex.quote(key)} "
              f"{timeout} " + " ".join(shlex.quote(u) for u in urls))
    res = subprocess.run(["ssh", "-i", inst["ansible_private_key_file"], *SSH_ARGS.split(), *MUX,
                          f"{inst['ansible_user']}@{inst['ansible_host']}", remote],
                         input=auth, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    return {url: tuple(r) for url, r in json.loads(res.stdout).items()}


def request(url, *, on, **kw):
    """(status, body) of one request (see fetch)."""
    return fetch([url], on=on, **kw)[url]


def password():
    """The basic-auth password of Prometheus' scrapes and web API, as the monitoring host gets
    it (prometheus_auth_password, else the exporters role's generated file)."""
    return verifier.secret("monitoring", on=MON, vault="prometheus_auth_password", scenario=SCENARIO)


def known_secrets():
    """Every password of the stack (lab/leaks.py: the generated files and the inventory's
    vault-style values)."""
    return leaks.known_secrets(INVENTORY, env=verifier.molecule_env(SCENARIO), minimum=1)


def credentials():
    return f"prometheus:{password()}"


PROM = verifier.url("https", ADDR[MON], PORT_MAP["prometheus"]["port"])


def prometheus(path):
    """The ``data`` of a Prometheus API answer, asked from the monitoring host."""
    status, body = request(f"{PROM}{path}", on=MON, auth=credentials())
    assert status == "200", body
    return json.loads(body)["data"]


def wait_for(check, timeout=120, step=3):
    """Poll ``check`` until it returns True; fail with its last answer."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = check()
        if last is True:
            return
        time.sleep(step)
    raise AssertionError(f"condition not met in {timeout} s: {last}")


def patroni_members():
    """Patroni's view of the cluster, from the first member whose REST API answers (asked
    from stack-pg1: a member whose Patroni is stopped does not answer)."""
    port = PORT_MAP["patroni_api"]["port"]
    answers = fetch([verifier.url("https", ADDR[name], port, "/cluster") for name in in_group("postgres")],
                    on="stack-pg1")
    for status, body in answers.values():
        if status == "200":
            return json.loads(body)["members"]
    raise AssertionError(f"no Patroni REST API answered: {answers}")


def member_host(member):
    """The scenario host of a Patroni member (its name, else its cluster address)."""
    if member["name"] in ADDR:
        return member["name"]
    return {address: name for name, address in ADDR.items()}[verifier.cluster_address_literal(member["host"])]


def streaming_replicas(members):
    # Patroni 3.0 (Debian 12) reports a streaming replica as "running", later ones "streaming".
    return [m for m in members if m["role"] in ("replica", "sync_standby")
            and m["state"] in ("running", "streaming") and m.get("lag", 0) != "unknown"]


def playbook(*args, timeout=2400):
    """Rerun the scenario's converge (the site playbook) with the scenario's environment."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    res = subprocess.run(["ansible-playbook", "-i", INVENTORY, os.path.join(SCENARIO, "converge.yml"), *args],
                         cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return res.returncode, res.stdout + res.stderr


recap = verifier.recap
recap_changed = verifier.recap_changed
