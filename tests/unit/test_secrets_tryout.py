"""Defects a new-user tryout of the secrets handling found (issue 16): the site preflight must

- name a value Ansible cannot template (an undefined ``vault_*`` variable, a ``{{ undefined }}``
  inside a value) instead of judging the value it could not see;
- refuse an app connection with neither a password nor a cluster to read one from;
- refuse a list or mapping where a password belongs;
- report a weak vault value once, under the variable set from it.

Pure-function tests of plugins/module_utils/inventory_checks.py and the filter, then real
``ansible-playbook`` runs (tests/unit/inventory_harness.py: "UNREACHABLE" means the preflight
let the run through). Values never reach a message.
"""

# ruff: noqa: S105, S106 (the passwords are the defects under test)
import json
import os
import shutil

import inventory_harness as harness
import pytest
import yaml

from ansible.errors import AnsibleError, AnsibleUndefinedVariable
from ansible_collections.hardened.stack.plugins.filter import preflight
from ansible_collections.hardened.stack.plugins.module_utils import inventory_checks as ic

GOOD = "Zs8qP1vX9wLm4TnR"
GROUPS = {"all": ["app1", "app2", "lb1", "pg1", "redis1"], "app": ["app1", "app2"], "loadbalancers": ["lb1"],
          "etcd": ["pg1"], "postgres": ["pg1"], "redis": ["redis1"]}
USERS = [{"name": "app", "databases": ["app"], "access": "owner"}]
WIRED = {"app_db_password_secret_cluster": "hardened-stack", "app_redis_password_secret_cluster": "redis"}


def _defaults():
    return {"app_source": "demo", "app_db_user": "app", "app_db_name": "app", "app_db_password": "",
            "app_redis_password": "", "app_db_password_secret_cluster": "", "app_redis_password_secret_cluster": "",
            "postgresql_users": [], "postgresql_databases": []}


def _hostvars(common=None, **per_host):
    out = {}
    for i, host in enumerate(GROUPS["all"], 1):
        out[host] = dict({"ansible_host": "10.0.0.%d" % i, "postgresql_users": USERS,
                          "postgresql_databases": [{"name": "app", "owner": "app"}]}, **(common or {}))
        out[host].update(per_host.get(host, {}))
    return out


with open(os.path.join(harness.ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as _fh:
    PORT_MAP = yaml.safe_load(_fh)["_common_port_map_defaults"]


def _problems(hostvars, lab=False):
    return ic.inventory_problems({k: v for k, v in GROUPS.items() if k != "all"}, hostvars, PORT_MAP, _defaults(),
                                 lab=lab)


# --- A: a value Ansible cannot template ---------------------------------------------------------

def test_an_unresolved_value_is_named_and_no_check_judges_it():
    hv = _hostvars(WIRED, pg1={"postgresql_users": ic.Unresolved("vault_app_db_password")},
                   app1={"app_db_password": ic.Unresolved("vault_app_db_password")},
                   app2={"app_db_password": ic.Unresolved("vault_app_db_password")})
    out = _problems(hv)
    assert out[0].startswith("app1, app2: app_db_password cannot be resolved: it uses vault_app_db_password, "
                             "which is undefined")
    assert out[1].startswith("pg1: postgresql_users cannot be resolved: it uses vault_app_db_password")
    assert len(out) == 2, out  # no "app_db_user 'app' is not in postgresql_users (none)", no "empty"
    assert "<unresolved>" not in " ".join(out)


def test_an_unresolved_value_without_a_name_still_stops_the_run():
    out = _problems(_hostvars(WIRED, app1={"ansible_user": ic.Unresolved(),
                                           "redis_admin_password": ic.Unresolved()}))
    assert out == [
        "app1: ansible_user cannot be resolved: Ansible could not template it (an undefined variable or a failing "
        "lookup or filter in it). Fix: correct ansible_user. The checks that read ansible_user were skipped; "
        "its value is never shown.",
        "app1: redis_admin_password cannot be resolved: Ansible could not template it (an undefined variable or a "
        "failing lookup or filter in it). Fix: correct redis_admin_password. The checks that read "
        "redis_admin_password were skipped; its value is never shown."]


def test_the_required_secrets_check_does_not_call_an_unresolved_value_empty():
    hv = _hostvars(dict(WIRED, redis_generate_passwords=False, redis_app_password=GOOD, redis_replication_password=GOOD,
                        redis_sentinel_password=GOOD, redis_exporter_password=GOOD),
                   redis1={"redis_admin_password": ic.Unresolved("vault_redis_admin_password")})
    out = _problems(hv)
    assert len(out) == 1 and out[0].startswith("redis1: redis_admin_password cannot be resolved"), out


class _HostVars(dict):
    """Ansible 2.19 hands an unresolvable value over as a marker that raises when used."""

    def __getitem__(self, name):
        value = dict.__getitem__(self, name)
        if isinstance(value, Exception):
            raise value
        return value


def test_the_filter_turns_a_templating_error_into_a_marker_with_the_undefined_name():
    host_vars = _HostVars(app_db_password=AnsibleUndefinedVariable("'vault_app_db_password' is undefined"),
                          redis_app_password=AnsibleUndefinedVariable("something else went wrong"),
                          app_db_user="app", unrelated=AnsibleUndefinedVariable("'x' is undefined"))
    host_vars["exporters_redis_password"] = AnsibleError(
        "hardened.stack.secret: secret /home/ops/s/redis/redis/exporter does not exist (the password of Redis/Sentinel "
        "ACL user exporter). It is created by the hardened.stack.redis role: run it first (site.yml does), or set "
        "redis_exporter_password from a vault")
    plain = preflight._plain_vars(host_vars, set())
    # a consumer's lookup of a secret the run produces later: not an error, and not judged either
    assert isinstance(plain["exporters_redis_password"], ic.Unresolved) and plain["exporters_redis_password"].pending
    assert _problems(_hostvars(WIRED, app1={"exporters_redis_password": plain["exporters_redis_password"]})) == []
    assert isinstance(plain["app_db_password"], ic.Unresolved)
    assert plain["app_db_password"].undefined == "vault_app_db_password"
    assert isinstance(plain["redis_app_password"], ic.Unresolved) and plain["redis_app_password"].undefined is None
    assert plain["app_db_user"] == "app" and "unrelated" not in plain


# --- B: an app connection without a password ----------------------------------------------------

def test_an_app_connection_with_neither_password_nor_cluster_is_refused():
    out = _problems(_hostvars({"app_db_password": "", "app_redis_password": ""}))
    assert out == [
        "app1, app2: app_db_password is empty and app_db_password_secret_cluster is not set: the application would "
        "connect to PostgreSQL without a password. Fix: set app_db_password from the vault (inventories/example: "
        "vault_app_db_password), or set app_db_password_secret_cluster to the postgresql_cluster_name whose "
        "generated password the app reads.",
        "app1, app2: app_redis_password is empty and app_redis_password_secret_cluster is not set: the application "
        "would connect to Redis without a password. Fix: set app_redis_password from the vault (inventories/example: "
        "vault_redis_app_password), or set app_redis_password_secret_cluster to the redis_cluster_name whose "
        "generated password the app reads."]


def test_an_app_connection_with_a_password_or_a_cluster_passes():
    assert _problems(_hostvars(WIRED)) == []
    assert _problems(_hostvars({"app_db_password": GOOD, "app_redis_password": GOOD})) == []
    # a command wires its own connections; no postgres/redis group: no connection
    assert _problems(_hostvars({"app_source": "command"})) == []
    only_app = ic.inventory_problems({"app": ["app1"]}, {"app1": {"ansible_host": "10.0.0.1"}}, PORT_MAP, _defaults())
    assert [p for p in only_app if "app_db_password" in p or "app_redis_password" in p] == []


# --- C: a list or mapping where a password belongs ----------------------------------------------

def test_a_password_that_yaml_read_as_a_list_or_mapping_is_refused():
    hv = _hostvars(WIRED, redis1={"redis_app_password": ["SECRETVALUE1", "x"]},
                   app1={"app_redis_password": ["SECRETVALUE1", "x"]}, app2={"app_redis_password": {"SECRETVALUE1": 1}},
                   pg1={"postgresql_users": [dict(USERS[0], password=["SECRETVALUE1"])],
                        "backup_repo_cipher_pass": True})
    out = _problems(hv)
    text = " ".join(out)
    assert "SECRETVALUE1" not in text
    for name, kind in (("redis1: redis_app_password", "a list"), ("app1: app_redis_password", "a list"),
                       ("app2: app_redis_password", "a mapping"), ("pg1: postgresql_users[app].password", "a list"),
                       ("pg1: backup_repo_cipher_pass", "a boolean")):
        assert any(m.startswith(name + " cannot be written to") and "it is %s, not a string" % kind in m
                   for m in out), (name, out)
    assert len(out) == 5, out


def test_a_number_in_a_plain_setting_is_still_carried():
    assert _problems(_hostvars(dict(WIRED, app_environment={"WORKERS": 4}))) == []


# --- D: a weak vault value, once ------------------------------------------------------------------

def test_a_weak_vault_value_is_reported_once_under_the_variables_set_from_it():
    hv = _hostvars(dict(WIRED, vault_redis_app_password="changeme", vault_app_db_password="s3cr3t"),
                   redis1={"redis_app_password": "changeme"}, app1={"app_redis_password": "changeme"},
                   app2={"app_redis_password": "changeme"})
    out = _problems(hv)
    assert out == [
        "app1, app2, redis1: app_redis_password, redis_app_password (set from vault_redis_app_password) are a "
        "default or demo password. Fix: put a strong value in vault_redis_app_password (the vault).",
        "every host: vault_app_db_password is short (< 12 characters as Ansible rendered it: a vault value "
        "containing {{ or {% is rendered as a template unless it is tagged !unsafe in the vault file, see "
        "docs/secrets.md). Fix: put a strong value in vault_app_db_password (the vault)."]


# --- the same, through ansible-playbook -----------------------------------------------------------

def _example(tmp_path, vault):
    """inventories/example with closed loopback ports, ``vault`` as its group_vars/all/vault.yml
    (unencrypted here: the values below are the test's own)."""
    harness.example_inventory(tmp_path)
    if vault is not None:
        (tmp_path / "group_vars" / "all" / "vault.yml").write_text(vault)
    rc, out = harness.run_playbook(tmp_path, "playbooks/preflight.yml")
    return rc, " ".join(out.split()), out


@pytest.mark.parametrize("vault, expected", [
    pytest.param(None, ["app_db_password cannot be resolved: it uses vault_app_db_password, which is undefined",
                        "postgresql_users cannot be resolved: it uses vault_app_db_password",
                        "app_redis_password cannot be resolved: it uses vault_redis_app_password"], id="no-vault-file"),
    pytest.param("vault_redis_app_password: Hb6kD3sF9gJ5aQ0e\n",
                 ["app_db_password cannot be resolved: it uses vault_app_db_password"], id="vault-lacks-a-variable"),
    pytest.param("vault_app_db_password: 'Xq4vN8pL2mR7tW1z{{ undefined_j }}'\n"
                 "vault_redis_app_password: Hb6kD3sF9gJ5aQ0e\n",
                 ["app_db_password cannot be resolved: it uses undefined_j, which is undefined"],
                 id="undefined-inside"),
    pytest.param('vault_app_db_password: ""\nvault_redis_app_password: ""\n',
                 ["app_db_password is empty and app_db_password_secret_cluster is not set",
                  "app_redis_password is empty and app_redis_password_secret_cluster is not set"], id="empty"),
    pytest.param("vault_app_db_password: Xq4vN8pL2mR7tW1z\nvault_redis_app_password: [Hb6kD3sF9gJ5aQ0e, x]\n",
                 ["redis_app_password cannot be written to", "it is a list, not a string"], id="list"),
])
def test_the_example_inventory_names_the_real_defect(tmp_path, vault, expected):
    rc, flat, out = _example(tmp_path, vault)
    assert rc != 0
    for text in expected:
        assert text in flat, out[-4000:]
    assert "is not in postgresql_users" not in flat
    assert "UNREACHABLE" not in out, "the preflight let the run through"
    for secret in ("Xq4vN8pL2mR7tW1z", "Hb6kD3sF9gJ5aQ0e"):
        assert secret not in out


def test_the_example_inventory_with_its_vault_values_passes(tmp_path):
    vault = {"vault_app_db_password": "Xq4vN8pL2mR7tW1z", "vault_redis_app_password": "Hb6kD3sF9gJ5aQ0e"}
    rc, _flat, out = _example(tmp_path, json.dumps(vault))
    assert rc != 0
    assert "UNREACHABLE" in out, out[-3000:]
    assert "inventory preflight" not in out


def test_the_lab_inventory_passes_the_inventory_check(tmp_path):
    """inventories/lab reads the app's passwords from the clusters' files (*_secret_cluster)."""
    shutil.copytree(os.path.join(harness.ROOT, "inventories", "lab"), tmp_path / "lab")
    with open(tmp_path / "lab" / "hosts.yml", encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    data["all"].setdefault("vars", {}).update({"ansible_port": 9, "ansible_ssh_common_args": "-o ConnectTimeout=2"})
    (tmp_path / "lab" / "hosts.yml").write_text(yaml.safe_dump(data))
    rc, out = harness.run_playbook(tmp_path / "lab", "playbooks/preflight.yml")
    assert "inventory preflight" not in out, out[-3000:]
    assert "app_db_password is empty" not in out
