# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Monitoring configuration from the inventory and the port map (pure functions).

* which exporters a host runs (the port map's ``*_exporter`` services that listen on it);
* Prometheus scrape jobs, one per component, with TLS, basic auth or a client certificate,
  and ``cluster`` / ``role`` labels;
* the blackbox probes of the public entry: every nginx site's server name through the front
  door (the ``https`` / ``http`` stack endpoints) and each load balancer, plus given URLs;
* Prometheus duration and size strings (retention) checked as Prometheus parses them;
* an Alertmanager configuration from a list of receivers (webhook, email).

Nothing here declares a port: every port comes from the port map.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.hardened.stack.plugins.module_utils import address as am
from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm
from ansible_collections.hardened.stack.plugins.module_utils import stack as st

# Exporters the collection installs, by short name -> port map service.
EXPORTERS = {
    "node": "node_exporter",
    "postgres": "postgres_exporter",
    "redis": "redis_exporter",
    "nginx": "nginx_exporter",
    "nginx_log": "nginx_log_exporter",
    "blackbox": "blackbox_exporter",
}

# Blackbox exporter modules (the exporters role writes them, templates/blackbox.yml.j2): an
# https URL must answer 2xx with a certificate valid for the server name (Host and SNI come
# from the probe's ``hostname`` parameter), an http URL must redirect (301/308) to https.
BLACKBOX_MODULES = {"https": "hardened_https_2xx", "http": "hardened_http_redirect"}

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
    # The public URLs probed from the monitoring host's own blackbox exporter (blackbox_targets):
    # the target is the probed URL, the scraped address the exporter.
    ("blackbox", {"service": "blackbox_exporter", "path": "/probe", "auth": "basic", "probe": True}),
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


def _url_host(url):
    match = re.match(r"^(https?)://(\[[0-9A-Fa-f:.]+\]|[^/:?#\s\[\]]+)(:([0-9]{1,5}))?([/?#][^\s]*)?$", url or "")
    if not match:
        return None
    return match.group(1), match.group(2), match.group(4), match.group(5) or "/"


def _server_names(host, hostvars):
    """The names ``host``'s nginx sites answer, as the nginx role renders them: a site's
    ``server_names``, else ``nginx_default_server_names`` (the role's default: the host name)."""
    try:
        hv = hostvars[host]
        sites = hv.get("nginx_sites") or []
        default = hv.get("nginx_default_server_names") or [host]
    except (KeyError, AttributeError, TypeError):
        sites, default = [], [host]
    names = []
    for site in sites:
        if not isinstance(site, dict):
            continue
        for name in site.get("server_names") or default:
            name = u"%s" % name
            # nginx wildcards and regexes name no URL a client could open.
            if name and name != "_" and "*" not in name and not name.startswith("~") and name not in names:
                names.append(name)
    return names


def blackbox_targets(port_map, groups, hostvars, health_path="/health", sites=True, urls=()):
    """The probes of the public entry, ``[{url, target, hostname, module, scheme, address, via}]``.

    With ``sites``: every ``nginx_sites`` server name of the hosts of the ``https`` service,
    probed at ``health_path`` over https (2xx, certificate valid for the name) and over http
    (redirect to https). Each probe dials an address (``target``) and names the site in Host and
    SNI (``hostname``): the front door from the stack endpoints (``via`` = ``front_door``: the
    virtual address when the load balancers have one, probed for the names every load balancer
    serves, or by the address itself when they share none) and every load balancer's own address
    (``via`` = its host name, its own names), the same address once. A site without
    ``server_names`` answers ``nginx_default_server_names`` (the nginx role's default: the host's
    name). ``urls``: more public URLs, probed as
    they resolve (``via`` = ``dns``; https -> 2xx, http -> redirect). ``url`` is the public URL
    (the ``instance`` label).
    """
    out = []
    seen = set()

    def add(scheme, name, address, port, path, via):
        default = {"https": 443, "http": 80}[scheme]
        suffix = "" if int(port) == default else ":%s" % port
        url = "%s://%s%s%s" % (scheme, am.host_port(name) if name == address else name, suffix, path)
        if name == address:
            # The address itself is the name (Host and the certificate's IP SAN).
            target, hostname = "%s://%s%s" % (scheme, am.host_port(address, port), path), ""
        elif address is None:
            target, hostname, address = url, "", ""
        else:
            target = "%s://%s%s" % (scheme, am.host_port(address, port), path)
            hostname = name
        key = (url, target)
        if key in seen:
            return
        seen.add(key)
        out.append({"url": url, "target": target, "hostname": hostname, "scheme": scheme,
                    "module": BLACKBOX_MODULES[scheme], "address": address, "via": via})

    if sites:
        if not re.match(r"^/[^\s?#]*$", u"%s" % health_path):
            raise MonitoringConfigError("blackbox: the health path %r must start with / (no space, query or "
                                        "fragment)" % (health_path,))
        for scheme in ("https", "http"):
            if scheme not in port_map:
                continue
            lbs = pm.hosts_of(groups, port_map[scheme]["listen"])
            # A virtual address may be on any load balancer: it serves the names all of them do
            # (a name one host alone serves, such as its own host name, is probed there only).
            per_lb = [_server_names(lb, hostvars) for lb in lbs]
            shared = [n for n in (per_lb[0] if per_lb else []) if all(n in names for names in per_lb)]
            try:
                front = st.endpoints(port_map, groups, hostvars, scheme)
            except st.StackError as exc:
                raise MonitoringConfigError(str(exc))
            dials = []
            for entry in front:
                # A front door that is one load balancer's own address serves that host's
                # sites; a virtual address serves every site of the group.
                own = entry.get("host") in lbs and entry["address"] == am.cluster_address(entry["host"], hostvars)
                dials.append((entry["address"], entry["port"], "front_door" if not own else entry["host"],
                              _server_names(entry["host"], hostvars) if own else shared))
            for lb in lbs:
                dials.append((am.cluster_address(lb, hostvars), port_map[scheme]["port"], lb,
                              _server_names(lb, hostvars)))
            done = set()
            for address, port, via, names in dials:
                if address in done:
                    continue
                done.add(address)
                # A front door no shared name leads to (every site answers its host's own
                # name, the nginx role's default) is probed by its address (certificates carry it).
                for name in names or ([address] if via == "front_door" else []):
                    add(scheme, name, address, port, health_path, via)
    for index, url in enumerate(urls or []):
        parsed = _url_host(u"%s" % url) if isinstance(url, str) else None
        if parsed is None:
            raise MonitoringConfigError("blackbox URL #%d %r is not an http:// or https:// URL (a host, an "
                                        "optional port and path, no spaces)" % (index, url))
        scheme, name, port, path = parsed
        add(scheme, name, None, port or {"https": 443, "http": 80}[scheme], path, "dns")
    return out


def _probe_config(name, job, port_map, groups, hostvars, options):
    """The blackbox job: this Prometheus host's own blackbox exporter (else the first one)
    probes every public URL; ``instance`` is the public URL, ``address`` what was dialled."""
    entry = port_map[job["service"]]
    exporters = pm.hosts_of(groups, entry["listen"])
    prober = options.get("host") if options.get("host") in exporters else exporters[0]
    probes = blackbox_targets(port_map, groups, hostvars, options.get("blackbox_health_path", "/health"),
                              options.get("blackbox_sites", True), options.get("blackbox_urls") or [])
    if not probes:
        return None
    static = []
    for probe in probes:
        labels = {"instance": probe["url"], "cluster": options["cluster"], "module": probe["module"],
                  "address": probe["address"], "via": probe["via"], "__param_module": probe["module"]}
        if probe["hostname"]:
            labels["__param_hostname"] = probe["hostname"]
        static.append({"targets": [probe["target"]], "labels": labels})
    return {
        "job_name": name,
        "scheme": "https",
        "metrics_path": job["path"],
        "tls_config": {"ca_file": options["ca_file"], "min_version": "TLS12"},
        "basic_auth": {"username": options["username"], "password_file": options["password_file"]},
        "static_configs": static,
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"target_label": "__address__", "replacement": _target(prober, hostvars, entry["port"])},
            {"target_label": "prober", "replacement": prober},
        ],
    }


def scrape_configs(port_map, groups, hostvars, jobs, options):
    """Prometheus ``scrape_configs`` for ``jobs`` (names from JOB_NAMES).

    ``options``: ``ca_file``, ``cert_file``, ``key_file`` (the Prometheus host's client
    certificate), ``username``, ``password_file`` (basic auth), ``cluster`` (label),
    optional ``scrape_interval`` / ``scrape_timeout``; for the blackbox job ``host`` (the
    Prometheus host: its own blackbox exporter probes), ``blackbox_sites``,
    ``blackbox_health_path``, ``blackbox_urls`` (blackbox_targets) and
    ``blackbox_scrape_interval``. A job whose service has no host in the inventory is left
    out (that tier is not deployed), and so is the blackbox job with nothing to probe.
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
        if job.get("probe"):
            config = _probe_config(name, job, port_map, groups, hostvars, options)
            if config is None:
                continue
            for key in ("scrape_interval", "scrape_timeout"):
                value = options.get("blackbox_" + key) or options.get(key)
                if value:
                    config[key] = value
            out.append(config)
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
