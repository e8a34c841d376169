# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who talks to whom: connection facts of the stack, computed once from the inventory.

Roles (app, nginx, prometheus …) read these instead of re-deriving addresses and ports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hardened.stack.plugins.module_utils import address as am
from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm


class StackError(ValueError):
    """The inventory cannot give a connection fact; the message names what is missing."""


def front_door_service(entry, group=am.FRONT_DOOR_GROUP):
    """True when clients dial the service at the front door: it runs on ``group`` only and is
    dialled by someone other than monitoring and the group itself (https, pg_write; not the
    per-host exporters, not VRRP)."""
    return list(entry["listen"]) == [group] and bool(set(entry["from"]) - {"monitoring", group})


def endpoints(port_map, groups, hostvars, service, per_host=False):
    """``[{'host', 'address', 'port', 'endpoint'}]`` for every host that runs ``service``.

    A front door service (:func:`front_door_service`) of a group with a virtual address
    (``hardened_stack_virtual_address``) gives one entry per virtual address instead, with
    ``host`` None: what clients dial. ``per_host`` gives the hosts' own addresses anyway."""
    if service not in port_map:
        raise StackError("service '%s' is not in the port map" % service)
    entry = port_map[service]
    try:
        if not per_host and front_door_service(entry):
            virtual = am.virtual_addresses(groups, hostvars)
            if virtual:
                return [{"host": None, "address": address, "port": entry["port"],
                         "endpoint": am.host_port(address, entry["port"])} for address in virtual]
        out = []
        for host in pm.hosts_of(groups, entry["listen"]):
            address = am.cluster_address(host, hostvars)
            out.append({"host": host, "address": address, "port": entry["port"],
                        "endpoint": am.host_port(address, entry["port"])})
    except am.AddressError as exc:
        raise StackError(str(exc))
    return out


def connection_facts(port_map, groups, hostvars):
    """The facts an application needs: PostgreSQL write/read endpoints (HAProxy on the
    load balancers: their virtual address when set, see :func:`endpoints`), Redis Sentinels, upstream app servers. Empty lists where the inventory
    has no such tier."""
    port_map = pm.validate(port_map, groups)
    facts = {}
    for name in ("pg_write", "pg_read", "redis_sentinel", "redis", "app_http", "https",
                 "prometheus", "patroni_api", "etcd_client"):
        facts[name] = endpoints(port_map, groups, hostvars, name) if name in port_map else []
    facts["pg_write_hosts"] = ",".join(e["address"] for e in facts["pg_write"])
    facts["pg_read_hosts"] = ",".join(e["address"] for e in facts["pg_read"])
    facts["pg_write_port"] = port_map["pg_write"]["port"] if "pg_write" in port_map else None
    facts["pg_read_port"] = port_map["pg_read"]["port"] if "pg_read" in port_map else None
    facts["sentinels"] = [e["endpoint"] for e in facts["redis_sentinel"]]
    return facts
