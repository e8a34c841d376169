"""How lab/, bench/ and the Molecule verifiers read secrets: the host's variables rendered by
Ansible (lab/variables.py), then the vault value or the producer's file through the collection's
secrets module (lab/collection.py); stored secrets listed by the layout itself."""

import json
import os

import pytest
from ansible_collections.hardened.stack.plugins.module_utils import secrets
from lab import collection, variables


def test_role_defaults_complete_an_expression():
    assert variables.with_default("postgresql_cluster_name") == 'postgresql_cluster_name | default("hardened-stack")'
    assert variables.with_default("backup_stanza") == 'backup_stanza | default("hardened-stack")'
    # a default that is another variable follows that variable's default
    want = 'redis_cluster_name | default(redis_group | default("redis"))'
    assert variables.with_default("redis_cluster_name") == want
    assert variables.with_default("nosuchrole_x") == "nosuchrole_x | default('')"


@pytest.fixture(name="inventory")
def fixture_inventory(tmp_path):
    store = tmp_path / "store"
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.yml").write_text(
        "all:\n  children:\n    redis:\n      hosts: {r1: {}}\n    valkey:\n      hosts: {v1: {}}\n"
        "      vars: {redis_group: valkey, redis_sentinel_password: 'S3nt $x'}\n")
    (inv / "group_vars" / "all.yml").write_text(
        "base: %s\nhardened_stack_secrets_dir: \"{{ base }}/store\"\n" % json.dumps(str(tmp_path)))
    return str(inv), str(store)


def test_secret_is_the_vault_value_or_the_producers_file(inventory):
    inv, store = inventory
    made = secrets.produce("redis", store, cluster="redis", user="sentinel")
    expr = {h: collection.secret_expressions("redis", "redis_sentinel_password") for h in ("r1", "v1")}
    rendered = {h: variables.render(inv, expr[h], h)[h] for h in expr}
    assert rendered["r1"]["directory"] == store and rendered["r1"]["cluster"] == "redis"
    assert rendered["v1"]["cluster"] == "valkey"  # the role default redis_cluster_name -> redis_group
    assert collection.secret("redis", rendered["r1"], user="sentinel") == made
    assert collection.secret("redis", rendered["v1"], user="sentinel") == "S3nt $x"
    with pytest.raises(secrets.SecretError) as err:
        collection.secret("redis", rendered["r1"], user="admin")
    assert "set redis_sentinel_password from a vault" in str(err.value)
    assert not os.path.exists(os.path.join(store, "redis", "redis", "admin"))


def test_render_names_the_host_when_ansible_fails(inventory):
    inv, _store = inventory
    with pytest.raises(variables.RenderError) as err:
        variables.render(inv, {"x": "{{ undefined_thing }}"}, "r1")
    assert "r1:" in str(err.value) and "undefined_thing" in str(err.value)


def test_stored_secrets_lists_every_file_of_the_layout_and_nothing_else(tmp_path):
    store = str(tmp_path)
    secrets.produce("postgresql", store, cluster="hs", user="app")
    secrets.produce("patroni_api", store, cluster="hs")
    secrets.produce("monitoring", store)
    secrets.produce("backup_cipher", store, stanza="hs")
    (tmp_path / "hs").mkdir()
    (tmp_path / "hs" / "app").write_text("pre-contract\n")
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / ".new-x").write_text("a producer's temporary file\n")
    assert collection.stored_secrets(store) == [
        ("backup_cipher", {"stanza": "hs"}), ("monitoring", {}), ("patroni_api", {"cluster": "hs"}),
        ("postgresql", {"cluster": "hs", "user": "app"})]


def test_job_scoped_recipe_of_the_docs_is_complete():
    """`make lab-job-scoped` runs docs/secrets.md's AWX recipe as written: the docs must hold its
    inventory block, wrapper playbook, credential type and injectors, every injected field must be
    declared, and every injected secret variable must be one the check can read from the lab."""
    from lab import jobscoped  # noqa: PLC0415

    with open(jobscoped.DOC, encoding="utf-8") as fh:
        parts = jobscoped.recipe(fh.read())
    assert parts["inventory"]["hardened_stack_secrets_dir"].startswith("{{ hs_job_dir }}")
    assert [play["name"] for play in parts["wrapper"]][1] == "The stack"
    assert set(parts["extra_vars"].values()) <= set(parts["fields"])
    assert set(parts["required"]) <= set(parts["fields"])
    secret_vars = {v for v in parts["extra_vars"] if not v.startswith("hs_ca_")}
    assert secret_vars <= set(jobscoped.SOURCES), secret_vars - set(jobscoped.SOURCES)
    # every generated secret of the layout is injected (else the job would generate and lose it)
    kinds = {jobscoped.SOURCES[v][0] for v in secret_vars}
    assert kinds == set(secrets.KINDS), set(secrets.KINDS) - kinds


def test_job_scoped_credential_file_is_unsafe_yaml():
    import yaml  # noqa: PLC0415
    from lab import jobscoped  # noqa: PLC0415

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!unsafe", lambda loader, node: ("unsafe", loader.construct_scalar(node)))
    value = 'a {{ b }} "q" \\ ä\n'
    assert yaml.load(jobscoped.unsafe_yaml({"x": value}), Loader=Loader) == {"x": ("unsafe", value)}  # noqa: S506
