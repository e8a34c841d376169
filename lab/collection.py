"""The collection's own Python code (plugins/module_utils), for the lab tool.

The lab answers no question the collection already answers (a host's address, the port map,
the firewall's rules): it imports the collection's module, from the checkout linked as
``ansible_collections/hardened/stack`` under ``.build/collections`` (``make collection-link``).
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")


def importable() -> str:
    """Link the checkout as ``ansible_collections/hardened/stack`` under .build/collections
    (once) and put that directory on ``sys.path``; return it."""
    link = os.path.join(COLLECTIONS, "ansible_collections", "hardened", "stack")
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(ROOT, os.path.dirname(link)), link)
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    return COLLECTIONS


def copy_checkout(dest: str) -> str:
    """The checkout's files (tracked, and untracked but not ignored: `git ls-files -co
    --exclude-standard`) copied under ``dest``; returns ``dest``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))
    return dest


def module_utils(name: str):
    """``ansible_collections.hardened.stack.plugins.module_utils.<name>``."""
    importable()
    return importlib.import_module(f"ansible_collections.hardened.stack.plugins.module_utils.{name}")


# --- secrets (plugins/module_utils/secrets.py) --------------------------------------------------
# The inventory variable each layout parameter comes from (what the roles pass to the
# hardened.stack.secret lookup): secrets/<kind's path> is filled from the host's variables.
SECRET_PARAMETERS = {
    "postgresql": {"cluster": "postgresql_cluster_name"},
    "patroni_api": {"cluster": "postgresql_cluster_name"},
    "redis": {"cluster": "redis_cluster_name"},
    "backup_cipher": {"stanza": "backup_stanza"},
    "backup_user": {"stanza": "backup_stanza"},
}


def secret_expressions(kind: str, vault: str | None = None) -> dict[str, str]:
    """What to render (lab/variables.py) on a host to read secret ``kind`` as that host's roles
    do: the secrets directory, the path's parameters (falling back to the roles' defaults) and
    the vault variable ``vault`` (a name or a Jinja expression) that replaces the file when set."""
    from . import variables  # noqa: PLC0415 (variables imports nothing of the collection)

    out = {"directory": "{{ hardened_stack_secrets_dir | default('') }}"}
    for param, name in SECRET_PARAMETERS.get(kind, {}).items():
        out[param] = "{{ %s }}" % variables.with_default(name)
    if vault:
        # a variable name, or an expression (a postgresql_users entry's password)
        out["vault"] = "{{ (%s) | default('') }}" % vault
        if vault.isidentifier():
            out["vault_variable"] = vault  # no template: comes back as it is, for the error message
    return out


def secret(kind: str, rendered: dict, **params) -> str:
    """The value a consumer uses: the vault variable when it is set (``rendered["vault"]``),
    else the producing role's file, read by the collection's secrets module (never created; a
    missing file raises its SecretError naming the role and the variable). ``rendered`` is the
    host's answer to :func:`secret_expressions`; ``params`` add the rest (``user``)."""
    vault = rendered.get("vault")
    if vault not in (None, ""):
        return str(vault)
    given = {p: rendered[p] for p in SECRET_PARAMETERS.get(kind, {}) if rendered.get(p) not in (None, "")}
    given.update(params)
    return module_utils("secrets").read(kind, rendered.get("directory") or None,
                                        vault_variable=rendered.get("vault_variable"), **given)


def stored_secrets(directory: str) -> list[tuple[str, dict]]:
    """(kind, parameters) of every secret file under ``directory`` in the contract's layout
    (other files, e.g. a pre-contract leftover or a producer's temporary file, are not listed)."""
    found = [(kind, params) for _rel, kind, params in module_utils("secrets").stored(directory)]
    return sorted(found, key=lambda kp: (kp[0], sorted(kp[1].items())))
