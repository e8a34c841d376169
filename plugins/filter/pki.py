# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the pki role."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.module_utils import pki


def pki_host_sans(inventory_hostname, facts, ansible_host=None, extra=None, loopback=True):
    """subjectAltNames of a host certificate (see module_utils/pki.py)."""
    try:
        return pki.host_sans(inventory_hostname, facts, ansible_host, extra, loopback)
    except pki.SanError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def pki_endpoint_sans(inventory_hostname, groups, hostvars, mapping):
    """subjectAltNames of the TLS-passthrough endpoints in front of a host (module_utils/pki.py)."""
    try:
        return pki.endpoint_sans(inventory_hostname, groups, hostvars, mapping)
    except pki.SanError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule(object):
    def filters(self):
        return {"pki_host_sans": pki_host_sans, "pki_endpoint_sans": pki_endpoint_sans}
