"""hardened_stack_controller_state and check mode (issue 20, point 4): with the state external no
producer mints a password or a CA, a missing one fails naming the variable to set; in check mode
neither the secret lookup nor the pki role's CA tasks write anything on the controller. Real
files in tmp_path, the real ``ansible``/``ansible-playbook`` with the collection of the checkout."""

import json
import os
import subprocess
import sys

import pytest
from ansible_collections.hardened.stack.plugins.module_utils import secrets
from lab import collection

BIN = os.path.dirname(sys.executable)
# .build/collections, where the checkout is linked as hardened.stack (lab/collection.py)
COLLECTIONS = collection.importable()


def everything(root):
    return sorted(os.path.relpath(os.path.join(d, n), str(root))
                  for d, dirs, files in os.walk(str(root)) for n in dirs + files)


def env(home):
    cfg = home / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    return dict(os.environ, HOME=str(home), ANSIBLE_CONFIG=str(cfg), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
                ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
                ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
                ANSIBLE_NOCOLOR="1", PYTHONWARNINGS="ignore")


@pytest.fixture(name="home")
def fixture_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return home


def lookup(home, expr, *, check=False, **extra):
    """(failed, msg, warnings) of ``ansible localhost [-C] -m debug -a msg=EXPR -e ...``."""
    args = [os.path.join(BIN, "ansible"), "localhost", "-m", "ansible.builtin.debug", "-a", json.dumps({"msg": expr})]
    args += ["-C"] if check else []
    for key, value in extra.items():
        args += ["-e", json.dumps({key: value})]
    res = subprocess.run(args, env=env(home), cwd=str(home), capture_output=True, text=True, timeout=120, check=False)
    try:
        host = json.loads(res.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError):
        raise AssertionError(res.stdout + res.stderr) from None
    return bool(host.get("failed")), host.get("msg"), " ".join(host.get("warnings", []) + [res.stderr])


PRODUCER = "{{ lookup('hardened.stack.secret', 'redis', cluster='main', user='admin', create=true) }}"
CONSUMER = "{{ lookup('hardened.stack.secret', 'redis', cluster='main', user='app') }}"


# module_utils/secrets.py: the one answer


def test_controller_state_is_local_or_external_and_nothing_else():
    assert secrets.controller_state(None) == "local" and secrets.controller_state("") == "local"
    assert secrets.controller_state("External") == "external"
    with pytest.raises(secrets.SecretError) as err:
        secrets.controller_state("awx")
    assert "hardened_stack_controller_state is 'awx'" in str(err.value)
    assert secrets.may_generate("local", True) and not secrets.may_generate("external", True)
    assert not secrets.may_generate("local", False)


def test_external_producer_refuses_to_mint_and_names_the_variable(tmp_path):
    with pytest.raises(secrets.SecretError) as err:
        secrets.produce("backup_cipher", str(tmp_path), state="external", stanza="hs")
    msg = str(err.value)
    assert "secret backup/hs/repo-cipher" in msg and "hardened_stack_controller_state is external" in msg
    assert "Set backup_repo_cipher_pass (in the vault file or the AWX credential" in msg
    assert str(tmp_path / "backup" / "hs" / "repo-cipher") in msg
    assert everything(tmp_path) == []
    # a given file (a mounted directory, an export) is used as it is
    made = secrets.produce("backup_cipher", str(tmp_path), stanza="hs")
    assert secrets.produce("backup_cipher", str(tmp_path), state="external", stanza="hs") == made


def test_check_mode_writes_nothing_and_stands_in(tmp_path):
    store = tmp_path / "s"
    one = secrets.produce("redis", str(store), check_mode=True, cluster="main", user="admin")
    two = secrets.read("redis", str(store), check_mode=True, cluster="main", user="app")
    assert len(one) == 32 and one.isalnum() and len(two) == 32
    assert not store.exists()
    # a pre-contract file is read where it is, not copied in check mode
    legacy = tmp_path / "l" / "backup"
    legacy.mkdir(parents=True)
    (legacy / "repo-cipher-hs").write_text("Old0ne\n")
    assert secrets.produce("backup_cipher", str(tmp_path / "l"), check_mode=True, stanza="hs") == "Old0ne"
    assert everything(tmp_path / "l") == ["backup", "backup/repo-cipher-hs"]
    # external in check mode: the same error as the real run would give
    with pytest.raises(secrets.SecretError):
        secrets.produce("redis", str(store), state="external", check_mode=True, cluster="main", user="admin")
    with pytest.raises(secrets.SecretError):
        secrets.read("redis", str(store), state="external", check_mode=True, cluster="main", user="app")
    assert not store.exists()


# the lookup, as the roles call it


def test_lookup_check_mode_writes_nothing_and_warns(home, tmp_path):
    store = tmp_path / "store"
    failed, value, err = lookup(home, PRODUCER, check=True, hardened_stack_secrets_dir=str(store))
    assert not failed and len(value) == 32 and value.isalnum()
    assert not store.exists()
    assert "check mode: %s does not exist" % (store / "redis" / "main" / "admin") in " ".join(err.split())
    # a consumer in check mode on a first run: its producer wrote nothing either
    failed, other, _err = lookup(home, CONSUMER, check=True, hardened_stack_secrets_dir=str(store))
    assert not failed and len(other) == 32 and not store.exists()
    # the real run writes, and check mode then reads the stored value without a warning
    failed, made, _err = lookup(home, PRODUCER, hardened_stack_secrets_dir=str(store))
    assert not failed and (store / "redis" / "main" / "admin").read_text() == made + "\n"
    failed, again, err = lookup(home, PRODUCER, check=True, hardened_stack_secrets_dir=str(store))
    assert (failed, again) == (False, made) and "check mode" not in err


def test_lookup_external_refuses_to_mint(home, tmp_path):
    store = tmp_path / "store"
    failed, msg, _err = lookup(home, PRODUCER, hardened_stack_secrets_dir=str(store),
                               hardened_stack_controller_state="external")
    assert failed
    assert "hardened_stack_controller_state is external: nothing is generated" in msg
    assert "Set redis_admin_password (in the vault file or the AWX credential" in msg
    assert not store.exists()
    failed, msg, _err = lookup(home, PRODUCER, check=True, hardened_stack_secrets_dir=str(store),
                               hardened_stack_controller_state="external")
    assert failed and "redis_admin_password" in msg and not store.exists()
    failed, msg, _err = lookup(home, PRODUCER, hardened_stack_secrets_dir=str(store),
                               hardened_stack_controller_state="elsewhere")
    assert failed and "hardened_stack_controller_state" in msg and not store.exists()


def test_lookup_controller_state_term(home):
    assert lookup(home, "{{ lookup('hardened.stack.secret', 'controller_state') }}")[:2] == (False, "local")
    got = lookup(home, "{{ lookup('hardened.stack.secret', 'controller_state') }}",
                 hardened_stack_controller_state="external")
    assert got[:2] == (False, "external")


# roles/pki: the CA on the controller

PLAY = """
- hosts: localhost
  gather_facts: false
  connection: local
  tasks:
    - ansible.builtin.include_role:
        name: hardened.stack.pki
        tasks_from: ca
"""


def ca(home, ca_dir, *, check=False, **extra):
    """(rc, {task name: result}) of the pki role's ca.yml on localhost."""
    play = home / "ca.yml"
    play.write_text(PLAY)
    args = [os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", str(play), "-e",
            json.dumps(dict(extra, pki_ca_dir=str(ca_dir), ansible_python_interpreter=sys.executable))]
    args += ["-C"] if check else []
    res = subprocess.run(args, env=env(home), cwd=str(home), capture_output=True, text=True, timeout=180, check=False)
    try:
        tasks = json.loads(res.stdout)["plays"][0]["tasks"]
    except (ValueError, KeyError):
        raise AssertionError(res.stdout + res.stderr) from None
    return res.returncode, {t["task"]["name"].split(" : ")[-1]: t["hosts"]["localhost"] for t in tasks}


def test_pki_ca_check_mode_writes_nothing_then_a_real_run_creates_it(home, tmp_path):
    ca_dir = tmp_path / "pki" / "hs"
    rc, tasks = ca(home, ca_dir, check=True)
    assert rc == 0, tasks
    assert tasks["Create the CA directory on the controller"]["changed"]
    assert not (tmp_path / "pki").exists()
    rc, tasks = ca(home, ca_dir)
    assert rc == 0, tasks
    assert everything(ca_dir) == ["ca.crt", "ca.key"]
    key = (ca_dir / "ca.key").read_bytes()
    # an existing CA: check mode and a rerun change nothing
    for check in (True, False):
        rc, tasks = ca(home, ca_dir, check=check)
        assert rc == 0 and not any(r.get("changed") for r in tasks.values()), tasks
    assert (ca_dir / "ca.key").read_bytes() == key


def test_pki_ca_external_refuses_to_create_and_names_the_variable(home, tmp_path):
    ca_dir = tmp_path / "pki" / "hs"
    for check in (True, False):
        rc, tasks = ca(home, ca_dir, check=check, hardened_stack_controller_state="external")
        refusal = tasks["Refuse to run without a CA when creation is disabled or the state is external"]
        assert rc != 0 and refusal["failed"]
        assert "hardened_stack_controller_state is external" in refusal["msg"]
        assert "set hardened_stack_controller_state: local" in refusal["msg"]
        assert not (tmp_path / "pki").exists()
    rc, tasks = ca(home, ca_dir, pki_ca_create=False)
    msg = tasks["Refuse to run without a CA when creation is disabled or the state is external"]["msg"]
    assert rc != 0 and "pki_ca_create is false" in msg and "set pki_ca_create: true" in msg
    # a given CA (the vault's, the credential's) is used in the external state
    rc, _tasks = ca(home, ca_dir)
    assert rc == 0
    rc, tasks = ca(home, ca_dir, hardened_stack_controller_state="external")
    assert rc == 0 and not any(r.get("changed") for r in tasks.values()), tasks
    (ca_dir / "ca.key").unlink()
    rc, tasks = ca(home, ca_dir)
    msg = tasks["Refuse to run without a CA when creation is disabled or the state is external"]["msg"]
    assert rc != 0 and "ca.key does not" in msg and not (ca_dir / "ca.key").exists()


def test_pki_ca_from_variables_needs_no_directory(home, tmp_path):
    """The CA given as pki_ca_certificate/pki_ca_private_key (a vault file, a credential): the
    external state runs with it and pki_ca_dir is neither read nor created."""
    made = tmp_path / "made"
    assert ca(home, made)[0] == 0
    given = {"pki_ca_certificate": (made / "ca.crt").read_text(), "pki_ca_private_key": (made / "ca.key").read_text()}
    nowhere = tmp_path / "nowhere"
    rc, tasks = ca(home, nowhere, hardened_stack_controller_state="external", **given)
    assert rc == 0 and not any(r.get("changed") for r in tasks.values()), tasks
    assert not nowhere.exists()
    rc, tasks = ca(home, nowhere, pki_ca_certificate=given["pki_ca_certificate"])
    msg = tasks["Refuse to run without a CA when creation is disabled or the state is external"]["msg"]
    assert rc != 0 and "pki_ca_private_key is empty: give both or neither" in msg and not nowhere.exists()
