# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Monitoring filters: exporters per host, scrape jobs, Alertmanager config, retention checks
(see plugins/module_utils/prometheus_config.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm
from ansible_collections.hardened.stack.plugins.module_utils import prometheus_config as pc


def _validated(port_map, groups):
    try:
        return pm.validate(port_map, groups)
    except pm.PortMapError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def prometheus_exporters_for(port_map, host, groups):
    """Short names of the exporters the port map puts on ``host``."""
    return pc.exporters_for(_validated(port_map, groups), host, groups)


def prometheus_scrape_configs(port_map, groups, hostvars, jobs, options):
    """Prometheus scrape_configs, one job per component, from the inventory and the port map."""
    try:
        return pc.scrape_configs(_validated(port_map, groups), groups, hostvars, list(jobs), dict(options))
    except pc.MonitoringConfigError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def prometheus_is_duration(value):
    """True for a Prometheus duration (15d, 2w, 12h30m)."""
    return pc.is_duration(value)


def prometheus_is_size(value):
    """True for a Prometheus size (512MB, 20GB) or 0/"" (no limit)."""
    return pc.is_size(value)


def alertmanager_config(receivers, route=None, smtp=None):
    """Alertmanager configuration from receivers (webhook, email), or a clear error."""
    try:
        return pc.alertmanager_config(receivers, route or {}, smtp)
    except pc.MonitoringConfigError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule(object):
    def filters(self):
        return {
            "prometheus_exporters_for": prometheus_exporters_for,
            "prometheus_scrape_configs": prometheus_scrape_configs,
            "prometheus_is_duration": prometheus_is_duration,
            "prometheus_is_size": prometheus_is_size,
            "alertmanager_config": alertmanager_config,
        }
