"""The collection's own Python code (plugins/module_utils), for the lab tool.

The lab answers no question the collection already answers (a host's address, the port map,
the firewall's rules): it imports the collection's module, from the checkout linked as
``ansible_collections/hardened/stack`` under ``.build/collections`` (``make collection-link``).
"""

from __future__ import annotations

import importlib
import os
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


def module_utils(name: str):
    """``ansible_collections.hardened.stack.plugins.module_utils.<name>``."""
    importable()
    return importlib.import_module(f"ansible_collections.hardened.stack.plugins.module_utils.{name}")
