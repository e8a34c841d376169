"""Generated parts of the documentation: in README.md who talks to whom on which port (from
the port map) and a variables overview per role (from each role's meta/argument_specs.yml); in
docs/secrets.md the secrets layout (from plugins/module_utils/secrets.py, ``layout()``).

    python -m lab docs           # rewrite the generated sections
    python -m lab docs --check   # exit 1 when a file is out of date (make test runs this)

A generated section sits between ``<!-- BEGIN GENERATED: name -->`` and
``<!-- END GENERATED: name -->``; everything else in the README is written by hand.
"""

from __future__ import annotations

import os
import re

import yaml

from . import collection
from .report import port_map

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
SECRETS_DOC = os.path.join(ROOT, "docs", "secrets.md")


def _site_roles() -> list[str]:
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return [r["role"] for r in yaml.safe_load(fh)["_common_site_roles"]]


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
    for name, entry in sorted(pmap.items(), key=lambda kv: kv[1]["port"]):
        for src in entry["from"]:
            for dst in entry["listen"]:
                if src == dst:
                    continue
                edges.setdefault((src, dst), []).append(f"{entry['port']}/{entry['protocol']} {name}")
    for (src, dst), labels in edges.items():
        lines.append(f'  {node[src]} -->|"{", ".join(labels)}"| {node[dst]}')
    lines.append("```")
    lines.append("")
    lines.append("| service | port | runs on | may connect from |")
    lines.append("| --- | --- | --- | --- |")
    for name, entry in sorted(pmap.items(), key=lambda kv: kv[1]["port"]):
        lines.append(f"| `{name}` ({entry.get('description', '')}) | {entry['port']}/{entry['protocol']} | "
                     f"{', '.join(entry['listen'])} | {', '.join(entry['from'])} |")
    return "\n".join(lines)


def _one_line(text) -> str:
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    text = " ".join(str(text or "").split())
    return text.replace("|", "\\|")


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
        for name, opt in sorted(options.items()):
            default = opt.get("default", "")
            default = "" if default is None else _one_line(yaml.safe_dump(default, default_flow_style=True).strip())
            if default.endswith("..."):
                default = default[:-3].strip()
            if len(default) > 60:
                default = default[:57] + "…"
            kind = opt.get("type", "str")
            if opt.get("choices"):
                kind += " (" + ", ".join(str(c) for c in opt["choices"]) + ")"
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


# file -> {section name: generator}
SECTIONS = {README: {"port-map": port_diagram, "variables": variables_overview},
            SECRETS_DOC: {"secrets-layout": secrets_layout}}


def render(text: str, sections: dict | None = None, where: str = "README.md") -> str:
    for name, fn in (SECTIONS[README] if sections is None else sections).items():
        begin, end = f"<!-- BEGIN GENERATED: {name} -->", f"<!-- END GENERATED: {name} -->"
        if begin not in text or end not in text:
            raise SystemExit(f"{where} has no {begin} ... {end} section")
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = f"{head}{begin}\n{fn()}\n{end}{tail}"
    return text


def main(check: bool = False) -> int:
    stale = []
    for path, sections in SECTIONS.items():
        where = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as fh:
            current = fh.read()
        wanted = render(current, sections, where)
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
