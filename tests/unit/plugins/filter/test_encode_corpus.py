"""The corpus of awkward secrets (issue 16) and the helpers every encoder test shares.

``CORPUS``: vault-style passwords as users pick them (spaces, quotes, backslashes, ``$``, ``#``,
``%``, ``!``, non-ASCII, leading/trailing spaces, a backslash at the end, ``{{ not jinja }}``
as a value). Each ``test_encode*`` module renders the real role templates with it
(:func:`render`: Jinja2 with Ansible's core filters and the collection's filters, the options
``ansible.builtin.template`` uses) and reads the result back with the consumer's own rules.

``parse_env_file`` is a port of systemd's EnvironmentFile parser; ``shell_env`` asks the real
``/bin/sh``; :func:`task_template` renders the ``content:`` of a role's ``copy`` task (files
written without a template file: the pg_dump pgpass, Prometheus' password file, htpasswd).
"""

import os
import subprocess

import jinja2
import yaml

from ansible.plugins.filter.core import FilterModule as CoreFilters
from ansible_collections.hardened.stack.plugins.filter import encode as flt

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

# Awkward vault-style passwords (issue 16). "{{ not jinja }}" reaches a template only as a
# value (Ansible users mark such vault strings !unsafe); the template must not re-read it.
CORPUS = [
    "correct horse battery staple",
    '"quoted"',
    "it's",
    "back\\slash",
    "$HOME",
    "${HOME}",
    "#hash",
    "%percent",
    "%i %% specifier",
    "!bang",
    "trailing spaces   ",
    "   leading spaces",
    '"leading quote',
    "pässwörd",
    ";semi",
    "`uname`",
    "{{ not jinja }}",
    "tab\there",
    "a:b@c/d?e=f&g",
    "ends with backslash\\",
    "x" * 200,
    "=equals first; then = [section]",
    "*",
    "ünïcödé ✓ 😀 \u00a0nbsp",
    "yes",
    "null",
    "0x1F",
    "- dash: colon",
]
# One bare word: what Sentinel can carry (it rewrites sentinel.conf with the value unquoted).
SENTINEL_CORPUS = [v for v in CORPUS if not any(c in v for c in " \t\"'")]
# What no line-based format can carry, and what only some can.
LINE_BREAKS = ["two\nlines", "cr\rhere", "ends with newline\n"]


def test_corpus_has_every_awkward_character():
    """The characters the issue names, each in some corpus value."""
    joined = "".join(CORPUS)
    for ch in " \"'\\$#%!:;=`\t*":
        assert ch in joined, ch
    assert any(v != v.rstrip() for v in CORPUS) and any(v != v.lstrip() for v in CORPUS)
    assert any(v.endswith("\\") for v in CORPUS) and "{{ not jinja }}" in CORPUS
    assert any(any(ord(c) > 0xFFFF for c in v) for v in CORPUS)  # beyond the BMP
    assert len(set(CORPUS)) == len(CORPUS)


# --- systemd's EnvironmentFile parser, ported ------------------------------------------------

_WHITESPACE, _NEWLINE, _COMMENTS, _SHELL_NEED_ESCAPE = " \t\n\r", "\n\r", "#;", "\"\\`$"


def parse_env_file(text):  # noqa: C901, PLR0912, PLR0915 (a state machine, kept like the C original)
    """Port of systemd's ``parse_env_file_internal`` (src/basic/env-file.c): ``{key: value}``.
    States and transitions as in the C code; ``push`` keeps the last assignment of a key."""
    out = {}
    state = "PRE_KEY"
    key, value = [], None
    last_key_ws = last_value_ws = None

    def push():
        k = "".join(key[:last_key_ws] if last_key_ws is not None else key)
        out[k] = "".join(value or [])

    for c in text:
        if state == "PRE_KEY":
            if c in _COMMENTS:
                state = "COMMENT"
            elif c not in _WHITESPACE:
                state, last_key_ws = "KEY", None
                key.append(c)
        elif state == "KEY":
            if c in _NEWLINE:
                state, key = "PRE_KEY", []
            elif c == "=":
                state, last_value_ws = "PRE_VALUE", None
            else:
                if c not in _WHITESPACE:
                    last_key_ws = None
                elif last_key_ws is None:
                    last_key_ws = len(key)
                key.append(c)
        elif state == "PRE_VALUE":
            if c in _NEWLINE:
                push()
                state, key, value = "PRE_KEY", [], None
            elif c == "'":
                state = "SINGLE_QUOTE_VALUE"
            elif c == '"':
                state = "DOUBLE_QUOTE_VALUE"
            elif c == "\\":
                state = "VALUE_ESCAPE"
            elif c not in _WHITESPACE:
                state = "VALUE"
                value = (value or []) + [c]
        elif state == "VALUE":
            if c in _NEWLINE:
                if last_value_ws is not None:
                    value = value[:last_value_ws]
                push()
                state, key, value = "PRE_KEY", [], None
            elif c == "\\":
                state, last_value_ws = "VALUE_ESCAPE", None
            else:
                if c not in _WHITESPACE:
                    last_value_ws = None
                elif last_value_ws is None:
                    last_value_ws = len(value or [])
                value = (value or []) + [c]
        elif state == "VALUE_ESCAPE":
            state = "VALUE"
            if c not in _NEWLINE:
                value = (value or []) + [c]
        elif state == "SINGLE_QUOTE_VALUE":
            if c == "'":
                state = "PRE_VALUE"
            else:
                value = (value or []) + [c]
        elif state == "DOUBLE_QUOTE_VALUE":
            if c == '"':
                state = "PRE_VALUE"
            elif c == "\\":
                state = "DOUBLE_QUOTE_VALUE_ESCAPE"
            else:
                value = (value or []) + [c]
        elif state == "DOUBLE_QUOTE_VALUE_ESCAPE":
            state = "DOUBLE_QUOTE_VALUE"
            if c in _SHELL_NEED_ESCAPE:
                value = (value or []) + [c]
            elif c != "\n":
                value = (value or []) + ["\\", c]
        elif state == "COMMENT":
            if c == "\\":
                state = "COMMENT_ESCAPE"
            elif c in _NEWLINE:
                state = "PRE_KEY"
        elif state == "COMMENT_ESCAPE":
            state = "PRE_KEY" if c in _NEWLINE else "COMMENT"
    if state in ("PRE_VALUE", "VALUE", "VALUE_ESCAPE", "SINGLE_QUOTE_VALUE", "DOUBLE_QUOTE_VALUE",
                 "DOUBLE_QUOTE_VALUE_ESCAPE"):
        if state == "VALUE" and last_value_ws is not None:
            value = value[:last_value_ws]
        push()
    return out


def shell_env(path, names):
    """The values ``/bin/sh`` gets when it sources ``path`` (NUL-separated printf)."""
    script = '. "$1"; shift; for n in "$@"; do eval "printf \'%s\\0\' \\"\\${$n}\\""; done'
    res = subprocess.run(["/bin/sh", "-c", script, "sh", str(path), *names], capture_output=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    return dict(zip(names, res.stdout.decode("utf-8").split("\0")[:-1], strict=True))


def _jinja(role):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROOT, "roles", role, "templates")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, keep_trailing_newline=True,
                             autoescape=False)  # noqa: S701 (configuration files, not HTML)
    for name, func in CoreFilters().filters().items():
        env.filters[name] = env.filters["ansible.builtin." + name] = func
    for name, func in flt.FilterModule().filters().items():
        env.filters["hardened.stack." + name] = func
    env.filters["hardened.stack.host_port"] = lambda addr, port, **kw: "%s:%s" % (addr, port)
    return env


def render(role, template, **variables):
    """The role's template rendered like ansible.builtin.template renders it."""
    return _jinja(role).get_template(template).render(ansible_managed="Ansible managed", **variables)


def task_template(role, module, dest):
    """The ``content:`` template of the one ``module`` task in ``roles/ROLE/tasks/*.yml`` whose
    ``dest`` contains ``dest`` (found by what it writes, so a moved or renamed task is found)."""
    tasks_dir = os.path.join(ROOT, "roles", role, "tasks")

    def walk(items):
        for task in items or []:
            for key in ("block", "rescue", "always"):
                yield from walk(task.get(key))
            args = task.get(module)
            if isinstance(args, dict) and dest in str(args.get("dest", "")) and "content" in args:
                yield args["content"]

    found = []
    for name in sorted(os.listdir(tasks_dir)):
        if name.endswith(".yml"):
            with open(os.path.join(tasks_dir, name), encoding="utf-8") as fh:
                found += list(walk(yaml.safe_load(fh)))
    assert len(found) == 1, "roles/%s/tasks: one %s task writing %s, found %d" % (role, module, dest, len(found))
    return _jinja(role).from_string(found[0])
