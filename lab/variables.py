"""Inventory variables as Ansible renders them, for the lab tool, the benches and the Molecule
verifiers: templates (``"{{ lab_cache_dir }}/secrets"``), vault values and ``!unsafe`` strings
come out as the roles see them. No host is contacted: ``ansible.builtin.debug`` runs on the
controller, and its answer is read from the JSON callback (secrets never reach a terminal or
a file).

Role defaults are not inventory variables, so :func:`with_default` builds an expression that
falls back to the owning role's default (``roles/<prefix>/defaults/main.yml``, the prefix being
the variable's first word, the collection's naming rule), e.g. ``redis_cluster_name`` ->
``redis_cluster_name | default(redis_group | default('redis'))``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RenderError(RuntimeError):
    """Ansible could not render the expressions (the message names the hosts and Ansible's error)."""


def _ansible() -> str:
    local = os.path.join(ROOT, ".venv", "bin", "ansible")
    return local if os.path.exists(local) else (shutil.which("ansible") or "ansible")


def render(inventory: str, expressions: dict, pattern: str = "all", *, env: dict | None = None,
           cwd: str | None = None, timeout: int = 300) -> dict[str, dict]:
    """{host: {key: value}}: each expression (a Jinja template) rendered by Ansible for every
    host of ``pattern`` in ``inventory``."""
    run_env = dict(env if env is not None else os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    res = subprocess.run([_ansible(), pattern, "-i", inventory, "-m", "ansible.builtin.debug",
                          "-a", json.dumps({"msg": expressions})], env=run_env, cwd=cwd or ROOT,
                         capture_output=True, text=True, timeout=timeout, check=False)
    try:
        hosts = json.loads(res.stdout)["plays"][0]["tasks"][0]["hosts"]
    except (ValueError, KeyError, IndexError):
        raise RenderError(f"ansible {pattern} -i {inventory} rendered nothing: {res.stderr.strip()[-2000:]}") from None
    failed = {host: r.get("msg") for host, r in hosts.items() if r.get("failed")}
    if failed:
        raise RenderError("; ".join(f"{host}: {msg}" for host, msg in sorted(failed.items())))
    return {host: r.get("msg") or {} for host, r in hosts.items()}


@functools.cache
def role_defaults(role: str) -> dict:
    """roles/<role>/defaults/main.yml ({} when the role has none)."""
    path = os.path.join(ROOT, "roles", role, "defaults", "main.yml")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def with_default(name: str, _seen: tuple[str, ...] = ()) -> str:
    """A Jinja expression (no braces) for variable ``name`` that falls back to its role's
    default: a literal default as a literal, a default that is just another variable
    (``"{{ redis_group }}"``) through that variable's expression, no default: ``''``."""
    defaults = role_defaults(name.split("_", 1)[0])
    if name not in defaults or name in _seen:
        return f"{name} | default('')"
    value = defaults[name]
    ref = re.fullmatch(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}", value.strip()) if isinstance(value, str) else None
    if ref:
        return f"{name} | default({with_default(ref.group(1), (*_seen, name))})"
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        raise RenderError(f"{name}'s default is a template this helper does not follow: {value!r}")
    return f"{name} | default({json.dumps(value)})"
