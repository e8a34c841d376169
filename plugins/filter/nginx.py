# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the nginx role: site checks and the sites' rendered form (upstream servers
from the inventory and the port map, drained hosts rendered ``down``, limit zones, headers)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.module_utils import nginx


def nginx_site_problems(sites, groups, port_map, profile="intermediate"):
    """What is wrong with ``nginx_sites`` (list of messages; empty when all is well)."""
    return nginx.problems(sites, groups, port_map, profile)


def nginx_sites(sites, groups, hostvars, port_map, defaults):
    """The sites with upstream servers, zones and headers computed (see module_utils/nginx.py)."""
    try:
        return nginx.normalise(sites, groups, hostvars, port_map, defaults)
    except (nginx.NginxSiteError, KeyError) as exc:
        raise AnsibleFilterError("nginx_sites: %s" % exc) from exc


def nginx_upstream_servers(site, groups, hostvars, port_map):
    """``address:port`` of one site's upstream servers."""
    try:
        return nginx.upstream_servers(site, groups, hostvars, port_map)
    except (nginx.NginxSiteError, KeyError) as exc:
        raise AnsibleFilterError("nginx_upstream_servers: %s" % exc) from exc


def nginx_drained_problems(drained, sites, groups, hostvars, port_map):
    """What is wrong with ``nginx_drained_hosts`` (inventory host names to render ``down``):
    list of messages naming the variable, empty when all is well."""
    try:
        return nginx.drained_problems(drained, sites, groups, hostvars, port_map)
    except (nginx.NginxSiteError, KeyError) as exc:
        return ["nginx_drained_hosts: %s" % exc]


def nginx_rate_valid(rate):
    """True when ``rate`` is nginx rate syntax (``10r/s``, ``300r/m``)."""
    try:
        nginx.parse_rate(rate)
    except nginx.NginxSiteError:
        return False
    return True


def nginx_duration_valid(value):
    """True when ``value`` is one positive nginx time value (``90s``, ``500ms``, ``10m``, ``1h``)."""
    return nginx.valid_duration(value)


def nginx_cert_kind(info):
    """``{'rsa': bool, 'ocsp': bool}`` of a certificate from x509_certificate_info's result."""
    return nginx.cert_kind(info)


class FilterModule(object):
    def filters(self):
        return {"nginx_site_problems": nginx_site_problems, "nginx_sites": nginx_sites,
                "nginx_upstream_servers": nginx_upstream_servers, "nginx_drained_problems": nginx_drained_problems,
                "nginx_rate_valid": nginx_rate_valid, "nginx_duration_valid": nginx_duration_valid,
                "nginx_cert_kind": nginx_cert_kind}
