"""The hardened.stack.secret lookup, run by the real ``ansible`` command (the collection from
the checkout link, a private HOME and an empty configuration): producers create once, consumers
only read and fail naming the producing role and the vault variable; the directory comes from
hardened_stack_secrets_dir as the inventory writes it (a template)."""

import json
import os
import stat
import subprocess
import sys

import pytest
from ansible_collections.hardened.stack.plugins.module_utils import secrets

ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")
COLLECTIONS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(secrets.__file__)))))


@pytest.fixture(name="home")
def fixture_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return home


def run(home, expr, *, inventory=None, pattern="localhost", extra=None, forks=5, cwd=None):
    """{host: (failed, msg)} of ``ansible PATTERN -m debug -a msg=EXPR``."""
    cfg = home / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    env = dict(os.environ, HOME=str(home), ANSIBLE_CONFIG=str(cfg), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_NOCOLOR="1", PYTHONWARNINGS="ignore")
    args = [ANSIBLE, pattern, "-f", str(forks), "-m", "ansible.builtin.debug", "-a", json.dumps({"msg": expr})]
    if inventory:
        args += ["-i", str(inventory)]
    for key, value in (extra or {}).items():
        args += ["-e", json.dumps({key: value})]
    res = subprocess.run(args, env=env, cwd=str(cwd or home), capture_output=True, text=True, timeout=120,
                         check=False)
    try:
        data = json.loads(res.stdout)
    except ValueError:
        raise AssertionError(res.stdout + res.stderr) from None
    hosts = data["plays"][0]["tasks"][0]["hosts"]
    return {name: (bool(r.get("failed")), r.get("msg")) for name, r in hosts.items()}


def one(result):
    assert len(result) == 1, result
    return next(iter(result.values()))


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def everything(root):
    return sorted(os.path.relpath(os.path.join(d, n), str(root))
                  for d, dirs, files in os.walk(str(root)) for n in dirs + files)


def test_create_true_makes_the_secret_once_private_and_returns_it(home, tmp_path):
    store = tmp_path / "store"
    expr = "{{ lookup('hardened.stack.secret', 'redis', cluster='main', user='admin', create=true) }}"
    failed, value = one(run(home, expr, extra={"hardened_stack_secrets_dir": str(store)}))
    assert not failed, value
    assert len(value) == 32 and value.isalnum()
    target = store / "redis" / "main" / "admin"
    assert target.read_text() == value + "\n"
    assert mode(target) == 0o600
    assert {mode(store), mode(store / "redis"), mode(store / "redis" / "main")} == {0o700}
    assert one(run(home, expr, extra={"hardened_stack_secrets_dir": str(store)})) == (False, value)
    assert secrets.read("redis", str(store), cluster="main", user="admin") == value


def test_consumer_fails_naming_producer_and_vault_variable_and_creates_nothing(home, tmp_path):
    store = tmp_path / "store"
    expr = ("{{ lookup('hardened.stack.secret', 'redis', cluster='main', user='sentinel', "
            "vault_variable='redis_sentinel_password') }}")
    failed, msg = one(run(home, expr, extra={"hardened_stack_secrets_dir": str(store)}))
    assert failed
    assert "hardened.stack.secret: secret %s does not exist" % (store / "redis" / "main" / "sentinel") in msg
    assert "created by the hardened.stack.redis role" in msg
    assert "set redis_sentinel_password from a vault" in msg
    assert not store.exists()


def test_consumer_without_vault_variable_names_the_producers_variable(home, tmp_path):
    expr = "{{ lookup('hardened.stack.secret', 'backup_cipher', stanza='hs') }}"
    failed, msg = one(run(home, expr, extra={"hardened_stack_secrets_dir": str(tmp_path / "s")}))
    assert failed
    assert "created by the hardened.stack.backup role" in msg and "set backup_repo_cipher_pass from a vault" in msg


def test_consumer_names_the_one_postgresql_variable_of_the_user(home, tmp_path):
    """Without vault_variable the message names the variable of that user only (the replication
    user's), taking the user names from the host's variables (a renamed superuser)."""
    store = {"hardened_stack_secrets_dir": str(tmp_path / "s")}
    expr = "{{ lookup('hardened.stack.secret', 'postgresql', cluster='hs', user='replicator') }}"
    failed, msg = one(run(home, expr, extra=store))
    assert failed and "or set postgresql_replication_password from a vault" in msg
    assert "postgresql_superuser_password" not in msg and "postgresql_rewind_password" not in msg
    expr = "{{ lookup('hardened.stack.secret', 'postgresql', cluster='hs', user='pgadmin') }}"
    failed, msg = one(run(home, expr, extra=dict(store, postgresql_superuser="pgadmin")))
    assert failed and "or set postgresql_superuser_password from a vault" in msg
    failed, msg = one(run(home, expr, extra=store))
    assert failed and "or set the password of the postgresql_users entry named pgadmin from a vault" in msg
    assert not (tmp_path / "s").exists()


def test_consumer_reads_what_the_producer_made(home, tmp_path):
    store = tmp_path / "store"
    value = secrets.produce("postgresql", str(store), cluster="hs", user="app")
    expr = ("{{ lookup('hardened.stack.secret', 'postgresql', cluster='hs', user='app', "
            "vault_variable='app_db_password') }}")
    assert one(run(home, expr, extra={"hardened_stack_secrets_dir": str(store)})) == (False, value)


def test_the_directory_comes_from_a_templated_inventory_variable(home, tmp_path):
    """The lab writes hardened_stack_secrets_dir: "{{ lab_cache_dir }}/secrets"; the lookup must
    render it, not look under (or create) a directory named "{{ lab_cache_dir }}"."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text("all:\n  hosts:\n    h1:\n      ansible_connection: local\n")
    (inventory / "group_vars" / "all.yml").write_text(
        "lab_cache_dir: %s\nhardened_stack_secrets_dir: \"{{ lab_cache_dir }}/secrets\"\n"
        % json.dumps(str(tmp_path / "cache")))
    expr = "{{ lookup('hardened.stack.secret', 'monitoring', create=true) }}"
    work = tmp_path / "work"
    work.mkdir()
    failed, value = one(run(home, expr, inventory=inventory, pattern="h1", cwd=work))
    assert not failed, value
    assert secrets.read("monitoring", str(tmp_path / "cache" / "secrets")) == value
    assert everything(work) == []  # nothing made under the working directory


def test_default_directory_is_in_home(home):
    expr = "{{ lookup('hardened.stack.secret', 'redis', cluster='redis', user='app', create=true) }}"
    failed, value = one(run(home, expr))
    assert not failed, value
    assert (home / ".hardened-stack" / "secrets" / "redis" / "redis" / "app").read_text() == value + "\n"
    assert mode(home / ".hardened-stack") == 0o700


def test_secrets_dir_option_beats_the_variable(home, tmp_path):
    expr = "{{ lookup('hardened.stack.secret', 'monitoring', secrets_dir='%s', create=true) }}" % (tmp_path / "direct")
    failed, value = one(run(home, expr, extra={"hardened_stack_secrets_dir": str(tmp_path / "var")}))
    assert not failed, value
    assert (tmp_path / "direct" / "monitoring" / "basic_auth").exists()
    assert not (tmp_path / "var").exists()


def test_the_vault_variable_wins_and_the_file_is_not_needed(home, tmp_path):
    """The pattern every consumer uses: a non-empty vault value, and the lookup is never run."""
    expr = ("{{ redis_sentinel_password if redis_sentinel_password | length > 0 else "
            "lookup('hardened.stack.secret', 'redis', cluster='main', user='sentinel', "
            "vault_variable='redis_sentinel_password') }}")
    awkward = "correct horse \"battery\" 'staple' $x #y %z !w \\v"
    extra = {"hardened_stack_secrets_dir": str(tmp_path / "s"), "redis_sentinel_password": awkward}
    assert one(run(home, expr, extra=extra)) == (False, awkward)
    extra["redis_sentinel_password"] = ""
    failed, msg = one(run(home, expr, extra=extra))
    assert failed and "set redis_sentinel_password from a vault" in msg


def test_parallel_producers_on_many_hosts_agree(home, tmp_path):
    """Ten hosts, ten forks, each templating the producer's lookup in its own process."""
    inventory = tmp_path / "hosts.yml"
    hosts = "".join("    h%d:\n      ansible_connection: local\n" % i for i in range(10))
    inventory.write_text("all:\n  hosts:\n" + hosts)
    expr = "{{ lookup('hardened.stack.secret', 'postgresql', cluster='hs', user='replicator', create=true) }}"
    result = run(home, expr, inventory=inventory, pattern="all", forks=10,
                 extra={"hardened_stack_secrets_dir": str(tmp_path / "s")})
    assert len(result) == 10 and not any(failed for failed, _v in result.values()), result
    assert len({v for _f, v in result.values()}) == 1
    assert everything(tmp_path / "s") == ["postgresql", "postgresql/hs", "postgresql/hs/replicator"]


@pytest.mark.parametrize(("expr", "message"), [
    ("lookup('hardened.stack.secret', 'redis', 'postgresql', cluster='c', user='u')",
     "hardened.stack.secret takes one kind (one of backup_cipher, backup_user, monitoring, patroni_api, "
     "postgresql, redis), got 2 terms"),
    ("lookup('hardened.stack.secret', 'mysql')", "hardened.stack.secret: unknown secret kind 'mysql'"),
    ("lookup('hardened.stack.secret', 'redis', cluster='c', create=true)",
     "hardened.stack.secret: secret redis needs user"),
    ("lookup('hardened.stack.secret', 'monitoring', stanza='x')", "secret monitoring takes no stanza"),
    ("lookup('hardened.stack.secret', 'redis', cluster='../etc', user='u', create=true)", "cannot be a file name"),
])
def test_wrong_calls_fail_with_a_message_and_create_nothing(home, tmp_path, expr, message):
    failed, msg = one(run(home, "{{ %s }}" % expr, extra={"hardened_stack_secrets_dir": str(tmp_path / "s")}))
    assert failed and message in msg, msg
    assert not (tmp_path / "s").exists()
