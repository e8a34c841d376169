"""hardened.stack.secrets_export (issue 20, point 4): the generated secrets of a real secrets
directory and a real CA go into an ansible-vault encrypted vars file under the variables the
roles read; decrypted with ansible-vault and compared with the files, then loaded as an
inventory's group_vars/all, where it switches the controller state to external."""

import datetime
import json
import os
import subprocess
import sys

import pytest
import yaml
from ansible_collections.hardened.stack.plugins.module_utils import secrets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lab import collection

BIN = os.path.dirname(sys.executable)
# .build/collections, where the checkout is linked as hardened.stack (lab/collection.py)
COLLECTIONS = collection.importable()


def env(home):
    cfg = home / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    return dict(os.environ, HOME=str(home), ANSIBLE_CONFIG=str(cfg), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
                ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1", PYTHONWARNINGS="ignore")


def make_ca(folder):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, mode=0o700)
    (folder / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))


@pytest.fixture(name="setup")
def fixture_setup(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    store, ca_dir = tmp_path / "secrets", tmp_path / "pki" / "hs"
    made = {}
    for user in ("postgres", "replicator", "rewinder", "app", "reporting"):
        made["postgresql", user] = secrets.produce("postgresql", str(store), cluster="hs", user=user)
    made["patroni_api"] = secrets.produce("patroni_api", str(store), cluster="hs")
    for user in ("app", "replication", "sentinel", "exporter", "admin"):
        made["redis", user] = secrets.produce("redis", str(store), cluster="redis", user=user)
    made["monitoring"] = secrets.produce("monitoring", str(store))
    made["backup_cipher"] = secrets.produce("backup_cipher", str(store), stanza="hs")
    made["backup_user"] = secrets.produce("backup_user", str(store), stanza="hs", user="pgdump")
    make_ca(ca_dir)
    inv = tmp_path / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "postgres": {"hosts": {"pg1": {}}, "vars": {"postgresql_users": [
            {"name": "app", "db": "app"}, {"name": "reporting", "db": "app"}]}},
        "app": {"hosts": {"app1": {}}}}}}))
    (inv / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(
        {"hardened_stack_secrets_dir": str(store), "pki_ca_dir": str(ca_dir), "ansible_connection": "local"}))
    password = tmp_path / "vault-pass"
    password.write_text("correct horse battery staple\n")
    return home, inv, store, ca_dir, password, made


def export(home, inv, target, password, **extra):
    # --vault-password-file: once exported, the inventory itself holds an encrypted file
    args = [os.path.join(BIN, "ansible-playbook"), "-i", str(inv), "--vault-password-file", str(password),
            "hardened.stack.secrets_export", "-e",
            json.dumps(dict(extra, secrets_export_file=str(target), secrets_export_vault_password_file=str(password)))]
    return subprocess.run(args, env=env(home), cwd=str(home), capture_output=True, text=True, timeout=180, check=False)


def test_export_decrypts_to_the_files_under_the_roles_variables(setup, tmp_path):
    home, inv, store, ca_dir, password, made = setup
    target = inv / "group_vars" / "all" / "controller_state.yml"
    res = export(home, inv, target, password)
    assert res.returncode == 0, res.stdout + res.stderr
    text = target.read_text()
    assert text.startswith("$ANSIBLE_VAULT;") and oct(os.stat(target).st_mode & 0o777) == "0o600"
    for value in [made["monitoring"], made["backup_cipher"]]:
        assert value not in text and value not in res.stdout  # encrypted, and never printed
    plain = subprocess.run([os.path.join(BIN, "ansible-vault"), "view", "--vault-password-file", str(password),
                            str(target)], env=env(home), capture_output=True, text=True, check=True).stdout
    data = yaml.safe_load(plain)
    want = {
        "postgresql_superuser_password": made["postgresql", "postgres"],
        "postgresql_replication_password": made["postgresql", "replicator"],
        "postgresql_rewind_password": made["postgresql", "rewinder"],
        "postgresql_patroni_api_password": made["patroni_api"],
        "app_db_password": made["postgresql", "app"],
        "redis_app_password": made["redis", "app"], "app_redis_password": made["redis", "app"],
        "redis_replication_password": made["redis", "replication"],
        "redis_sentinel_password": made["redis", "sentinel"],
        "redis_exporter_password": made["redis", "exporter"], "exporters_redis_password": made["redis", "exporter"],
        "redis_admin_password": made["redis", "admin"],
        "exporters_auth_password": made["monitoring"],
        "backup_repo_cipher_pass": made["backup_cipher"],
        "backup_pg_dump_password": made["backup_user"],
        "postgresql_users": [{"name": "app", "db": "app", "password": made["postgresql", "app"]},
                             {"name": "reporting", "db": "app", "password": made["postgresql", "reporting"]}],
        "pki_ca_certificate": (ca_dir / "ca.crt").read_text(),
        "pki_ca_private_key": (ca_dir / "ca.key").read_text(),
        "hardened_stack_controller_state": "external",
    }
    assert data == want
    # every variable is one the roles read (their defaults or the consumers' variables)
    defaults = {}
    roles = os.path.join(COLLECTIONS, "ansible_collections", "hardened", "stack", "roles")
    for role in os.listdir(roles):
        path = os.path.join(roles, role, "defaults", "main.yml")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                defaults.update(yaml.safe_load(fh) or {})
    assert sorted(set(data) - set(defaults)) == ["hardened_stack_controller_state"]
    # a second export does not replace the file unless told to
    again = export(home, inv, target, password)
    assert again.returncode != 0 and "set secrets_export_force=true" in again.stdout
    assert export(home, inv, target, password, secrets_export_force=True).returncode == 0


def test_exported_file_loaded_by_the_inventory_makes_the_state_external(setup, tmp_path):
    home, inv, store, _ca_dir, password, made = setup
    target = inv / "group_vars" / "all" / "controller_state.yml"
    assert export(home, inv, target, password).returncode == 0
    # the controller's files are gone (a new AWX job): the variables carry everything
    empty = tmp_path / "empty"
    (inv / "group_vars" / "all" / "main.yml").write_text(yaml.safe_dump(
        {"hardened_stack_secrets_dir": str(empty), "pki_ca_dir": str(empty / "ca"), "ansible_connection": "local"}))
    expr = ("{{ [redis_admin_password, hardened_stack_controller_state, pki_ca_certificate is match('-----BEGIN'), "
            "lookup('hardened.stack.secret', 'redis', cluster='redis', user='other', create=true)] }}")
    res = subprocess.run([os.path.join(BIN, "ansible"), "pg1", "-i", str(inv), "--vault-password-file", str(password),
                          "-m", "ansible.builtin.debug", "-a", json.dumps({"msg": expr})],
                         env=env(home), cwd=str(home), capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode != 0
    assert "hardened_stack_controller_state is external: nothing is generated" in res.stdout
    assert not empty.exists()
    expr = "{{ [redis_admin_password, hardened_stack_controller_state, pki_ca_certificate is match('-----BEGIN')] }}"
    res = subprocess.run([os.path.join(BIN, "ansible"), "pg1", "-i", str(inv), "--vault-password-file", str(password),
                          "-m", "ansible.builtin.debug", "-a", json.dumps({"msg": expr})],
                         env=env(home), cwd=str(home), capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert made["redis", "admin"] in res.stdout and '"external"' in res.stdout


def test_two_clusters_in_one_directory_are_refused(tmp_path):
    secrets.produce("redis", str(tmp_path), cluster="a", user="admin")
    secrets.produce("redis", str(tmp_path), cluster="b", user="admin")
    with pytest.raises(secrets.SecretError) as err:
        secrets.export_variables(str(tmp_path))
    assert "redis/a/admin and redis/b/admin would both be redis_admin_password" in str(err.value)


def test_values_the_inventory_gives_are_not_exported_and_reach_their_consumers(setup, tmp_path):
    """A user who moved some secrets to the vault: the stale files must not come back through the
    export, and the consumers (the app) must get the vault's values."""
    home, inv, _store, _ca_dir, password, made = setup
    db_value, redis_value = "vault-app-db-value-1", "vault-redis-app-1"
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    hosts["all"]["children"]["postgres"]["vars"]["postgresql_users"][0]["password"] = db_value
    hosts["all"]["children"]["redis"] = {"hosts": {"redis1": {}},
                                         "vars": {"redis_app_password": "{{ vault_redis_app }}"}}
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (inv / "group_vars" / "all" / "vault.yml").write_text(yaml.safe_dump({"vault_redis_app": redis_value}))
    target = inv / "group_vars" / "all" / "controller_state.yml"
    res = export(home, inv, target, password)
    assert res.returncode == 0, res.stdout + res.stderr
    plain = subprocess.run([os.path.join(BIN, "ansible-vault"), "view", "--vault-password-file", str(password),
                            str(target)], env=env(home), capture_output=True, text=True, check=True).stdout
    data = yaml.safe_load(plain)
    assert "redis_app_password" not in data  # the inventory keeps giving it
    assert data["app_redis_password"] == redis_value
    assert data["app_db_password"] == db_value
    assert data["postgresql_users"][0]["password"] == db_value
    assert made["redis", "app"] not in plain and made["postgresql", "app"] not in plain
    assert data["redis_admin_password"] == made["redis", "admin"]  # not given: from its file


def test_a_relative_target_is_taken_from_the_working_directory(setup, tmp_path):
    home, inv, _store, _ca_dir, password, _made = setup
    res = export(home, inv, "controller_state.yml", password)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (home / "controller_state.yml").read_text().startswith("$ANSIBLE_VAULT;")
    again = export(home, inv, "controller_state.yml", password)
    assert again.returncode != 0 and "set secrets_export_force=true" in again.stdout
