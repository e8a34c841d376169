"""Every role has a README (galaxy-importer refuses a role without one) with a hand-written part
and the generated variables section (lab/docs.py, ``python -m lab docs``) that is current and
names every variable of every entry point of its meta/argument_specs.yml."""

import os
import re

import pytest
import yaml
from lab import docs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(r for r in os.listdir(os.path.join(ROOT, "roles")) if os.path.isdir(os.path.join(ROOT, "roles", r)))
BEGIN, END = "<!-- BEGIN GENERATED: role-variables -->", "<!-- END GENERATED: role-variables -->"


def _names(options, prefix=""):
    for name, opt in (options or {}).items():
        yield prefix + name
        if isinstance(opt.get("options"), dict):
            yield from _names(opt["options"], prefix + name + ("[]." if opt.get("type") == "list" else "."))


def test_every_role_is_covered():
    assert set(docs.role_readmes().values()) == set(ROLES), "a role without meta/argument_specs.yml gets no README"


@pytest.mark.parametrize("role", ROLES)
def test_role_readme(role):
    path = os.path.join(ROOT, "roles", role, "README.md")
    assert os.path.exists(path), f"roles/{role}/README.md is missing: run `python -m lab docs`, then write its intro"
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    assert text.startswith(f"# hardened.stack.{role}\n"), "the README opens with the role's FQCN"
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "one generated variables section"

    # the hand-written part: more than the title
    intro = text.split(BEGIN, 1)[0].split("\n", 1)[1]
    assert len(re.sub(r"\s+", " ", intro.replace("## Variables", "")).strip()) > 200, (
        f"roles/{role}/README.md needs a hand-written intro (what the role does, groups, tags, an example play)"
    )

    body = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert body == docs.role_variables(role), f"roles/{role}/README.md is out of date: run `python -m lab docs`"

    with open(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml"), encoding="utf-8") as fh:
        specs = yaml.safe_load(fh)["argument_specs"]
    for entry, spec in specs.items():
        assert f"### Entry point `{entry}`" in body
        for name in _names((spec or {}).get("options")):
            assert f"| `{name}` |" in body, f"roles/{role}/README.md: {name} ({entry}) is not in the table"
