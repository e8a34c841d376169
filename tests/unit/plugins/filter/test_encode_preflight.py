"""The site preflight refuses a value a file format cannot carry (inventory_checks.SECRET_FORMATS)
and the retired per-role secret directories, before any host is changed, naming the variable
and never the value.

The table is checked against the roles (every secret variable a role defines is in it, every
name in it is a role variable, every format an encoder), each entry is exercised with a value
its formats refuse, and one real ``site.yml`` run shows the messages and that no host was
contacted.
"""

# ruff: noqa: S105, S106 (the passwords are the defects under test)
import glob
import os
import re

import inventory_harness as harness
import pytest
import yaml
from test_encode_corpus import CORPUS, ROOT

from ansible.parsing.vault import VaultedValue
from ansible_collections.hardened.stack.plugins.filter import preflight
from ansible_collections.hardened.stack.plugins.module_utils import encode
from ansible_collections.hardened.stack.plugins.module_utils import inventory_checks as ic
from ansible_collections.hardened.stack.plugins.module_utils import secrets

GROUPS = {"all": ["app1", "app2", "pg1"], "app": ["app1", "app2"], "postgres": ["pg1"]}


def _role_defaults():
    out = {}
    for path in glob.glob(os.path.join(ROOT, "roles", "*", "defaults", "main.yml")):
        with open(path, encoding="utf-8") as fh:
            out.update(yaml.safe_load(fh) or {})
    return out


# A role variable that holds a secret (``*_password``, ``*_password_previous``, ...).
SECRET_NAME = re.compile(r"(_password|_passphrase|_secret|_token|_cipher_pass)(_previous|_new|_old)?$"
                         r"|_secret_environment$")


def test_table_covers_every_secret_variable_of_the_roles():
    defaults = _role_defaults()
    secret_names = {n for n in defaults if SECRET_NAME.search(n) or n in ic.SECRET_NAMES}
    assert "app_db_password_previous" in secret_names and "postgresql_generate_passwords" not in secret_names
    assert secret_names - set(ic.ENCODED_VARS) == set()
    assert set(ic.ENCODED_VARS) - set(defaults) == set()  # no misspelt name
    for _name, shape, formats, where in ic.SECRET_FORMATS:
        assert shape in ("value", "values") or shape.startswith("items.")
        assert formats and set(formats) <= set(encode.ENCODERS) and where


# One value each entry's formats refuse, and the reason's words.
BAD = {
    "postgresql_superuser_password": ("trailing   ", "Patroni's pgpass file cannot end with white space"),
    "postgresql_replication_password": ("two\nlines", "cannot hold a line break"),
    "postgresql_rewind_password": ("nul\x00", "NUL"),
    "postgresql_patroni_api_password": ("nul\x00", "YAML string cannot hold a NUL"),
    "postgresql_users": ([{"name": "app", "password": "a\x00b"}], "NUL"),
    "redis_admin_password": ("a\x00b", "NUL"),
    "redis_app_password": ("a\x00b", "NUL"),
    "redis_replication_password": ("a\x00b", "NUL"),
    "redis_sentinel_password": ("correct horse battery", "sentinel.conf password cannot hold a space"),
    "redis_exporter_password": ("a\x00b", "NUL"),
    "app_db_password": ("a\x00b", "systemd environment file value cannot hold a NUL"),
    "app_redis_password": ("a\x00b", "NUL"),
    "app_sentinel_password": ("a\x00b", "NUL"),
    "app_db_password_previous": ("a\x00b", "NUL"),
    "app_redis_password_previous": ("a\x00b", "NUL"),
    "app_sentinel_password_previous": ("a\x00b", "NUL"),
    "app_environment": ({"GOOD": "ok", "BAD": "a\x00b"}, "NUL"),
    "app_secret_environment": ({"TOKEN": "a\x00b"}, "NUL"),
    "exporters_auth_password": ("x" * 73, "longer than 72 bytes"),
    "prometheus_auth_password": (" leading space", "Prometheus basic auth password cannot start or end"),
    "alertmanager_auth_password": ("trailing\t", "white space"),
    "exporters_auth_user": ("#ops", "htpasswd user name cannot start with #"),
    "prometheus_auth_user": ("a:b", "cannot hold a colon"),
    "alertmanager_auth_user": ("", None),  # empty: the role default applies, nothing to check
    "alertmanager_smtp_auth_password": ("a\x00b", "NUL"),
    "exporters_redis_password": ("a\x00b", "NUL"),
    "backup_repo_cipher_pass": ("cipher pass ", "pgBackRest configuration value cannot end with a space"),
    "backup_pg_dump_password": ("two\nlines", "libpq password file field cannot hold a line break"),
    "backup_pg_dump_user": ("pg\ndump", "line break"),
}


def test_every_entry_has_a_refused_value():
    assert set(BAD) == set(ic.ENCODED_VARS)


@pytest.mark.parametrize("name", sorted(BAD))
def test_refused_value_is_named_not_shown(name):
    value, reason = BAD[name]
    hostvars = {h: {name: value} for h in GROUPS["all"]}
    got = ic.encoding_checks(GROUPS, hostvars)
    if reason is None:
        assert got == []
        return
    assert len(got) == 1, got
    assert got[0].startswith("every host: " + name)
    assert reason in got[0]
    assert "Fix:" in got[0]
    for part in (value.values() if isinstance(value, dict) else [i["password"] for i in value]
                 if isinstance(value, list) else [value]):
        if part.strip():
            assert part not in got[0]


def test_dict_and_list_entries_are_named_by_key():
    got = ic.encoding_checks(GROUPS, {"app1": {"app_environment": {"GOOD": "ok", "BAD": "a\x00b"},
                                               "postgresql_users": [{"name": "shop", "password": "x\x00"}]}})
    assert sorted(m.split(" cannot")[0] for m in got) == ["app1: app_environment.BAD",
                                                          "app1: postgresql_users[shop].password"]


def test_hosts_are_grouped_per_message():
    hostvars = {"app1": {"app_db_password": "a\x00"}, "app2": {"app_db_password": "b\x00"}, "pg1": {}}
    assert [m.split(":")[0] for m in ic.encoding_checks(GROUPS, hostvars)] == ["app1, app2"]


@pytest.mark.parametrize("value", CORPUS)
def test_corpus_values_pass_where_their_formats_carry_them(value):
    """The preflight refuses exactly what the encoders refuse (here: the app's environment
    file carries every corpus value; sentinel.conf only bare words)."""
    hostvars = {"app1": {"app_db_password": value, "redis_sentinel_password": value}}
    got = ic.encoding_checks(GROUPS, hostvars)
    sentinel_ok = not any(c in value for c in " \t\"'")
    assert got == ([] if sentinel_ok else [m for m in got if m.startswith("app1: redis_sentinel_password")])
    assert len(got) == (0 if sentinel_ok else 1)


def test_retired_secret_directories():
    hostvars = {h: {"redis_secrets_dir": "/srv/secrets"} for h in GROUPS["all"]}
    hostvars["app1"]["backup_secrets_dir"] = "/srv/b"
    got = ic.retired_dir_checks(GROUPS, hostvars)
    assert got == [
        "every host: redis_secrets_dir is retired; every generated secret lives under hardened_stack_secrets_dir "
        "(layout: docs/secrets.md). Fix: remove redis_secrets_dir and set hardened_stack_secrets_dir if the "
        "directory is not ~/.hardened-stack/secrets.",
        "app1: backup_secrets_dir is retired; every generated secret lives under hardened_stack_secrets_dir "
        "(layout: docs/secrets.md). Fix: remove backup_secrets_dir and set hardened_stack_secrets_dir if the "
        "directory is not ~/.hardened-stack/secrets."]
    assert set(secrets.RETIRED_DIR_VARS) <= set(preflight.NAMES)


def test_filter_passes_vaulted_values_as_text():
    """hostvars hold inline-vaulted values as tagged/encrypted objects: the checks see the text."""
    vaulted = VaultedValue(ciphertext="$ANSIBLE_VAULT;1.1;AES256\n3031").tag("correct horse battery")
    got = preflight.inventory_problems({"all": ["h"], "redis": []}, {"h": {"redis_sentinel_password": vaulted}},
                                       {}, {}, lab=True)
    assert any("redis_sentinel_password cannot be written to sentinel.conf" in m for m in got), got


def test_site_refuses_before_any_host_is_contacted(tmp_path):
    """A real site.yml run: every defect named, no value shown, no host contacted."""
    bad = {"redis_sentinel_password": "correct horse battery staple", "backup_repo_cipher_pass": "cipher pass  ",
           "exporters_auth_user": "ops:team", "redis_secrets_dir": "/srv/hs-secrets"}
    inv = harness.sound_inventory(bad)
    rc, out = harness.run_site(harness.write_inventory(tmp_path / "hosts.yml", inv))
    flat = " ".join(out.split())
    assert rc != 0
    for text in ("redis_sentinel_password cannot be written to sentinel.conf",
                 "backup_repo_cipher_pass cannot be written to pgBackRest's configuration file",
                 "exporters_auth_user cannot be written to", "redis_secrets_dir is retired"):
        assert text in flat, out[-4000:]
    assert "UNREACHABLE" not in out and "PLAY [Baseline" not in out
    assert "correct horse" not in out and "ops:team" not in out and "cipher pass" not in out
