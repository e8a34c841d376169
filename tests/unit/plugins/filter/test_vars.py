"""Filters behind the preflight validation of role inputs."""

from ansible_collections.hardened.stack.plugins.filter.vars import defined_vars, roles_for_host, spec_without_defaults


def test_defined_vars_keeps_only_what_the_host_sets():
    assert defined_vars({"a": 1, "b": 2}, ["a", "c"]) == {"a": 1}


def test_spec_without_defaults_is_recursive_and_keeps_the_rest():
    spec = {"x": {"type": "int", "default": "{{ ansible_facts.memtotal_mb }}", "choices": [1]},
            "y": {"type": "list", "elements": "dict", "default": [],
                  "options": {"z": {"type": "str", "default": "q", "required": False}}}}
    out = spec_without_defaults(spec)
    assert out == {"x": {"type": "int", "choices": [1]},
                   "y": {"type": "list", "elements": "dict", "options": {"z": {"type": "str", "required": False}}}}
    assert "default" in spec["x"]  # the input is not modified


def test_roles_for_host_in_site_order():
    groups = {"app": ["a1"], "redis": ["r1"]}
    roles = [{"role": "baseline", "groups": ["all"]}, {"role": "redis", "groups": ["redis"]},
             {"role": "app", "groups": ["app"]}]
    assert roles_for_host(roles, "a1", groups) == ["baseline", "app"]
    assert roles_for_host(roles, "r1", groups) == ["baseline", "redis"]
