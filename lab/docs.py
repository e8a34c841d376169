"""Generated parts of the documentation: in README.md who talks to whom on which port (from
the port map) and a variables overview per role (from each role's meta/argument_specs.yml); in
every roles/<role>/README.md the role's variables, one table per entry point (from the same
argument specs); in docs/secrets.md the secrets layout (from plugins/module_utils/secrets.py, ``layout()``) and what
each secret may not hold (from plugins/module_utils/inventory_checks.py, ``secret_limits()``:
SECRET_FORMATS run through the encoders); the same limits in the example inventory's vault file
template (as YAML comments).

    python -m lab docs           # rewrite the generated sections
    python -m lab docs --check   # exit 1 when a file is out of date (make test runs this)

A generated section sits between ``<!-- BEGIN GENERATED: name -->`` and
``<!-- END GENERATED: name -->``; everything else in the README is written by hand. In a YAML
file both markers are comments (``# <!-- BEGIN GENERATED: name -->``) and so is every generated
line.

A role without a README gets one (``python -m lab docs``): a title, the spec's description and
the generated section, for the hand-written part (what the role does, groups, tags, an example
play) to be written above it; ``--check`` reports it missing.
"""

from __future__ import annotations

import functools
import os
import re
import textwrap

import yaml

from . import collection, variables
from .report import port_map

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
SECRETS_DOC = os.path.join(ROOT, "docs", "secrets.md")
VAULT_EXAMPLE = os.path.join(ROOT, "inventories", "example", "group_vars", "all", "vault.yml.example")
# Files whose generated lines are comments: the prefix of each line.
COMMENTED = {VAULT_EXAMPLE: "# "}


def _site_roles() -> list[str]:
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return [r["role"] for r in yaml.safe_load(fh)["_common_site_roles"]]


def _port_label(entry: dict) -> str:
    """``443/tcp``; a portless protocol (VRRP) by itself."""
    return entry["protocol"] if entry.get("port") is None else f"{entry['port']}/{entry['protocol']}"


def port_diagram() -> str:
    """A Mermaid graph (GitHub renders it) and the same facts as a table."""
    pmap = port_map()
    groups: list[str] = []
    for entry in pmap.values():
        for g in entry["listen"] + entry["from"]:
            if g not in groups:
                groups.append(g)
    node = {g: re.sub(r"\W", "_", g) for g in groups}
    lines = ["```mermaid", "flowchart LR"]
    for g in groups:
        label = {"any": "the world", "all": "every host"}.get(g, g)
        lines.append(f'  {node[g]}["{label}"]')
    edges: dict[tuple[str, str], list[str]] = {}
    for name, entry in sorted(pmap.items(), key=lambda kv: kv[1].get("port") or 0):
        for src in entry["from"]:
            for dst in entry["listen"]:
                if src == dst:
                    continue
                edges.setdefault((src, dst), []).append(f"{_port_label(entry)} {name}")
    for (src, dst), labels in edges.items():
        lines.append(f'  {node[src]} -->|"{", ".join(labels)}"| {node[dst]}')
    lines.append("```")
    lines.append("")
    lines.append("| service | port | runs on | may connect from |")
    lines.append("| --- | --- | --- | --- |")
    for name, entry in sorted(pmap.items(), key=lambda kv: kv[1].get("port") or 0):
        lines.append(f"| `{name}` ({entry.get('description', '')}) | {_port_label(entry)} | "
                     f"{', '.join(entry['listen'])} | {', '.join(entry['from'])} |")
    return "\n".join(lines)


def _one_line(text) -> str:
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    text = " ".join(str(text or "").split())
    return text.replace("|", "\\|")


def _default_text(opt: dict, role_default=None, limit: int = 60) -> str:
    """An option's default for a table cell: the spec's, else the role's defaults/main.yml value
    (a templated default is not in the spec: it is rendered on the host, so it is shown as
    written), in YAML flow style, cut at ``limit`` characters."""
    if "default" in opt:
        default = opt["default"]
    elif role_default is None:
        return ""
    else:
        default = role_default
    if isinstance(default, str) and "{{" in default:
        default = _one_line(default)
    else:
        default = "" if default is None else _one_line(yaml.safe_dump(default, default_flow_style=True).strip())
    if default.endswith("..."):
        default = default[:-3].strip()
    if len(default) > limit:
        default = default[: limit - 3] + "…"
    return default


def _kind(opt: dict, elements: bool = False) -> str:
    """``type`` (with ``elements``: ``list of dict``), with the choices."""
    kind = opt.get("type", "str")
    if elements and kind == "list" and opt.get("elements"):
        kind += f" of {opt['elements']}"
    if opt.get("choices"):
        kind += " (" + ", ".join(str(c) for c in opt["choices"]) + ")"
    return kind


def variables_overview() -> str:
    """One collapsible table per role: variable, type, default and description."""
    out = []
    roles = _site_roles()
    for role in roles:
        spec_file = os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")
        if not os.path.exists(spec_file):
            continue
        with open(spec_file, encoding="utf-8") as fh:
            options = (yaml.safe_load(fh)["argument_specs"]["main"].get("options") or {})
        out.append(f"<details><summary><code>hardened.stack.{role}</code>: {len(options)} variables</summary>")
        out.append("")
        out.append("| variable | type | default | description |")
        out.append("| --- | --- | --- | --- |")
        role_defaults = variables.role_defaults(role)
        for name, opt in sorted(options.items()):
            default = _default_text(opt, role_defaults.get(name, ""))
            kind = _kind(opt)
            required = " **required**" if opt.get("required") else ""
            out.append(f"| `{name}` | {kind}{required} | `{default}` | {_one_line(opt.get('description'))} |"
                       if default else f"| `{name}` | {kind}{required} |  | {_one_line(opt.get('description'))} |")
        out.append("")
        out.append("</details>")
        out.append("")
    return "\n".join(out).rstrip()


def secrets_layout() -> str:
    """The secrets directory's layout, one row per kind of secret (secrets.layout())."""
    secrets = collection.module_utils("secrets")
    lines = ["| path under `hardened_stack_secrets_dir` | lookup kind and parameters | what it is | "
             "made by (producer) | replaced by the vault variable | generated |",
             "| --- | --- | --- | --- | --- | --- |"]
    for pattern, kind, producer, description, vault, length in secrets.layout():
        params = ", ".join(f"`{p}`" + (f" (`{collection.SECRET_PARAMETERS[kind][p]}`)"
                                       if p in collection.SECRET_PARAMETERS.get(kind, {}) else "")
                           for p in secrets.KINDS[kind].params)
        lines.append(f"| `{pattern}` | `{kind}`{': ' + params if params else ''} | {_one_line(description)} | "
                     f"`{producer}` | {_one_line(vault)} | {length} letters and digits |")
    return "\n".join(lines)


def secret_limits_table() -> str:
    """What each secret (and user name) the inventory gives may not hold: the preflight refuses
    it, naming the variable (inventory_checks.secret_limits())."""
    common, rows = collection.module_utils("inventory_checks").secret_limits()
    lines = [f"Refused in every value: {', '.join(common)}. Further refused, per variable (anything not "
             "listed is carried as it is):", "",
             "| variable | written to | also refused |", "| --- | --- | --- |"]
    for name, where, features in rows:
        shown = f"`{name.split(' ', 1)[0]}`" + (f" {name.split(' ', 1)[1]}" if " " in name else "")
        lines.append(f"| {shown} | {_one_line(where)} | {_one_line(', '.join(features)) or 'nothing else'} |")
    return "\n".join(lines)


def generate_switches() -> str:
    """The generate switches and what each requires when false (inventory_checks.REQUIRED_SECRETS)."""
    ic = collection.module_utils("inventory_checks")
    lines = ["| switch (default `true`) | role | on the hosts of | required when `false` |",
             "| --- | --- | --- | --- |"]
    for role in (r for r in _site_roles() if r in ic.REQUIRED_SECRETS):
        groups, flag, names = ic.REQUIRED_SECRETS[role]
        default = variables.role_defaults(role).get(flag)
        alias = re.match(r"^\{\{\s*(\w+)\s*\|", default) if isinstance(default, str) else None
        flag_text = f"`{flag}` (follows `{alias.group(1)}`)" if alias else f"`{flag}`"
        lines.append(f"| {flag_text} | `hardened.stack.{role}` | {', '.join(groups)} | "
                     f"{', '.join(f'`{n}`' for n in names)} |")
    return "\n".join(lines)


def _is_secret(name: str) -> bool:
    ic = collection.module_utils("inventory_checks")
    base = name.split("[", 1)[0].split(" ", 1)[0]
    return base.endswith(ic.SECRET_SUFFIXES) or base in ic.SECRET_NAMES or base == "app_secret_environment"


def vault_limits() -> str:
    """The same limits for the vault file template: the secrets with a limit of their own."""
    common, rows = collection.module_utils("inventory_checks").secret_limits()
    text = [f"What the preflight refuses in a value (before any change, naming the variable; generated from "
            f"SECRET_FORMATS in plugins/module_utils/inventory_checks.py by `python -m lab docs`, do not edit): "
            f"in every variable {' and '.join(common)}; further:"]
    out = []
    for line in text:
        out += textwrap.wrap(line, 96)
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, _where, features in rows:
        if features and _is_secret(name):
            groups.setdefault(tuple(features), []).append(name)
    for features, names in groups.items():
        out += textwrap.wrap(f"{', '.join(names)}: {', '.join(features)}", 96,
                             initial_indent="  ", subsequent_indent="    ")
    out += textwrap.wrap("Anything not listed is carried as it is: spaces, quotes, backslashes, $, #, %, ! and "
                         "non-ASCII letters, except where listed above.", 96)
    return "\n".join(out)


def _role_specs(role: str) -> dict:
    with open(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["argument_specs"]


def _markdown(text: str) -> str:
    """Ansible's doc markup as Markdown: ``C(x)``, ``O(x)``, ``V(x)``, ``I(x)`` as code; ``<`` and
    ``>`` outside code escaped."""
    parts = re.sub(r"\b[COVI]\(([^()]*)\)", r"`\1`", text).split("`")
    # outside code spans, <name> would be read as an HTML tag and dropped
    return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))


def _option_rows(options: dict, role_defaults: dict, prefix: str = "") -> list[str]:
    """One table row per option, sorted; a list or dict option's sub-options follow it
    (``name[].key`` for list elements, ``name.key`` for a dict)."""
    rows = []
    for name, opt in sorted(options.items()):
        shown = prefix + name
        default = _default_text(opt, role_defaults.get(name) if not prefix else None, limit=80)
        required = "yes" if opt.get("required") else ""
        rows.append(f"| `{shown}` | {_kind(opt, elements=True)} | {required} | "
                    f"{f'`{default}`' if default else ''} | {_markdown(_one_line(opt.get('description')))} |")
        if isinstance(opt.get("options"), dict):
            sub = shown + ("[]." if opt.get("type") == "list" else ".")
            rows += _option_rows(opt["options"], {}, sub)
    return rows


def role_variables(role: str) -> str:
    """The role's variables, one table per entry point of meta/argument_specs.yml (``main``
    first); an entry point with the same options as one above says so instead of repeating them."""
    specs = _role_specs(role)
    role_defaults = variables.role_defaults(role)
    out = ["Generated from `meta/argument_specs.yml` by `python -m lab docs` (do not edit between the markers). "
           "Defaults are in `defaults/main.yml`; a templated default is shown as written.", ""]
    shown: list[tuple[str, dict]] = []
    for entry in sorted(specs, key=lambda e: (e != "main", list(specs).index(e))):
        spec = specs[entry] or {}
        options = spec.get("options") or {}
        if entry != "main":
            call = f"`ansible.builtin.include_role: {{name: hardened.stack.{role}, tasks_from: {entry}}}`"
        elif role.startswith("_"):  # internal: only ever a dependency of the collection's roles
            call = "a dependency (`meta/main.yml`) of the collection's roles, never in a play"
        else:
            call = f"`roles: [hardened.stack.{role}]`"
        out.append(f"### Entry point `{entry}`")
        out.append("")
        summary = _markdown(_one_line(spec.get("short_description") or ""))
        out.append(f"{summary + '. ' if summary and not summary.endswith('.') else summary + ' ' if summary else ''}"
                   f"Called as {call}.")
        out.append("")
        same = next((name for name, opts in shown if opts == options), None)
        if same:
            out.append(f"Same {len(options)} variables as the entry point `{same}`.")
        elif not options:
            out.append("No variables.")
        else:
            out.append("| variable | type | required | default | description |")
            out.append("| --- | --- | --- | --- | --- |")
            out += _option_rows(options, role_defaults)
        out.append("")
        shown.append((entry, options))
    return "\n".join(out).rstrip()


def role_readmes() -> dict[str, str]:
    """roles/<role>/README.md -> role, for every role with meta/argument_specs.yml."""
    out = {}
    for role in sorted(os.listdir(os.path.join(ROOT, "roles"))):
        if os.path.exists(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml")):
            out[os.path.join(ROOT, "roles", role, "README.md")] = role
    return out


def new_role_readme(role: str) -> str:
    """A README for a role that has none: the title, the description of its ``main`` entry point
    and the generated section. The hand-written part goes above ``## Variables``."""
    main = _role_specs(role).get("main") or {}
    description = main.get("description") or main.get("short_description") or ""
    if isinstance(description, list):
        description = "\n\n".join(str(d) for d in description)
    name = "role-variables"
    return (f"# hardened.stack.{role}\n\n{textwrap.fill(_markdown(str(description)), 96)}\n\n## Variables\n\n"
            f"<!-- BEGIN GENERATED: {name} -->\n<!-- END GENERATED: {name} -->\n")


# file -> {section name: generator}
SECTIONS = {README: {"port-map": port_diagram, "variables": variables_overview},
            SECRETS_DOC: {"secrets-layout": secrets_layout, "secret-limits": secret_limits_table,
                          "generate-switches": generate_switches},
            VAULT_EXAMPLE: {"vault-limits": vault_limits}}
for _readme, _role in role_readmes().items():
    SECTIONS[_readme] = {"role-variables": functools.partial(role_variables, _role)}


def render(text: str, sections: dict | None = None, where: str = "README.md", prefix: str = "") -> str:
    """``text`` with each generated section rewritten; ``prefix`` starts every generated line and
    the end marker (``"# "`` in a YAML file)."""
    for name, fn in (SECTIONS[README] if sections is None else sections).items():
        begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"{prefix}<!-- END GENERATED: {name} -->"
        if begin not in text or end not in text:
            raise SystemExit(f"{where} has no {begin} ... {end} section")
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        body = "\n".join((prefix + line).rstrip() if line else prefix.rstrip() for line in fn().split("\n"))
        text = f"{head}{begin}\n{body}\n{end}{tail}"
    return text


def main(check: bool = False) -> int:
    stale = []
    readmes = role_readmes()
    for path, sections in SECTIONS.items():
        where = os.path.relpath(path, ROOT)
        if not os.path.exists(path) and path in readmes:
            if check:
                stale.append(f"{where} (missing)")
                continue
            current = new_role_readme(readmes[path])
        else:
            with open(path, encoding="utf-8") as fh:
                current = fh.read()
        wanted = render(current, sections, where, COMMENTED.get(path, ""))
        if wanted == current:
            continue
        if check:
            stale.append(where)
        else:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(wanted)
    if stale:
        print(f"{', '.join(stale)} out of date: run `python -m lab docs`")
        return 1
    return 0
