"""Every role's meta/argument_specs.yml matches its defaults/main.yml (no drift).

- every variable in defaults/main.yml is an option of the role's main entry point (or of
  another entry point, for internal roles), and every option is in defaults unless it is
  required;
- every option has a type and a description; a default given in the spec equals the
  default in defaults/main.yml;
- every variable carries the role prefix and every default has a comment above it.
"""

import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = sorted(d for d in os.listdir(os.path.join(ROOT, "roles"))
               if os.path.isdir(os.path.join(ROOT, "roles", d)))


def load(role, *parts):
    path = os.path.join(ROOT, "roles", role, *parts)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def spec_options(role):
    specs = load(role, "meta", "argument_specs.yml")
    assert specs and "argument_specs" in specs, f"{role}: meta/argument_specs.yml missing"
    entry_points = specs["argument_specs"]
    assert "main" in entry_points, f"{role}: argument_specs has no main entry point"
    options = {}
    for entry in entry_points.values():
        options.update(entry.get("options") or {})
    return options


def test_roles_found():
    assert {"_common"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_defaults_match_argument_specs(role):
    defaults = load(role, "defaults", "main.yml") or {}
    options = spec_options(role)
    missing_in_spec = sorted(set(defaults) - set(options))
    assert not missing_in_spec, f"{role}: in defaults/main.yml but not in argument_specs: {missing_in_spec}"
    missing_in_defaults = sorted(k for k, v in options.items()
                                 if k not in defaults and not v.get("required"))
    assert not missing_in_defaults, (
        f"{role}: optional options without a value in defaults/main.yml: {missing_in_defaults}")
    for name, opt in options.items():
        assert opt.get("type"), f"{role}: option {name} has no type"
        assert opt.get("description"), f"{role}: option {name} has no description"
        if "default" in opt and name in defaults:
            assert opt["default"] == defaults[name], (
                f"{role}: default of {name} differs: spec {opt['default']!r} vs defaults {defaults[name]!r}")
        if "choices" in opt and name in defaults and defaults[name] is not None:
            values = defaults[name] if opt["type"] == "list" else [defaults[name]]
            if not any("{{" in str(v) for v in values):
                assert set(values) <= set(opt["choices"]), f"{role}: default of {name} not in its choices"


@pytest.mark.parametrize("role", ROLES)
def test_variables_carry_role_prefix(role):
    prefix = role.lstrip("_") + "_"
    for name in load(role, "defaults", "main.yml") or {}:
        assert name.lstrip("_").startswith(prefix), f"{role}: variable {name} lacks the prefix {prefix}"


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_commented(role):
    path = os.path.join(ROOT, "roles", role, "defaults", "main.yml")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    uncommented = []
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*:", line):
            j = i - 1
            if j < 0 or not lines[j].lstrip().startswith("#"):
                uncommented.append(line.split(":")[0])
    assert not uncommented, f"{role}: variables without a comment line above them: {uncommented}"
