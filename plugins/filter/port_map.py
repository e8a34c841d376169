# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the stack's port map (see plugins/module_utils/port_map.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm


def port_map_validate(port_map, groups=None):
    """Return the normalised port map, or fail naming the offending entry."""
    try:
        return pm.validate(port_map, groups)
    except pm.PortMapError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def port_map_services_on(port_map, host, groups):
    """Services of the (validated) map that listen on ``host``."""
    return pm.services_on(port_map_validate(port_map, groups), host, groups)


def port_map_hosts(groups, names):
    """Hosts of the given groups ('all' = every host)."""
    return pm.hosts_of(groups, names)


def port_map_edges(port_map, groups=None):
    """(service, port, protocol, from, to) rows for documentation and diagrams."""
    return pm.edges(port_map_validate(port_map, groups), groups or {})


class FilterModule(object):
    def filters(self):
        return {
            "port_map_validate": port_map_validate,
            "port_map_services_on": port_map_services_on,
            "port_map_hosts": port_map_hosts,
            "port_map_edges": port_map_edges,
        }
