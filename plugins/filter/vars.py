# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters used by the preflight play to validate role inputs before anything changes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleUndefinedVariable


def defined_vars(host_vars, names):
    """The subset of ``host_vars`` (a host's hostvars) whose names are in ``names``.

    Only variables the user actually set (inventory, group_vars, extra vars) are returned;
    names the host does not define are left out, so role defaults apply to them. A value
    that needs facts (not gathered before the preflight) is left to the role's own check.
    """
    out = {}
    for name in names:
        if name in host_vars:
            try:
                out[name] = host_vars[name]
            except AnsibleUndefinedVariable:
                continue
    return out


def spec_without_defaults(options):
    """An argument_spec ``options`` dict without ``default`` keys (recursively).

    The preflight validates only what the user provided; role defaults may refer to facts
    that are not gathered yet, and apply when the role itself runs.
    """
    out = {}
    for name, spec in (options or {}).items():
        spec = dict((k, v) for k, v in spec.items() if k != "default")
        if isinstance(spec.get("options"), dict):
            spec["options"] = spec_without_defaults(spec["options"])
        out[name] = spec
    return out


def roles_for_host(role_groups, host, groups):
    """Roles (in site order) that the site playbook applies to ``host``.

    ``role_groups`` is a list of ``{role: name, groups: [...]}``; ``all`` matches every host.
    """
    out = []
    for item in role_groups:
        for group in item["groups"]:
            if group == "all" or host in groups.get(group, []):
                out.append(item["role"])
                break
    return out


class FilterModule(object):
    def filters(self):
        return {"defined_vars": defined_vars, "roles_for_host": roles_for_host,
                "spec_without_defaults": spec_without_defaults}
