"""The site preflight refuses broken inventories before any host is contacted.

Each case below takes a sound production-shaped inventory, introduces exactly one defect and
runs ``site.yml``: the run must stop in the preflight with the specific message (naming the
host or group and the variable), and no host may have been contacted (no UNREACHABLE, no
Baseline play). The hosts point at a closed port, so a run the preflight let through would
report them UNREACHABLE (the positive control proves it does).
"""

# ruff: noqa: S106 (the passwords are the defects under test)
import json

import inventory_harness as harness
import pytest


def _set(group, host, **values):
    def change(inv):
        inv["groups"][group][host].update(values)
    return change


def _vars(**values):
    def change(inv):
        inv["vars"].update(values)
    return change


def _add_host(group, name, **values):
    def change(inv):
        inv["groups"][group][name] = dict({"ansible_host": "127.0.1.%d" % (len(inv["groups"][group]) + 1)}, **values)
    return change


def _drop_host(group, name):
    def change(inv):
        inv["groups"][group].pop(name)
    return change


def _empty(group):
    def change(inv):
        inv["groups"][group] = {}
    return change


def _rename(group, new):
    def change(inv):
        inv["groups"][new] = inv["groups"].pop(group)
    return change


def _both(*changes):
    def change(inv):
        for c in changes:
            c(inv)
    return change


CASES = [
    # Tier sizes, parity and quorum.
    ("etcd-even-count", _add_host("etcd", "etcd4"), ["group 'etcd': 4 members", "odd count"]),
    ("etcd-two-members", _drop_host("etcd", "etcd3"), ["group 'etcd': 2 members"]),
    ("postgres-without-etcd", _empty("etcd"), ["group 'etcd' is empty", "Patroni"]),
    ("redis-two-sentinels", _drop_host("redis", "redis3"),
     ["group 'redis': 2 Sentinel(s)", "redis_sentinel_allow_fewer_than_three"]),
    ("redis-one-sentinel", _both(_drop_host("redis", "redis3"), _drop_host("redis", "redis2")),
     ["group 'redis': 1 Sentinel(s)"]),
    ("redis-quorum-above-count", _vars(redis_sentinel_quorum=4), ["redis_sentinel_quorum is 4", "only 3 Sentinel(s)"]),
    ("redis-quorum-negative", _vars(redis_sentinel_quorum=-1), ["redis_sentinel_quorum is -1"]),
    ("redis-initial-master-unknown", _vars(redis_initial_master="redis9"),
     ["redis_initial_master 'redis9' is not a host of group 'redis'"]),
    ("loadbalancers-without-app", _empty("app"), ["group 'loadbalancers' (loadbalancers1) has no 'app' hosts"]),
    ("app-without-loadbalancers", _empty("loadbalancers"),
     ["group 'app' reaches PostgreSQL through the HAProxy endpoints"]),
    ("backup-without-postgres", _both(_empty("postgres"), _empty("app")),
     ["group 'backup' (backup1) has nothing to back up"]),
    ("backup-two-hosts", _add_host("backup", "backup2"), ["group 'backup' has 2 hosts"]),
    ("backup-on-a-db-member", lambda inv: inv["groups"]["backup"].update({"postgres1": {}}),
     ["postgres1: is both the backup repository and a PostgreSQL member"]),
    # Group names.
    ("misspelt-group-postgresql", _rename("postgres", "postgresql"),
     ["group 'postgresql' is not part of the inventory contract", "rename the group to 'postgres'"]),
    ("misspelt-group-loadbalancer", _rename("loadbalancers", "loadbalancer"),
     ["group 'loadbalancer' is not part of the inventory contract"]),
    # Addresses.
    ("address-collision", _set("app", "app2", ansible_host="127.0.0.11"),
     ["address 127.0.0.11 belongs to more than one host", "app2"]),
    ("address-collision-second-entry", _set("app", "app2", hardened_stack_address=["127.0.0.52", "127.0.0.11"]),
     ["address 127.0.0.11 belongs to more than one host", "loadbalancers1"]),
    ("address-unresolvable", _set("app", "app2", ansible_host="app2.invalid"),
     ["host 'app2': 'app2.invalid' (from ansible_host) does not resolve on the controller"]),
    ("address-override-invalid", _set("redis", "redis2", hardened_stack_address="10.0.0.300/24"),
     ["host 'redis2': hardened_stack_address = '10.0.0.300/24' is neither an IP address nor a DNS name"]),
    ("address-retired-variable", _set("redis", "redis2", redis_address="10.0.0.5"),
     ["redis2: redis_address is retired", "hardened_stack_address"]),
    ("address-invalid", _set("redis", "redis2", ansible_host="10.0.0.300/24"),
     ["redis2: ansible_host '10.0.0.300/24' is neither an IP address nor a host name"]),
    # Port map.
    ("port-map-unknown-group", _vars(_common_port_map_overrides={"redis": {"from": ["apps"]}}),
     ["port map entry 'redis' names group 'apps', which is not in the inventory"]),
    ("port-map-port-out-of-range", _vars(_common_port_map_overrides={"redis": {"port": 70000}}),
     ["port map entry 'redis': port 70000 is not in 1..65535"]),
    ("port-map-bad-protocol", _vars(_common_port_map_overrides={"redis": {"protocol": "sctp"}}),
     ["protocol 'sctp' is not one of tcp, udp"]),
    ("port-map-collision", _vars(_common_port_map_overrides={"prometheus": {"port": 9100}}),
     ["services 'node_exporter' and 'prometheus' both listen on tcp/9100"]),
    # Secrets.
    ("postgres-secret-missing", _vars(postgresql_generate_passwords=False),
     ["postgresql_superuser_password, postgresql_replication_password", "postgresql_generate_passwords is false"]),
    ("postgres-one-secret-missing",
     _vars(postgresql_generate_passwords=False, postgresql_superuser_password="Zs8qP1vX9wLm4TnR",
           postgresql_replication_password="Qw7rT2yU8iOp3AsD", postgresql_rewind_password="Lk5jH3gF1dSa9ZxC",
           postgresql_users=[{"name": "app", "databases": ["app"], "access": "owner", "password": "Zs8qP1vX9wLm4TnR"}]),
     ["postgres1, postgres2, postgres3: postgresql_patroni_api_password empty while postgresql_generate_passwords "
      "is false"]),
    ("postgres-users-secret-missing",
     _vars(postgresql_generate_passwords=False, postgresql_superuser_password="Zs8qP1vX9wLm4TnR",
           postgresql_replication_password="Qw7rT2yU8iOp3AsD", postgresql_rewind_password="Lk5jH3gF1dSa9ZxC",
           postgresql_patroni_api_password="Lk5jH3gF1dSa9ZxC"),
     ["postgresql_users[app].password empty while postgresql_generate_passwords is false"]),
    ("redis-secret-missing", _vars(redis_generate_passwords=False),
     ["redis_app_password, redis_replication_password", "redis_generate_passwords is false"]),
    # The backup passphrase and the monitoring basic auth (a job-scoped secrets directory would lose them).
    ("backup-secret-missing", _vars(backup_generate_passwords=False, backup_pg_dump_password="Qw7rT2yU8iOp3AsD"),
     ["backup1, postgres1, postgres2, postgres3: backup_repo_cipher_pass empty while backup_generate_passwords is "
      "false"]),
    ("monitoring-secret-missing", _vars(exporters_generate_passwords=False),
     ["every host: exporters_auth_password empty while exporters_generate_passwords is false",
      "monitoring1: prometheus_auth_password empty while prometheus_generate_passwords is false"]),
    # Weak secrets: one message for every host that has one.
    ("demo-password", _vars(redis_app_password="changeme"),
     ["inventory preflight: 1 problem(s)", "every host: redis_app_password is a default or demo password"]),
    ("short-password", _set("postgres", "postgres2", postgresql_superuser_password="s3cr3t"),
     ["postgres2: postgresql_superuser_password is short (< 12 characters as Ansible rendered it: a vault value "
      "containing {{ or {% is rendered as a template unless it is tagged !unsafe in the vault file"]),
    ("vendor-default-password", _vars(app_db_password="postgres"), ["app_db_password is a default or demo password"]),
    ("demo-token", _vars(app_api_token="secret"), ["app_api_token is a default or demo password"]),
    # Lockout.
    ("root-login-refused", _vars(ansible_user="root"),
     ["ansible_user is root but baseline_ssh_permit_root_login is 'no'"]),
    ("user-not-allowed", _vars(baseline_ssh_allow_users=["deploy"]),
     ["ansible_user 'admin' is not in baseline_ssh_allow_users"]),
    # Certificate files.
    ("certificate-missing",
     _vars(pki_certificates=[{"name": "web", "cert_src": "/nonexistent/web.crt", "key_src": "/nonexistent/web.key"}]),
     ["pki_certificates 'web' cert_src /nonexistent/web.crt does not exist on the controller"]),
    # The app tier fits the database tier.
    ("app-user-not-in-postgres", _vars(app_db_user="shop"), ["app_db_user 'shop' is not in postgresql_users"]),
    ("app-redis-master-name-differs", _vars(app_redis_master_name="cache"),
     ["app_redis_master_name 'cache' differs from redis_master_name 'main'"]),
    ("app-db-not-in-postgres", _vars(app_db_name="shop"), ["app_db_name 'shop' is not in postgresql_databases"]),
    # The load balancers' virtual address (issue 19): a literal, nobody's own address, theirs only.
    ("virtual-address-a-name",
     _set("loadbalancers", "loadbalancers1", hardened_stack_virtual_address="front.example.org"),
     ["hardened_stack_virtual_address = 'front.example.org' is not an IP address"]),
    ("virtual-address-of-a-host", _set("loadbalancers", "loadbalancers1", hardened_stack_virtual_address="127.0.0.12"),
     ["hardened_stack_virtual_address 127.0.0.12 is already an address of host app1"]),
    ("virtual-address-outside-loadbalancers", _set("app", "app1", hardened_stack_virtual_address="127.0.0.99"),
     ["app1: hardened_stack_virtual_address is set on a host outside the loadbalancers group"]),
    # Role inputs (argument_specs), checked for every host before any host is changed.
    ("unknown-choice-redis-policy", _vars(redis_maxmemory_policy="drop-everything"),
     ["redis_maxmemory_policy", "Validation of arguments failed"]),
    ("wrong-type-etcd", _vars(etcd_heartbeat_interval="fast"), ["etcd_heartbeat_interval"]),
]


def test_enough_cases():
    assert len(CASES) >= 30


def test_sound_inventory_passes_preflight(tmp_path):
    rc, out = harness.run_site(harness.write_inventory(tmp_path / "hosts.yml", harness.sound_inventory()))
    assert rc != 0
    assert "UNREACHABLE" in out, out[-3000:]
    assert "inventory preflight" not in out and "Validation of arguments failed" not in out


def test_cluster_interface_host_passes_the_inventory_preflight(tmp_path):
    """A host whose cluster address comes from its interface (facts, gathered in the second
    play) is not refused by the first, fact-less play."""
    inv = harness.sound_inventory()
    inv["groups"]["app"]["app1"]["hardened_stack_cluster_interface"] = "eth1"
    rc, out = harness.run_site(harness.write_inventory(tmp_path / "hosts.yml", inv))
    assert rc != 0
    assert "UNREACHABLE" in out, out[-3000:]
    assert "inventory preflight" not in out


@pytest.mark.parametrize("change, expected", [pytest.param(c, e, id=i) for i, c, e in CASES])
def test_defect_is_named_and_nothing_is_touched(tmp_path, change, expected):
    inv = harness.sound_inventory()
    change(inv)
    rc, out = harness.run_site(harness.write_inventory(tmp_path / "hosts.yml", inv))
    assert rc != 0
    flat = " ".join(out.split())
    for text in expected:
        assert " ".join(text.split()) in flat, out[-4000:]
    assert "UNREACHABLE" not in out, "a host was contacted despite the defect"
    assert "PLAY [Baseline" not in out
    # Secret values never reach the output.
    for secret in ("changeme", "s3cr3t", "Zs8qP1vX9wLm4TnR"):
        assert secret not in out


def test_example_inventory_passes_preflight(tmp_path):
    """inventories/example is what users copy: with its vault file (here: the same variables
    as extra vars) it passes every check as shipped. Its addresses are replaced by closed
    loopback ports (nothing outside this machine is contacted)."""
    harness.example_inventory(tmp_path)
    vault = {"vault_app_db_password": "Xq4vN8pL2mR7tW1z", "vault_redis_app_password": "Hb6kD3sF9gJ5aQ0e"}
    rc, out = harness.run_site(tmp_path, "-e", json.dumps(vault))
    assert rc != 0
    assert "UNREACHABLE" in out, out[-3000:]
    assert "inventory preflight" not in out and "Validation of arguments failed" not in out
    assert not any(v in out for v in vault.values())
