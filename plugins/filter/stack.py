# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection facts of the stack, computed once from the inventory and the port map."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm
from ansible_collections.hardened.stack.plugins.module_utils import stack


def stack_connection_facts(port_map, groups, hostvars):
    """Endpoints for PostgreSQL (write/read), Redis Sentinel, app servers, etc."""
    try:
        return stack.connection_facts(port_map, groups, hostvars)
    except (stack.StackError, pm.PortMapError) as exc:
        raise AnsibleFilterError(str(exc)) from exc


def stack_endpoints(port_map, groups, hostvars, service):
    """Every ``address:port`` where ``service`` runs."""
    try:
        return stack.endpoints(pm.validate(port_map, groups), groups, hostvars, service)
    except (stack.StackError, pm.PortMapError) as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule(object):
    def filters(self):
        return {"stack_connection_facts": stack_connection_facts, "stack_endpoints": stack_endpoints}
