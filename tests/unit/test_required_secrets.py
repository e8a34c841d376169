"""The generate switches (``*_generate_passwords``) and the secrets each requires when false
(inventory_checks.REQUIRED_SECRETS): one table for the site's inventory check and every role's
own preflight, matched against the roles' defaults and the site's role groups; the weak-secret
message once per variable; what the docs say about them (the AWX credential type, the
job-scoped inventory block, the vault file template's limits) agrees with the code."""

# ruff: noqa: S105, S106 (the passwords are test data)
import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from ansible_collections.hardened.stack.plugins.filter import preflight
from ansible_collections.hardened.stack.plugins.module_utils import encode
from ansible_collections.hardened.stack.plugins.module_utils import inventory_checks as ic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
GOOD = "Kq8vN2pL7mR4tW9z"


def _defaults(role):
    with open(os.path.join(ROOT, "roles", role, "defaults", "main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def _all_defaults():
    out = {}
    for role in os.listdir(os.path.join(ROOT, "roles")):
        if os.path.exists(os.path.join(ROOT, "roles", role, "defaults", "main.yml")):
            out.update(_defaults(role))
    return out


def _site_roles():
    return {r["role"]: r["groups"] for r in _defaults("_common")["_common_site_roles"]}


# --- the table ---------------------------------------------------------------------------------

def test_every_role_that_generates_a_secret_has_a_switch():
    """The producers of the secrets contract (secrets.KINDS) are the roles of the table, plus
    prometheus and alertmanager, which create the monitoring secret too."""
    from ansible_collections.hardened.stack.plugins.module_utils import secrets  # noqa: PLC0415

    producers = {spec.producer.rsplit(".", 1)[1] for spec in secrets.KINDS.values()}
    assert producers | {"prometheus", "alertmanager"} == set(ic.REQUIRED_SECRETS)


@pytest.mark.parametrize("role", sorted(ic.REQUIRED_SECRETS))
def test_switch_and_names_are_the_roles_own_and_the_groups_the_sites(role):
    groups, flag, names = ic.REQUIRED_SECRETS[role]
    defaults = _defaults(role)
    assert flag == role + "_generate_passwords"
    # true by default, or following the exporters' switch (prometheus, alertmanager)
    assert defaults[flag] is True or defaults[flag] == "{{ exporters_generate_passwords | default(true) }}"
    for name in names:
        assert name.split("[]", 1)[0] in defaults, name
    assert list(groups) == _site_roles()[role]


@pytest.mark.parametrize("role", sorted(ic.REQUIRED_SECRETS))
def test_the_roles_preflight_runs_the_tables_check(role):
    with open(os.path.join(ROOT, "roles", role, "tasks", "preflight.yml"), encoding="utf-8") as fh:
        text = fh.read()
    assert f"'{role}' | hardened.stack.required_secret_problems(inventory_hostname," in text
    assert f"*('{role}' | hardened.stack.required_secret_variables)" in text
    # the old inline copies of the names are gone
    assert "postgresql_superuser_password | length > 0" not in text and "_redis_missing:" not in text


def test_filter_checks_the_names_of_the_table():
    names = preflight.required_secret_variables("postgresql")
    assert names[0] == "postgresql_generate_passwords" and names.count("postgresql_users") == 1
    values = [False, GOOD, GOOD, "", GOOD, [{"name": "app", "password": GOOD}, {"name": "ro"}]]
    problems = preflight.required_secret_problems("postgresql", "pg1", values)
    assert problems == ["pg1: postgresql_rewind_password, postgresql_users[ro].password empty while "
                        "postgresql_generate_passwords is false. Fix: set them from a vault, or let the role generate "
                        "them (postgresql_generate_passwords: true)."]
    assert GOOD not in problems[0]
    assert preflight.required_secret_problems("postgresql", "pg1", [True, "", "", "", "", []]) == []
    assert preflight.required_secret_problems("backup", "b1", ["false", "", GOOD])[0].startswith(
        "b1: backup_repo_cipher_pass empty while backup_generate_passwords is false")
    with pytest.raises(Exception, match="3 variables"):
        preflight.required_secret_problems("backup", "b1", [False, ""])


# --- the inventory check ---------------------------------------------------------------------------

GROUPS = {"all": ["lb1", "pg1", "pg2", "mon1", "bk1"], "postgres": ["pg1", "pg2"], "monitoring": ["mon1"],
          "backup": ["bk1"], "loadbalancers": ["lb1"]}


def _checks(common=None, **per_host):
    hostvars = {h: dict(common or {}) for h in GROUPS["all"]}
    for host, values in per_host.items():
        hostvars[host].update(values)
    return ic.secret_checks(GROUPS, hostvars, _all_defaults(), lab=False)


def test_backup_switch_off_without_passphrase_stops_naming_it_once():
    out = _checks({"backup_generate_passwords": False, "backup_pg_dump_password": GOOD})
    assert out == ["bk1, pg1, pg2: backup_repo_cipher_pass empty while backup_generate_passwords is false. Fix: set "
                   "it from a vault, or let the role generate it (backup_generate_passwords: true)."]
    assert _checks({"backup_generate_passwords": False, "backup_pg_dump_password": GOOD,
                    "backup_repo_cipher_pass": GOOD}) == []
    assert _checks({}) == []  # generation on (the default): nothing required
    # not a boolean: the argument_specs validation names it, not this check
    assert _checks({"backup_generate_passwords": "perhaps"}) == []


def test_monitoring_switch_off_covers_exporters_prometheus_and_alertmanager():
    out = _checks({"exporters_generate_passwords": False})
    # prometheus and alertmanager follow the exporters' switch
    assert sorted(m.split(" empty")[0] for m in out) == ["every host: exporters_auth_password",
                                                         "mon1: alertmanager_auth_password",
                                                         "mon1: prometheus_auth_password"]
    assert "every host: exporters_auth_password empty while exporters_generate_passwords is false." in " ".join(out)
    # and their passwords default to the exporters' one
    assert _checks({"exporters_generate_passwords": False, "exporters_auth_password": GOOD}) == []
    # a role's own switch beats the exporters'
    out = _checks({"exporters_generate_passwords": False, "prometheus_generate_passwords": True,
                   "alertmanager_generate_passwords": True})
    assert len(out) == 1 and out[0].startswith("every host: exporters_auth_password")
    out = _checks({"prometheus_generate_passwords": "false"})
    assert out == ["mon1: prometheus_auth_password empty while prometheus_generate_passwords is false. Fix: set it "
                   "from a vault, or let the role generate it (prometheus_generate_passwords: true)."]


def test_postgresql_switch_off_names_the_users_entries_too():
    out = _checks({"postgresql_generate_passwords": False, "postgresql_superuser_password": GOOD,
                   "postgresql_replication_password": GOOD, "postgresql_rewind_password": GOOD,
                   "postgresql_patroni_api_password": GOOD, "postgresql_users": [{"name": "app"}]})
    assert out == ["pg1, pg2: postgresql_users[app].password empty while postgresql_generate_passwords is false. "
                   "Fix: set it from a vault, or let the role generate it (postgresql_generate_passwords: true)."]


def test_a_weak_secret_set_for_every_host_is_one_message():
    out = _checks({"redis_app_password": "changeme", "app_api_token": "short"})
    assert out == [
        "every host: app_api_token is short (< 12 characters as Ansible rendered it: a vault value containing {{ or "
        "{% is rendered as a template unless it is tagged !unsafe in the vault file, see docs/secrets.md). Fix: set "
        "a strong value (from a vault), or leave it empty where the role generates it (docs/secrets.md).",
        "every host: redis_app_password is a default or demo password. Fix: set a strong value (from a vault), or "
        "leave it empty where the role generates it (docs/secrets.md)."]
    # set on two hosts: one message naming both; the values never appear
    out = _checks(pg1={"postgresql_superuser_password": "s3cr3t"}, pg2={"postgresql_superuser_password": "s3cr3t"})
    assert len(out) == 1 and out[0].startswith("pg1, pg2: postgresql_superuser_password is short")
    assert "s3cr3t" not in out[0]
    assert _checks({"redis_app_password": GOOD}) == []


def test_the_whole_inventory_check_reports_a_group_var_once():
    problems = ic.inventory_problems({k: v for k, v in GROUPS.items() if k != "all"},
                                     {h: {"ansible_host": "10.0.0.%d" % i, "redis_admin_password": "admin"}
                                      for i, h in enumerate(GROUPS["all"], 1)},
                                     {}, _all_defaults(), lab=False)
    assert [p for p in problems if "redis_admin_password" in p] == [
        "every host: redis_admin_password is a default or demo password. Fix: set a strong value (from a vault), or "
        "leave it empty where the role generates it (docs/secrets.md)."]


# --- each role's own preflight, run by ansible-playbook -----------------------------------------

CHECK = "Check that every password is given when generation is off"


def _role_preflight(tmp_path, role, extra, groups=("backup", "monitoring")):
    """The result of the role's check task: (failed, msg, whole output)."""
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"h1": {"ansible_connection": "local"}},
                                           "children": {g: {"hosts": {"h1": {}}} for g in groups}}}))
    play = tmp_path / "play.yml"
    # the role's own preflight file with the role's defaults (include_role would also run the
    # _common dependency, which needs a real host)
    play.write_text(yaml.safe_dump([{
        "hosts": "all", "gather_facts": False,
        "vars_files": [os.path.join(ROOT, "roles", role, "defaults", "main.yml")],
        "tasks": [{"ansible.builtin.import_tasks": os.path.join(ROOT, "roles", role, "tasks", "preflight.yml")}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_NOCOLOR="1")
    args = [ANSIBLE_PLAYBOOK, "-i", str(inv), str(play)]
    for key, value in extra.items():
        args += ["-e", json.dumps({key: value})]
    res = subprocess.run(args, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300, check=False)
    data = json.loads(res.stdout)
    for task in data["plays"][0]["tasks"]:
        if task["task"]["name"].endswith(CHECK):
            result = task["hosts"]["h1"]
            return bool(result.get("failed")), result.get("msg", ""), res.stdout + res.stderr
    raise AssertionError("the check did not run: " + (res.stdout + res.stderr)[-3000:])


ROLE_CASES = [
    ("backup", {"backup_generate_passwords": False}, "h1: backup_repo_cipher_pass, backup_pg_dump_password empty "
     "while backup_generate_passwords is false"),
    ("backup", {"backup_generate_passwords": False, "backup_repo_cipher_pass": GOOD, "backup_pg_dump_password": GOOD},
     None),
    ("backup", {}, None),
    ("exporters", {"exporters_generate_passwords": False}, "h1: exporters_auth_password empty while "
     "exporters_generate_passwords is false"),
    # -e key=value gives the string "false"
    ("exporters", {"exporters_generate_passwords": "false"}, "h1: exporters_auth_password empty"),
    ("prometheus", {"exporters_generate_passwords": False}, "h1: prometheus_auth_password empty while "
     "prometheus_generate_passwords is false"),
    ("prometheus", {"exporters_generate_passwords": False, "exporters_auth_password": GOOD}, None),
    ("alertmanager", {"exporters_generate_passwords": False}, "h1: alertmanager_auth_password empty while "
     "alertmanager_generate_passwords is false"),
    ("alertmanager", {"alertmanager_generate_passwords": False, "alertmanager_auth_password": GOOD}, None),
]


@pytest.mark.parametrize("role, extra, expected", ROLE_CASES)
def test_the_roles_preflight_stops_before_any_change(tmp_path, role, extra, expected):
    failed, msg, out = _role_preflight(tmp_path, role, extra)
    if expected is None:
        assert not failed, msg
    else:
        assert failed and expected in msg, out[-3000:]
    assert GOOD not in out


# --- what the docs say -----------------------------------------------------------------------------

def _recipe():
    from lab import jobscoped  # noqa: PLC0415

    with open(jobscoped.DOC, encoding="utf-8") as fh:
        return jobscoped.recipe(fh.read())


def _example_wiring():
    """{role variable: vault_* variable} of the example inventory (postgresql_users[].password:
    its entries' references)."""
    out = {}
    folder = os.path.join(ROOT, "inventories", "example", "group_vars")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".yml"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        for key, value in data.items():
            refs = re.findall(r"\{\{\s*(vault_\w+)\s*\}\}", str(value)) if isinstance(value, str) else []
            if refs:
                out[key] = refs[0]
        for entry in data.get("postgresql_users", []):
            refs = re.findall(r"\{\{\s*(vault_\w+)\s*\}\}", str(entry.get("password", "")))
            if refs:
                out.setdefault("postgresql_users[].password", refs[0])
    return out


def test_job_scoped_inventory_turns_every_switch_off():
    inventory = _recipe()["inventory"]
    for role, (_groups, flag, _names) in ic.REQUIRED_SECRETS.items():
        if role in ("prometheus", "alertmanager"):
            # they follow exporters_generate_passwords
            assert flag not in inventory or inventory[flag] is False
            continue
        assert inventory.get(flag) is False, flag


def test_awx_credential_requires_exactly_what_the_switches_require():
    """With the switches off every variable of REQUIRED_SECRETS must come from the credential:
    its field is required; a required field has such a variable behind it (or is the CA)."""
    parts = _recipe()
    injected = dict(parts["extra_vars"])
    wiring = _example_wiring()
    needed = set()
    for _groups, _flag, names in ic.REQUIRED_SECRETS.values():
        for name in names:
            variable = name if name in injected else wiring.get(name)
            assert variable in injected, f"{name}: no injector sets it (nor a vault_* variable it is wired to)"
            needed.add(injected[variable])
    wanted = needed | {"ca_crt", "ca_key"}
    assert set(parts["required"]) == wanted, set(parts["required"]) ^ wanted


def test_vault_template_lists_the_limits_of_the_code():
    """inventories/example's vault file template carries the generated limits (lab/docs.py), and
    they are the encoders' (a limit added to an encoder changes them: `python -m lab docs --check`
    fails until regenerated)."""
    from lab import docs  # noqa: PLC0415

    with open(docs.VAULT_EXAMPLE, encoding="utf-8") as fh:
        text = fh.read()
    assert docs.render(text, docs.SECTIONS[docs.VAULT_EXAMPLE], "vault.yml.example", "# ") == text
    section = text.split("<!-- BEGIN GENERATED: vault-limits -->", 1)[1].split("<!-- END GENERATED", 1)[0]
    flat = " ".join(line.lstrip("# ").strip() for line in section.splitlines())
    assert "redis_sentinel_password: a line feed, a carriage return, a space" in flat
    assert "postgresql_superuser_password, postgresql_replication_password, postgresql_rewind_password: a line " \
           "feed, a carriage return, a character outside ASCII, white space at the end" in flat
    assert "more than 72 bytes" in flat
    with open(os.path.join(ROOT, "docs", "secrets.md"), encoding="utf-8") as fh:
        doc = fh.read()
    assert docs.render(doc, docs.SECTIONS[docs.SECRETS_DOC], "docs/secrets.md") == doc


def _refusal_space():
    """Values the encoders are run on to collect every reason they can give: each character of
    the first 0x3100 code points (and a few beyond) at the start, inside and at the end of a
    value, and values around bcrypt's 72 bytes."""
    chars = [chr(c) for c in range(0x3100)] + ["\ud800", "\udcff", "\ufeff", "\ufffe", "\uffff", "\U0001f600"]
    for ch in chars:
        yield ch + "abcd"
        yield "ab" + ch + "cd"
        yield "abcd" + ch
    for n in range(60, 80):
        yield "a" * n
        yield "\u00e4" * (n // 2)


def test_every_refusal_of_an_encoder_is_told_by_a_limit_probe():
    """LIMIT_PROBES (what the docs list) meet every reason the encoders of SECRET_FORMATS give:
    a new refusal in an encoder fails here until the docs can tell it."""
    formats = sorted({f for _name, _shape, fmts, _where in ic.SECRET_FORMATS for f in fmts})
    space = list(_refusal_space())
    for fmt in formats:
        told = set()
        for _text, position, samples in ic.LIMIT_PROBES:
            for sample in samples:
                for value, inside in ic.probe_values(position, sample):
                    told.update(encode.refusals(value, [fmt]))
                    if inside is not None:
                        told.update(encode.refusals(inside, [fmt]))
        seen = set()
        for value in space:
            seen.update(encode.refusals(value, [fmt]))
        assert seen <= told, (fmt, seen - told)


def test_limits_are_the_encoders_refusals():
    common, rows = ic.secret_limits()
    assert common == ["a NUL character", "text that is not valid UTF-8"]
    limits = {name: features for name, _where, features in rows}
    assert limits["redis_sentinel_password"][:4] == ["a line feed", "a carriage return", "a space", "a tab"]
    assert "white space at the start" not in limits["postgresql_superuser_password"]  # only at the end
    assert limits["backup_repo_cipher_pass"] == ["a line feed", "white space at the start", "white space at the end"]
    assert limits["redis_app_password"] == []


def test_readme_shows_a_templated_default_as_written():
    """A default the spec leaves out (rendered on the host) was shown as '' in README's tables,
    which for the monitoring switches read as "off"."""
    from lab import docs  # noqa: PLC0415

    text = docs.variables_overview()
    assert "| `prometheus_generate_passwords` | bool | `{{ exporters_generate_passwords \\| default(true) }}` |" in text
    assert "| `exporters_generate_passwords` | bool | `true` |" in text
    assert "| `backup_generate_passwords` | bool | `true` |" in text
