# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Firewall rules of a host from the port map and the inventory (see module_utils/firewall_rules)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.module_utils import address as am
from ansible_collections.hardened.stack.plugins.module_utils import firewall_rules as fr


def firewall_addresses(hostvars, hosts):
    """``{host: {"ipv4": [...], "ipv6": [...]}}``: every address of each host, from the
    address model (``hardened.stack.cluster_address`` with ``form='all'``)."""
    out = {}
    try:
        for name in hosts:
            out[name] = fr.by_family(am.cluster_addresses(name, hostvars))
    except (am.AddressError, fr.FirewallError) as exc:
        raise AnsibleFilterError(str(exc)) from exc
    return out


def firewall_ruleset(port_map, host, groups, hostvars, options=None):
    """The ``hardened.stack.iptables_apply`` arguments (ipv4, ipv6) for ``host``.

    ``options``: ssh_allow, extra_rules, input_policy, forward_policy, log_drops, log_limit,
    log_prefix, ping_limit. Every host's addresses come from the address model.
    """
    options = dict(options or {})
    addresses = firewall_addresses(hostvars, groups.get("all", []))
    try:
        return fr.compute(port_map, host, groups, addresses, options)
    except fr.FirewallError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def firewall_sources(service, port_map, groups, hostvars):
    """Networks that may connect to the port map ``service`` (``["any"]`` or ``/32``/``/128``
    per address of its ``from`` hosts), exactly as the firewall admits them: for services that
    check the client address a second time (nginx ``allow``). The service comes first so that
    ``map('hardened.stack.firewall_sources', …)`` works on a list of services."""
    try:
        hosts = fr.sources_hosts(port_map, service, groups)
        return fr.sources(port_map, service, groups, firewall_addresses(hostvars, hosts))
    except fr.FirewallError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def firewall_admits(ruleset, address, port, protocol="tcp"):
    """True when the computed ``ruleset`` accepts a new connection from ``address`` to ``port``."""
    try:
        return fr.admits(ruleset, address, port, protocol)
    except ValueError as exc:
        raise AnsibleFilterError("firewall_admits: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {
            "firewall_ruleset": firewall_ruleset,
            "firewall_addresses": firewall_addresses,
            "firewall_admits": firewall_admits,
            "firewall_sources": firewall_sources,
        }
