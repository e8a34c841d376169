# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters used by the preflight play to validate role inputs before anything changes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def defined_vars(host_vars, names):
    """The subset of ``host_vars`` (a host's hostvars) whose names are in ``names``.

    Only variables the user actually set (inventory, group_vars, extra vars) are returned;
    names the host does not define are left out, so role defaults apply to them.
    """
    out = {}
    for name in names:
        if name in host_vars:
            out[name] = host_vars[name]
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
        return {"defined_vars": defined_vars, "roles_for_host": roles_for_host}
