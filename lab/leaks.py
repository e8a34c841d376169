"""Where a secret must never show: ``python -m lab leaks -i INVENTORY`` (issue 16).

1. ``ansible-playbook site.yml -v --check --diff`` against the inventory: its output must hold
   no secret, and its recap must report 0 changed (a converged stack).
2. Every host's process list (``ps -eww -o args``, as root): no secret on any command line.

The secrets are every generated file under the inventory's ``hardened_stack_secrets_dir``
(read with the collection's secrets module) and every value the inventory gives a ``*_password``
/ ``*_pass`` variable or ``app_secret_environment``, as written and as a JSON string would
escape it. Findings name the secret by its first characters only. Exit 1 on a leak or a change.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

from . import collection, variables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every vault-style value the inventory sets (a lab's group_vars/all/vault.yml ...) and the
# directory of the generated ones, per host.
KNOWN = {
    "directory": "{{ hardened_stack_secrets_dir | default('') }}",
    "vault": "{{ query('ansible.builtin.vars', 'hardened_stack_secrets_dir', "
             "*query('ansible.builtin.varnames', '(_password|_pass)$'))[1:] }}",
    "environment": "{{ (app_secret_environment | default({})).values() | list }}",
}


def known_secrets(inventory: str, env: dict | None = None, minimum: int = 8) -> set[str]:
    """Every password of the stack the inventory describes (at least ``minimum`` characters:
    shorter values would match ordinary output)."""
    found: set[str] = set()
    rendered = variables.render(inventory, KNOWN, "all", env=env)
    for answer in rendered.values():
        found.update(str(v) for v in answer["vault"] + answer["environment"] if v not in (None, ""))
    secrets = collection.module_utils("secrets")
    for directory in {answer["directory"] for answer in rendered.values() if answer["directory"]}:
        for kind, params in collection.stored_secrets(directory):
            found.add(secrets.read(kind, directory, **params))
    return {s for s in found if len(s) >= minimum}


def leaked(text: str, known: set[str]) -> list[str]:
    """The secrets found in ``text``, as written or JSON-escaped, named by their first four
    characters."""
    return sorted(s[:4] + "…" for s in known if s in text or json.dumps(s)[1:-1] in text
                  or json.dumps(s, ensure_ascii=False)[1:-1] in text)


def recap(out: str) -> dict[str, dict[str, int]]:
    """{host: {ok: n, changed: n, failed: n, ...}} from the last PLAY RECAP of ``out``."""
    rows = {}
    # Only recap rows ("host : ok=N changed=N ..."): a callback's summary may follow the recap
    # (profile_tasks: "role : task ---- 1.2s").
    for m in re.finditer(r"^(\S+)\s+:\s+(ok=\d+.*)$", out.rsplit("PLAY RECAP", maxsplit=1)[-1], re.M):
        rows[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return rows


def changed_tasks(out: str, host: str) -> list[str]:
    """The names of the tasks that report ``changed`` for ``host`` in an ansible-playbook output
    (default callback), in order."""
    found, task = [], None
    for line in out.splitlines():
        m = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.*)\] \**$", line)
        if m:
            task = m.group(1)
        elif task and re.match(r"^changed: \[%s(?: -> [^]]*)?\]" % re.escape(host), line) and (
                not found or found[-1] != task):
            found.append(task)
    return found


def recap_changed(out: str) -> int:
    """How many tasks changed, over every host of the last PLAY RECAP."""
    return sum(row.get("changed", 0) for row in recap(out).values())


def run(specs: list[dict], inventory: str) -> int:
    from . import report  # noqa: PLC0415 (SSH as the lab user)

    known = known_secrets(inventory)
    print(f"{len(known)} secrets known (generated files and vault-style values)")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    res = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inventory,
                          os.path.join(ROOT, "site.yml"), "-v", "--check", "--diff"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    out = res.stdout + res.stderr
    bad = 0
    changed = recap_changed(out)
    found = leaked(out, known)
    print(f"site.yml -v --check --diff: rc={res.returncode}, changed={changed}, "
          f"{len(out.splitlines())} lines, secrets in the output: {found or 'none'}")
    if res.returncode != 0:
        print("\n".join(out.splitlines()[-30:]))
    bad += res.returncode != 0 or changed != 0 or bool(found)
    for spec in specs:
        ps = report._ssh(spec["address"], "ps -eww -o args=")  # noqa: SLF001 (the lab's SSH helper)
        if ps is None:
            print(f"{spec['name']:8} process list: no answer")
            bad += 1
            continue
        found = leaked(ps, known)
        print(f"{spec['name']:8} process list: {len(ps.splitlines())} processes, secrets on a command line: "
              f"{found or 'none'}")
        bad += bool(found)
    return 1 if bad else 0
