# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The address model as filters (module_utils/address.py holds the one implementation).

``cluster_address`` answers "what address do this host's services bind to, and what do its
peers dial". Order of preference (per host): ``hardened_stack_address`` (IP or DNS name, or a
list: the first is the address, the rest further addresses of the host),
``hardened_stack_cluster_interface`` (that interface's address from gathered facts),
``ansible_host``, the inventory name. DNS names are resolved on the controller.

Forms, all from the same answer:

- ``host | hardened.stack.cluster_address(hostvars)`` -> ``10.0.5.11`` / ``2001:db8::11``
- ``... cluster_address(hostvars, port=2380)`` -> ``10.0.5.11:2380`` / ``[2001:db8::11]:2380``
- ``... cluster_address(hostvars, port=2380, scheme='https')`` -> ``https://[2001:db8::11]:2380``
- ``... cluster_address(hostvars, form='cidr')`` -> ``10.0.5.11/32`` / ``2001:db8::11/128``
- ``... cluster_address(hostvars, form='all')`` -> every address of the host (firewall sources)

``hardened.stack.host_port(address, port)`` formats an address that is not an inventory host's
(a listen address, a VIP) the same way: ``[::1]:9090``; with ``scheme`` it gives a URL.

Errors: an unresolvable name, a missing interface, a value that is neither an IP nor a DNS
name raise an error that names the host and the variable the value came from.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.stack.plugins.module_utils import address as am

FORMS = ("address", "cidr", "all")


def cluster_address(host, hostvars, port=None, scheme=None, path="", form="address"):
    """The cluster address of inventory host ``host`` (see the module doc for the forms)."""
    if form not in FORMS:
        raise AnsibleFilterError("cluster_address: form must be one of %s, not %r" % (", ".join(FORMS), form))
    try:
        if form == "all":
            return am.cluster_addresses(host, hostvars)
        value = am.cluster_address(host, hostvars)
        if form == "cidr":
            return am.host_cidr(value)
        if scheme:
            return am.url(scheme, value, port, path)
        if port not in (None, ""):
            return am.host_port(value, port)
        return value
    except (am.AddressError, ValueError, TypeError) as exc:
        raise AnsibleFilterError("cluster_address: %s" % exc)


def host_port(value, port=None, scheme=None, path=""):
    """``address:port`` (IPv6 bracketed), or ``scheme://address:port/path`` with ``scheme``."""
    try:
        if scheme:
            return am.url(scheme, value, port, path)
        return am.host_port(value, port)
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("host_port: %s" % exc)


def cluster_address_problem(host, hostvars):
    """Why the host's cluster address cannot be bound on the host (from its facts), or ''."""
    try:
        return am.local_problem(host, hostvars) or ""
    except am.AddressError as exc:
        return str(exc)


def virtual_addresses(groups, hostvars, group=am.FRONT_DOOR_GROUP):
    """The virtual addresses of ``group`` (hardened_stack_virtual_address), ``[]`` when unset."""
    try:
        return am.virtual_addresses(groups, hostvars, group)
    except am.AddressError as exc:
        raise AnsibleFilterError("virtual_addresses: %s" % exc)


def front_door(groups, hostvars, group=am.FRONT_DOOR_GROUP):
    """The addresses clients dial for ``group``: its virtual addresses, else its hosts'."""
    try:
        return am.front_door(groups, hostvars, group)
    except am.AddressError as exc:
        raise AnsibleFilterError("front_door: %s" % exc)


def vrrp_instance(host, groups, hostvars, facts, group=am.FRONT_DOOR_GROUP, priority=0):
    """keepalived's interface, source, unicast peers, virtual addresses and priority for ``host``."""
    try:
        return am.vrrp_instance(host, groups, hostvars, facts, group, int(priority or 0))
    except (am.AddressError, ValueError, TypeError) as exc:
        raise AnsibleFilterError("vrrp_instance: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {
            "cluster_address": cluster_address,
            "host_port": host_port,
            "cluster_address_problem": cluster_address_problem,
            "virtual_addresses": virtual_addresses,
            "front_door": front_door,
            "vrrp_instance": vrrp_instance,
        }
