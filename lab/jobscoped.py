"""The job-scoped recipe of docs/secrets.md, run as written: ``python -m lab job-scoped -i INV``.

docs/secrets.md tells users whose controller is thrown away after each job (AWX execution
environments) how to run with every secret from a vault or an AWX custom credential, the CA
from files, and a secrets directory and CA directory that live for one job only. This command
runs that recipe against a converged lab, the way AWX would:

1. From docs/secrets.md it takes the inventory block (``group_vars/all/main.yml``), the wrapper
   playbook, the credential type's fields and ``required`` list, and its injectors. Nothing of
   the recipe is restated here: a change to the docs is what runs.
2. The credential's values are what the stack runs with now: each injector's variable is read
   the way its role reads it (the inventory's vault value, else the generated file, through the
   collection's secrets module). Fields that several injectors share must agree.
3. A copy of the inventory gets the recipe's block (last in group_vars/all, so it wins) and the
   example inventory's wiring of ``vault_*`` variables; the credential's values are passed as an
   extra-vars file tagged ``!unsafe`` (as AWX writes them), the CA as two private files (as the
   credential's file injectors do).
4. ``ansible-playbook WRAPPER`` must exit 0, change nothing on a stack host (the values are the
   deployed ones: a real rerun of site.yml), print no secret, remove the job's directory, and
   leave the lab's own secrets directory as it was.

Exit 1 when any of that fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

import yaml

from . import collection, leaks, variables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "secrets.md")
EXAMPLE = os.path.join(ROOT, "inventories", "example", "group_vars")

# Where each variable an injector sets is read on a lab host, as its role reads it: (kind of
# the generated file, the group whose first host's variables apply, parameters of the file's
# path given by variables of that host; None: the parameter's own literal value).
SOURCES = {
    "postgresql_superuser_password": ("postgresql", "postgres", {"user": "postgresql_superuser"}),
    "postgresql_replication_password": ("postgresql", "postgres", {"user": "postgresql_replication_user"}),
    "postgresql_rewind_password": ("postgresql", "postgres", {"user": "postgresql_rewind_user"}),
    "postgresql_patroni_api_password": ("patroni_api", "postgres", {}),
    "vault_app_db_password": ("postgresql", "app", {"user": "app_db_user"}),
    "vault_redis_app_password": ("redis", "redis", {"user": ("app",)}),
    "redis_replication_password": ("redis", "redis", {"user": ("replication",)}),
    "redis_sentinel_password": ("redis", "redis", {"user": ("sentinel",)}),
    "redis_exporter_password": ("redis", "redis", {"user": ("exporter",)}),
    "redis_admin_password": ("redis", "redis", {"user": ("admin",)}),
    "exporters_auth_password": ("monitoring", "monitoring", {}),
    "prometheus_auth_password": ("monitoring", "monitoring", {}),
    "alertmanager_auth_password": ("monitoring", "monitoring", {}),
    "backup_repo_cipher_pass": ("backup_cipher", "backup", {}),
    "backup_pg_dump_password": ("backup_user", "backup", {"user": "backup_pg_dump_user"}),
}
# The variable a vault_* reference replaces, on the source host, when the lab's inventory sets it.
VAULT_OF = {"vault_app_db_password": "app_db_password", "vault_redis_app_password": "redis_app_password"}


class RecipeError(RuntimeError):
    """docs/secrets.md does not hold the recipe in the expected shape, or the lab disagrees with it."""


def yaml_blocks(text: str) -> list[tuple[str, str]]:
    """(the paragraph line before it, body) of every ```yaml block of a Markdown text."""
    out = []
    for m in re.finditer(r"^```yaml\n(.*?)^```$", text, re.M | re.S):
        before = [line for line in text[:m.start()].splitlines() if line.strip()]
        out.append((before[-1] if before else "", m.group(1)))
    return out


def recipe(text: str) -> dict:
    """The recipe's four parts from docs/secrets.md: inventory (dict), wrapper (list of plays),
    fields (id -> field), required (list) and injectors (extra_vars: variable -> field id)."""
    found: dict = {}
    for lead, body in yaml_blocks(text):
        data = yaml.safe_load(body)
        if lead.startswith("Inventory (") and "hardened_stack_secrets_dir" in (data or {}):
            found["inventory"] = data
        elif lead.startswith("A wrapper playbook"):
            found["wrapper"] = data
        elif isinstance(data, dict) and "fields" in data:
            found["fields"] = {f["id"]: f for f in data["fields"]}
            found["required"] = list(data.get("required", []))
        elif isinstance(data, dict) and "extra_vars" in data:
            found["injectors"] = data
    missing = {"inventory", "wrapper", "fields", "injectors"} - set(found)
    if missing:
        raise RecipeError(f"{DOC}: no {', '.join(sorted(missing))} block found")
    extra = {}
    for var, template in found["injectors"]["extra_vars"].items():
        # "{{ field }}", or "{{ tower.filename.field }}" (the path of a file injector's file)
        m = re.fullmatch(r"\{\{\s*(?:tower\.filename\.)?(\w+)\s*\}\}", str(template))
        if m is None:
            raise RecipeError(f"injector {var}: {template!r} is not one field")
        extra[var] = m.group(1)
    found["extra_vars"] = extra
    return found


def credential_values(inventory: str, extra_vars: dict[str, str]) -> dict[str, str]:
    """{field id: value} for the credential fields the injectors' secret variables use, read as
    the roles read them (vault variable, else the generated file)."""
    values: dict[str, str] = {}
    for var, field in extra_vars.items():
        if field.startswith("ca_"):
            continue
        if var.startswith("hs_ca_"):
            continue
        if var not in SOURCES:
            raise RecipeError(f"the injector sets {var}, which this check cannot read from the lab (add it to "
                              f"lab/jobscoped.py SOURCES)")
        kind, group, params = SOURCES[var]
        names = {p: n for p, n in params.items() if isinstance(n, str)}
        expressions = collection.secret_expressions(kind, VAULT_OF.get(var, var))
        expressions.update({p: "{{ %s }}" % variables.with_default(n) for p, n in names.items()})
        rendered = variables.render(inventory, expressions, group)
        host = sorted(rendered)[0]
        given = {p: (n[0] if isinstance(n, tuple) else rendered[host][p]) for p, n in params.items()}
        value = collection.secret(kind, rendered[host], **given)
        if field in values and values[field] != value:
            raise RecipeError(f"field {field}: the variables it is injected into run with different values in "
                              f"the lab ({var} differs)")
        values[field] = value
    return values


def unsafe_yaml(values: dict[str, str]) -> str:
    """An extra-vars file with every value tagged ``!unsafe`` (as AWX writes a credential's)."""
    return "---\n" + "".join(f"{k}: !unsafe {json.dumps(v)}\n" for k, v in values.items())


def example_wiring(group: str) -> dict:
    """The example inventory's variables of ``group`` that reference a ``vault_*`` variable."""
    path = os.path.join(EXAMPLE, f"{group}.yml")
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    return {k: v for k, v in data.items() if isinstance(v, str) and "vault_" in v}


def overlay(copy: str, block: dict) -> None:
    """The inventory copy as the recipe wants it: the recipe's block in group_vars/all (loaded
    last), the vault_* wiring of the example inventory in the group files."""
    with open(os.path.join(copy, "group_vars", "all", "zz-job-scoped.yml"), "w", encoding="utf-8") as fh:
        fh.write("---\n# docs/secrets.md, 'In a vault or an AWX credential instead of $HOME'\n")
        yaml.safe_dump(block, fh, sort_keys=False)
    for group in ("app", "redis", "postgres"):
        path = os.path.join(copy, "group_vars", f"{group}.yml")
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        data.update(example_wiring(group))
        if group == "app" and data.get("app_sentinel_user") and data.get("app_sentinel_user") == data.get(
                "app_redis_user"):
            data["app_sentinel_password"] = data["app_redis_password"]
        if group == "postgres":
            # the example's postgresql_users entry for the app carries "{{ vault_app_db_password }}"
            with open(os.path.join(EXAMPLE, "postgres.yml"), encoding="utf-8") as fh:
                example = {u["name"]: u for u in (yaml.safe_load(fh) or {}).get("postgresql_users", [])}
            for entry in data.get("postgresql_users", []):
                if entry["name"] in example and "password" in example[entry["name"]]:
                    entry["password"] = example[entry["name"]]["password"]
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("---\n")
            yaml.safe_dump(data, fh, sort_keys=False)


def tree_state(directory: str) -> dict[str, tuple[int, float]]:
    out = {}
    for folder, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(folder, name)
            st = os.stat(path)
            out[os.path.relpath(path, directory)] = (st.st_size, st.st_mtime)
    return out


def run(inventory: str) -> int:
    with open(DOC, encoding="utf-8") as fh:
        parts = recipe(fh.read())
    lab = variables.render(inventory, {"secrets": "{{ hardened_stack_secrets_dir }}", "ca": "{{ pki_ca_dir }}"},
                           "localhost")
    lab_secrets, lab_ca = lab["localhost"]["secrets"], lab["localhost"]["ca"]
    values = credential_values(inventory, parts["extra_vars"])
    required = [f for f in parts["required"] if not f.startswith("ca_")]
    print(f"credential: {len(values)} secret fields from the lab's state, {len(parts['fields'])} fields in the "
          f"type, required: {', '.join(parts['required'])}")
    unknown = sorted(set(parts["extra_vars"].values()) - set(parts["fields"]))
    if unknown:
        raise RecipeError(f"the injectors use fields the credential type does not declare: {', '.join(unknown)}")
    absent = [f for f in required if not values.get(f)]
    if absent:
        raise RecipeError(f"required fields without a value: {', '.join(absent)}")
    before = tree_state(lab_secrets)
    job = f"labcheck-{os.getpid()}"
    work = tempfile.mkdtemp(prefix="hs-job-scoped-")
    try:
        copy = os.path.join(work, "inventory")
        shutil.copytree(os.path.abspath(inventory), copy)
        overlay(copy, parts["inventory"])
        wrapper = os.path.join(work, "job.yml")
        with open(wrapper, "w", encoding="utf-8") as fh:
            yaml.safe_dump(parts["wrapper"], fh, sort_keys=False)
        cred = os.path.join(work, "credential")
        os.mkdir(cred, 0o700)
        injected = {var: values[field] for var, field in parts["extra_vars"].items() if field in values}
        for name, src in (("ca_crt", "ca.crt"), ("ca_key", "ca.key")):
            dest = os.path.join(cred, name)
            shutil.copyfile(os.path.join(lab_ca, src), dest)
            os.chmod(dest, 0o600)
        for var, field in parts["extra_vars"].items():
            if field in ("ca_crt", "ca_key"):
                injected[var] = os.path.join(cred, field)
        extra = os.path.join(cred, "extra_vars.yml")
        with open(extra, "w", encoding="utf-8") as fh:
            fh.write(unsafe_yaml(injected))
        os.chmod(extra, 0o600)
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))  # the checkout's, from the job's directory
        collection.importable()
        cmd = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", copy, wrapper,
               "-e", f"@{extra}", "-e", json.dumps({"awx_job_id": job})]
        print("running the wrapper playbook of docs/secrets.md (site.yml inside) with awx_job_id=" + job)
        res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = res.stdout + res.stderr
    os.makedirs(os.path.join(ROOT, ".lab"), exist_ok=True)
    log = os.path.join(ROOT, ".lab", "job-scoped.log")  # no secret reaches it: checked below
    with open(log, "w", encoding="utf-8") as fh:
        fh.write(out)
    rows = leaks.recap(out)
    stack_changed = {h: r.get("changed", 0) for h, r in rows.items() if h != "localhost" and r.get("changed")}
    found = leaks.leaked(out, {v for v in values.values() if len(v) >= 8})
    job_dir = f"/tmp/hardened-stack-job-{job}"
    left = os.path.exists(job_dir)
    after = tree_state(lab_secrets)
    print(f"wrapper: rc={res.returncode}, hosts {len(rows)}, changed on stack hosts: {stack_changed or 'none'}, "
          f"secrets in the output: {found or 'none'}")
    print(f"output: {os.path.relpath(log, ROOT)}")
    for host, count in sorted(stack_changed.items()):
        print(f"  changed on {host}: " + "; ".join(leaks.changed_tasks(out, host)[:5]) + f" ({count})")
    print(f"job directory {job_dir}: {'LEFT BEHIND' if left else 'removed'}; lab secrets directory "
          f"{'unchanged' if before == after else 'CHANGED'} ({len(after)} files)")
    if res.returncode != 0:
        print("\n".join(out.splitlines()[-40:]))
    bad = res.returncode != 0 or stack_changed or found or left or before != after
    return 1 if bad else 0
