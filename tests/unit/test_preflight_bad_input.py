"""Bad input stops site.yml in the preflight play, before any host is touched.

Cases are derived from every site role's argument_specs (so new options are covered as they
appear): a wrong type, an unknown choice and a missing required variable. The inventory's
hosts point at a closed local port: had preflight let the run continue, the next play would
report them UNREACHABLE. A valid inventory must get exactly that far (positive control).
"""

import os

import inventory_harness as harness
import pytest
import yaml

ROOT = harness.ROOT


def site_roles():
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return [r["role"] for r in yaml.safe_load(fh)["_common_site_roles"]]


def options(role):
    with open(os.path.join(ROOT, "roles", role, "meta", "argument_specs.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["argument_specs"]["main"]["options"] or {}


def required_values(role):
    """Values for the role's required options (so only the defect under test is wrong)."""
    out = {}
    for name, opt in options(role).items():
        if opt.get("required"):
            kind = opt.get("type", "str")
            out[name] = {"int": 1, "bool": True, "list": [], "dict": {}}.get(kind, "x")
            if opt.get("choices"):
                out[name] = opt["choices"][0]
    return out


def cases():
    found = []
    for role in site_roles():
        opts = options(role)
        ints = [n for n, o in opts.items() if o.get("type") == "int"]
        if ints:
            found.append(pytest.param(role, {ints[0]: "not-a-number"}, ints[0], None,
                                      id=f"{role}-wrong-type-{ints[0]}"))
        bools = [n for n, o in opts.items() if o.get("type") == "bool"]
        if bools:
            found.append(pytest.param(role, {bools[0]: "perhaps"}, bools[0], None,
                                      id=f"{role}-wrong-type-{bools[0]}"))
        choice = [n for n, o in opts.items() if o.get("choices") and o.get("type") != "list"]
        if choice:
            found.append(pytest.param(role, {choice[0]: "no-such-choice"}, choice[0], None,
                                      id=f"{role}-unknown-choice-{choice[0]}"))
        for name, opt in opts.items():
            if opt.get("required"):
                found.append(pytest.param(role, {}, name, name, id=f"{role}-missing-{name}"))
                break
    return found


def write_inventory(tmp_path, extra_vars):
    return harness.write_inventory(tmp_path / "hosts.yml", harness.sound_inventory(extra_vars))


def run_site(inventory):
    return harness.run_site(inventory)


def all_required():
    out = {}
    for role in site_roles():
        out.update(required_values(role))
    return out


def test_valid_inventory_passes_preflight(tmp_path):
    rc, out = run_site(write_inventory(tmp_path, all_required()))
    assert rc != 0
    assert "UNREACHABLE" in out, out[-3000:]
    assert "Validation of arguments failed" not in out


@pytest.mark.parametrize("role, bad, name, omit", cases())
def test_bad_input_stops_before_any_host(tmp_path, role, bad, name, omit):
    values = all_required()
    values.update(bad)
    if omit:
        values.pop(omit)
    rc, out = run_site(write_inventory(tmp_path, values))
    assert rc != 0
    assert "Validation of arguments failed" in out, out[-3000:]
    assert name in out
    assert "UNREACHABLE" not in out, f"{role}: a host was contacted despite bad input"
    assert "PLAY [Baseline" not in out
