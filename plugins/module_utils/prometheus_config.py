# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Monitoring configuration from the inventory and the port map (pure functions).

* which exporters a host runs (the port map's ``*_exporter`` services that listen on it);
* Prometheus scrape jobs, one per component, with TLS, basic auth or a client certificate,
  and ``cluster`` / ``role`` labels;
* Prometheus duration and size strings (retention) checked as Prometheus parses them;
* an Alertmanager configuration from a list of receivers (webhook, email).

Nothing here declares a port: every port comes from the port map.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.hardened.stack.plugins.module_utils import address as am
from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm

# Exporters the collection installs, by short name -> port map service.
EXPORTERS = {
    "node": "node_exporter",
    "postgres": "postgres_exporter",
    "redis": "redis_exporter",
    "nginx": "nginx_exporter",
    "nginx_log": "nginx_log_exporter",
}

# Scrape jobs, in the order they appear in prometheus.yml. ``auth``: basic = username +
# password file (exporter-toolkit web config, or nginx in front); client_cert = the
# Prometheus host's certificate (redis_exporter 1.45 has no basic auth; etcd requires
# client certificates; Patroni's GET endpoints accept one).
JOBS = (
    ("node", {"service": "node_exporter", "path": "/metrics", "auth": "basic"}),
    ("postgres", {"service": "postgres_exporter", "path": "/metrics", "auth": "basic"}),
    # redis_exporter labels redis_instance_info with role=master|slave; the target's own
    # `role` label (the inventory groups) wins and Prometheus renames the exporter's to
    # exported_role, so it is kept as redis_role (what the Redis alerts read).
    ("redis", {"service": "redis_exporter", "path": "/metrics", "auth": "client_cert",
               "metric_relabel": ({"source_labels": ["exported_role"], "target_label": "redis_role"},
                                  {"regex": "exported_role", "action": "labeldrop"})}),
    ("nginx", {"service": "nginx_exporter", "path": "/metrics", "auth": "basic"}),
    # mtail on the nginx logs (loopback), served by nginx with TLS + basic auth like the nginx
    # exporter: responses by status class, upstream attempts and failures per peer.
    ("nginx_log", {"service": "nginx_log_exporter", "path": "/metrics", "auth": "basic"}),
    ("patroni", {"service": "patroni_api", "path": "/metrics", "auth": "client_cert"}),
    ("etcd", {"service": "etcd_client", "path": "/metrics", "auth": "client_cert"}),
    ("prometheus", {"service": "prometheus", "path": "/metrics", "auth": "basic"}),
    ("alertmanager", {"service": "alertmanager", "path": "/metrics", "auth": "basic"}),
)
JOB_NAMES = tuple(job[0] for job in JOBS)

_DURATION = re.compile(r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$")
_SIZE = re.compile(r"^[0-9]+(B|KB|MB|GB|TB|PB|EB)$")
RECEIVER_TYPES = ("webhook", "email")


class MonitoringConfigError(ValueError):
    """Bad monitoring input; the message names the value."""


def is_duration(value):
    """A Prometheus duration such as ``15d``, ``1w2d``, ``90m`` (not empty, not ``0``)."""
    text = str(value)
    return bool(text) and bool(_DURATION.match(text)) and any(c.isdigit() and c != "0" for c in text)


def is_size(value):
    """A Prometheus size such as ``512MB``, ``10GB``, or ``0`` / ``""`` (no size limit)."""
    text = str(value)
    return text in ("", "0") or bool(_SIZE.match(text))


def exporters_for(port_map, host, groups):
    """Short names of the exporters whose port map service listens on ``host`` (sorted)."""
    services = pm.services_on(port_map, host, groups)
    return sorted(name for name, service in EXPORTERS.items() if service in services)


def _target(host, hostvars, port):
    try:
        return am.host_port(am.cluster_address(host, hostvars), port)
    except am.AddressError as exc:
        raise MonitoringConfigError(str(exc))


def _roles(host, groups, listen):
    """The contract groups ``host`` is in that run this component (for node: all of them)."""
    names = [g for g in pm.CONTRACT_GROUPS if host in (groups.get(g) or [])]
    if pm.ALL not in listen:
        names = [g for g in names if g in listen] or [g for g in listen if host in (groups.get(g) or [])]
    return ",".join(sorted(names)) or "none"


def scrape_configs(port_map, groups, hostvars, jobs, options):
    """Prometheus ``scrape_configs`` for ``jobs`` (names from JOB_NAMES).

    ``options``: ``ca_file``, ``cert_file``, ``key_file`` (the Prometheus host's client
    certificate), ``username``, ``password_file`` (basic auth), ``cluster`` (label),
    optional ``scrape_interval`` / ``scrape_timeout``. A job whose service has no host in
    the inventory is left out (that tier is not deployed).
    """
    unknown = [j for j in jobs if j not in JOB_NAMES]
    if unknown:
        raise MonitoringConfigError("unknown scrape job(s) %s; known: %s"
                                    % (", ".join(sorted(unknown)), ", ".join(JOB_NAMES)))
    for key in ("ca_file", "cert_file", "key_file", "username", "password_file", "cluster"):
        if not options.get(key):
            raise MonitoringConfigError("scrape options: '%s' is required" % key)
    out = []
    for name, job in JOBS:
        if name not in jobs:
            continue
        entry = port_map.get(job["service"])
        if entry is None:
            raise MonitoringConfigError("scrape job '%s': the port map has no service '%s'"
                                        % (name, job["service"]))
        hosts = pm.hosts_of(groups, entry["listen"])
        if not hosts:
            continue
        tls = {"ca_file": options["ca_file"], "min_version": "TLS12"}
        if job["auth"] == "client_cert":
            tls["cert_file"] = options["cert_file"]
            tls["key_file"] = options["key_file"]
        config = {
            "job_name": name,
            "scheme": "https",
            "metrics_path": job["path"],
            "tls_config": tls,
            "static_configs": [
                {"targets": [_target(h, hostvars, entry["port"])],
                 "labels": {"instance": h, "cluster": options["cluster"],
                            "role": _roles(h, groups, entry["listen"])}}
                for h in hosts],
        }
        if job["auth"] == "basic":
            config["basic_auth"] = {"username": options["username"],
                                    "password_file": options["password_file"]}
        if job.get("metric_relabel"):
            config["metric_relabel_configs"] = [dict(rule) for rule in job["metric_relabel"]]
        for key in ("scrape_interval", "scrape_timeout"):
            if options.get(key):
                config[key] = options[key]
        out.append(config)
    return out


def _receiver(item, index):
    if not isinstance(item, dict):
        raise MonitoringConfigError("receiver #%d must be a dict, got %r" % (index, item))
    name = item.get("name")
    if not name:
        raise MonitoringConfigError("receiver #%d has no name" % index)
    kind = item.get("type")
    if kind not in RECEIVER_TYPES:
        raise MonitoringConfigError("receiver '%s': type %r is not one of %s"
                                    % (name, kind, ", ".join(RECEIVER_TYPES)))
    resolved = bool(item.get("send_resolved", True))
    if kind == "webhook":
        url = item.get("url") or ""
        if not re.match(r"^https?://[^/\s]+", url):
            raise MonitoringConfigError("receiver '%s' (webhook) needs a url starting with http:// or "
                                        "https://, got %r" % (name, url))
        return {"name": name, "webhook_configs": [{"url": url, "send_resolved": resolved}]}
    to = item.get("to") or ""
    if "@" not in to:
        raise MonitoringConfigError("receiver '%s' (email) needs 'to' with an e-mail address, got %r"
                                    % (name, to))
    return {"name": name, "email_configs": [{"to": to, "send_resolved": resolved}]}


def alertmanager_config(receivers, route, smtp=None):
    """An Alertmanager configuration dict.

    ``receivers``: ``[{name, type: webhook, url} | {name, type: email, to}]`` (optional
    ``send_resolved``). Without receivers, alerts go to a receiver that sends nothing (they
    stay visible in Alertmanager). ``route``: ``receiver`` ("" = first receiver),
    ``group_by``, ``group_wait``, ``group_interval``, ``repeat_interval``. ``smtp``:
    ``smarthost``, ``from``, ``auth_username``, ``auth_password``, ``require_tls`` (required
    when an email receiver exists).
    """
    built = [_receiver(item, i) for i, item in enumerate(receivers or [])]
    names = [r["name"] for r in built]
    if len(set(names)) != len(names):
        raise MonitoringConfigError("receiver names must be unique, got %s" % ", ".join(names))
    if not built:
        built = [{"name": "none"}]
        names = ["none"]
    route = dict(route or {})
    default = route.get("receiver") or names[0]
    if default not in names:
        raise MonitoringConfigError("route receiver '%s' is not one of the receivers (%s)"
                                    % (default, ", ".join(names)))
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if key in route and not is_duration(route[key]):
            raise MonitoringConfigError("route %s %r is not a duration such as 30s, 5m, 4h"
                                        % (key, route[key]))
    config = {
        "route": {"receiver": default,
                  "group_by": list(route.get("group_by") or ["alertname", "cluster"]),
                  "group_wait": route.get("group_wait", "30s"),
                  "group_interval": route.get("group_interval", "5m"),
                  "repeat_interval": route.get("repeat_interval", "4h")},
        "receivers": built,
        # A critical alert silences the warnings of the same alert on the same instance.
        "inhibit_rules": [{"source_matchers": ["severity = critical"],
                           "target_matchers": ["severity = warning"],
                           "equal": ["alertname", "instance"]}],
    }
    if any("email_configs" in r for r in built):
        smtp = smtp or {}
        if not smtp.get("smarthost") or not smtp.get("from"):
            raise MonitoringConfigError("an email receiver needs the SMTP smarthost (host:port) and from "
                                        "address")
        glob = {"smtp_smarthost": smtp["smarthost"], "smtp_from": smtp["from"],
                "smtp_require_tls": bool(smtp.get("require_tls", True))}
        if smtp.get("auth_username"):
            glob["smtp_auth_username"] = smtp["auth_username"]
            glob["smtp_auth_password"] = smtp.get("auth_password", "")
        config["global"] = glob
    return config
