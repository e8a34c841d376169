"""A site.yml run against a throw-away inventory whose hosts cannot be reached.

The hosts point at a closed local port: when the preflight lets a run through, the first play
that contacts a host reports it UNREACHABLE, so "UNREACHABLE" in the output means "the
preflight passed" and its absence means "stopped before any host was contacted".
"""

import copy
import os
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
SIZES = {"loadbalancers": 1, "app": 2, "etcd": 3, "postgres": 3, "redis": 3, "monitoring": 1, "backup": 1}
CONNECTION = {"ansible_port": 9, "ansible_user": "admin", "ansible_connection": "ssh",
              "ansible_ssh_common_args": "-o ConnectTimeout=2"}
# What a sound inventory sets for the tiers to fit together (the app's database and user).
# The app reads its database and Redis passwords from the clusters' generated files (the preflight
# refuses an app connection with neither a password nor a cluster to read it from).
STACK_VARS = {"postgresql_databases": [{"name": "app", "owner": "app"}],
              "postgresql_users": [{"name": "app", "databases": ["app"], "access": "owner"}],
              "app_db_password_secret_cluster": "hardened-stack", "app_redis_password_secret_cluster": "redis"}


def sound_inventory(extra_vars=None):
    """``{"vars": {...}, "groups": {group: {host: hostvars}}}``: a valid production-shaped
    inventory (one host per address, every tier sized right)."""
    groups = {}
    n = 10
    for group, size in SIZES.items():
        groups[group] = {}
        for i in range(1, size + 1):
            n += 1
            groups[group][f"{group}{i}"] = {"ansible_host": f"127.0.0.{n}"}
    data = {"vars": dict(CONNECTION, **STACK_VARS), "groups": groups}
    data["vars"].update(extra_vars or {})
    return copy.deepcopy(data)


def example_inventory(path):
    """inventories/example copied to ``path`` (a directory) with its addresses replaced by
    closed loopback ports (nothing outside this machine is contacted); returns ``path``."""
    src = os.path.join(ROOT, "inventories", "example")
    shutil.copytree(os.path.join(src, "group_vars"), path / "group_vars")
    with open(os.path.join(src, "hosts.yml"), encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    n = 10
    for group in data["all"]["children"].values():
        for hv in (group or {}).get("hosts", {}).values():
            if hv and "ansible_host" in hv:
                n += 1
                hv["ansible_host"] = f"127.0.0.{n}"
    data["all"].setdefault("vars", {}).update({"ansible_port": 9, "ansible_ssh_common_args": "-o ConnectTimeout=2"})
    (path / "hosts.yml").write_text(yaml.safe_dump(data))
    return path


def write_inventory(path, data):
    doc = {"all": {"vars": data["vars"], "children": {g: {"hosts": hosts} for g, hosts in data["groups"].items()}}}
    path.write_text(yaml.safe_dump(doc))
    return path


def run_site(inventory, *args):
    return run_playbook(inventory, "site.yml", *args)


def run_playbook(inventory, playbook, *args):
    """``ansible-playbook -i INVENTORY PLAYBOOK ARGS`` from the checkout: (rc, stdout + stderr)."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    res = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), str(playbook), *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return res.returncode, res.stdout + res.stderr
