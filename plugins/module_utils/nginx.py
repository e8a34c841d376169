# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nginx role's sites: input checks and the normalised form the templates render.

A site (role variable ``nginx_sites``) is a dict::

    {"name": "shop",                       # [a-z0-9_-], file and zone names
     "server_names": ["shop.example.net"],
     "certificate": "lb1",                 # pki name: <pki_dir>/<name>-fullchain.crt + .key
     "certificate_file": "/path.crt",      # or user-provided files on the host (both keys)
     "certificate_key_file": "/path.key",
     "upstream_group": "app",              # inventory group of the upstream servers
     "upstream_service": "app_http",       # port map entry giving their port
     "upstream_servers": ["10.0.0.5:8000"],# or an explicit list (overrides the group)
     "rate": "10r/s", "burst": 20,         # limit_req per client address (per location too)
     "headers": {"Content-Security-Policy": "..."},  # over the role's security headers
     "hsts_preload": False,
     "client_max_body_size": "1m",
     "locations": [{"path": "/", "rate": "5r/s", "burst": 10, "nodelay": True,
                    "extra": ["raw directive;"]},
                   {"path": "/ws/", "websocket": True, "read_timeout": "90s"},
                   {"path": "/events/", "streaming": True, "read_timeout": "1h"}],
     "websocket": False, "streaming": False,  # site-wide defaults of the location options below
     "read_timeout": "60s", "send_timeout": "60s",
     "extra": ["raw server directive;"]}

Long-lived locations: ``websocket: true`` passes the client's ``Upgrade`` and sets ``Connection``
from the http-level map ``$hs_connection_upgrade`` ("upgrade" when the client asked for one, else
empty, so plain requests on that location keep the upstream keepalive); ``streaming: true``
turns response and request buffering, the cache and gzip off so every chunk reaches the client
when the upstream sends it; ``read_timeout`` / ``send_timeout`` (nginx durations such as
``90s``, ``10m``, ``1h``) set proxy_read_timeout / proxy_send_timeout of the location (an idle
WebSocket is closed after read_timeout without a frame: ping below it). A site-level value is the
default of its locations.

Draining (role variable ``nginx_drained_hosts``, a list of INVENTORY HOST NAMES): every
upstream server that is one of those hosts is rendered ``down`` (nginx sends it no new
request; requests in flight finish). Servers are matched by host name, never by address
text, so the drain works whatever the address looks like (IPv4, bracketed IPv6, a name
resolved by the address model). ``upstream_group`` sites know the host of every server; in
an explicit ``upstream_servers`` list an entry belongs to a drained host when its address is
one of that host's addresses (``address.cluster_addresses``) or its name is the host's
inventory name or configured address; other entries are never drained.

Nothing here touches a host: ``problems`` lists what is wrong (empty = fine) and
``normalise`` gives every site its upstream servers, limit zones and headers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.hardened.stack.plugins.module_utils import address as am

PROFILES = ("intermediate", "modern")
SITE_KEYS = ("name", "server_names", "certificate", "certificate_file", "certificate_key_file",
             "upstream_group", "upstream_service", "upstream_servers", "rate", "burst", "headers",
             "hsts_preload", "client_max_body_size", "locations", "extra", "default_server",
             "websocket", "streaming", "read_timeout", "send_timeout")
# Options a location takes from its site when it does not set them.
LONG_LIVED_KEYS = ("websocket", "streaming", "read_timeout", "send_timeout")
LOCATION_KEYS = ("path", "rate", "burst", "nodelay", "extra") + LONG_LIVED_KEYS
_RATE = re.compile(r"^([1-9][0-9]*)r/([sm])$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")
_SIZE = re.compile(r"^[0-9]+[kKmMgG]?$")
_SERVER = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")
# One nginx time value (ngx_parse_time): a positive whole number with an optional unit.
# nginx time values: a number with a unit, or several from the largest unit down written together
# ("1m30s", "1h30m"; nginx -t checks the order); a number alone is seconds. No spaces: the value
# is one directive argument.
_DURATION = re.compile(r"^(?:[1-9][0-9]{0,8}(?:ms|s|m|h|d|w))*[1-9][0-9]{0,8}(?:ms|s|m|h|d|w)?$")


class NginxSiteError(ValueError):
    """A site definition is wrong; the message names the site and the value."""


def parse_rate(rate):
    """``'10r/s'`` -> ``(10, 's')``; raise NginxSiteError on anything nginx would reject."""
    m = _RATE.match(str(rate).strip()) if isinstance(rate, str) else None
    if not m:
        raise NginxSiteError("rate %r is not nginx rate syntax: a positive whole number of "
                             "requests per second or minute, e.g. '10r/s' or '300r/m'" % (rate,))
    return int(m.group(1)), m.group(2)


def valid_duration(value):
    """True when ``value`` is a positive nginx time value: ``90``, ``90s``, ``500ms``, ``10m``,
    ``1h``, ``1d``, ``1w``, or units written together, largest first: ``1m30s``, ``1h30m`` (no
    unit: seconds)."""
    return isinstance(value, str) and bool(_DURATION.match(value)) or (
        isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10 ** 9)


def _long_lived_problems(where, entry):
    """``websocket`` / ``streaming`` must be booleans, ``read_timeout`` / ``send_timeout``
    nginx durations."""
    out = []
    for key in ("websocket", "streaming"):
        if key in entry and not isinstance(entry[key], bool):
            out.append("%s: %s must be true or false, got %r" % (where, key, entry[key]))
    for key in ("read_timeout", "send_timeout"):
        if key in entry and not valid_duration(entry[key]):
            out.append("%s: %s %r must be an nginx duration: a positive whole number with an optional unit "
                       "ms, s, m, h or d (e.g. '90s', '10m', '1h')" % (where, key, entry[key]))
    return out


def _int(value, minimum=0):
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= minimum else None


def _location_problems(where, loc):
    out = []
    if not isinstance(loc, dict):
        return ["%s: a location must be a dict with at least 'path', got %r" % (where, loc)]
    unknown = sorted(set(loc) - set(LOCATION_KEYS))
    if unknown:
        out.append("%s: unknown key(s) %s (known: %s)" % (where, ", ".join(unknown), ", ".join(LOCATION_KEYS)))
    path = loc.get("path")
    if not isinstance(path, str) or not path.startswith("/") or re.search(r"[\s;{}]", path):
        out.append("%s: path %r must start with '/' and hold no spaces, ';' or braces" % (where, path))
    if "rate" in loc:
        try:
            parse_rate(loc["rate"])
        except NginxSiteError as exc:
            out.append("%s: %s" % (where, exc))
    if "burst" in loc and _int(loc["burst"]) is None:
        out.append("%s: burst %r must be a whole number >= 0" % (where, loc["burst"]))
    if "extra" in loc and not (isinstance(loc["extra"], list) and all(isinstance(x, str) for x in loc["extra"])):
        out.append("%s: extra must be a list of directive strings" % where)
    out.extend(_long_lived_problems(where, loc))
    return out


def problems(sites, groups, port_map, profile="intermediate"):
    """Everything wrong with ``sites`` (a list of strings, empty when all is well)."""
    out = []
    if profile not in PROFILES:
        out.append("TLS profile %r is unknown: use one of %s" % (profile, ", ".join(PROFILES)))
    if not isinstance(sites, list) or not sites:
        return out + ["nginx_sites must be a non-empty list of sites"]
    seen = set()
    for index, site in enumerate(sites):
        if not isinstance(site, dict):
            out.append("site #%d must be a dict, got %r" % (index, site))
            continue
        name = site.get("name")
        where = "site '%s'" % name if name else "site #%d" % index
        if not isinstance(name, str) or not _NAME.match(name):
            out.append("%s: name %r must match [a-z0-9][a-z0-9_-]* (at most 48 characters)" % (where, name))
        elif name in seen:
            out.append("%s: the name is used by two sites" % where)
        seen.add(name)
        unknown = sorted(set(site) - set(SITE_KEYS))
        if unknown:
            out.append("%s: unknown key(s) %s (known: %s)" % (where, ", ".join(unknown), ", ".join(SITE_KEYS)))
        names = site.get("server_names", [])
        if not isinstance(names, list) or not all(isinstance(n, str) and n and not re.search(r"[\s;{}]", n) for n in names):
            out.append("%s: server_names must be a list of host names" % where)
        if ("certificate_file" in site) != ("certificate_key_file" in site):
            out.append("%s: give both certificate_file and certificate_key_file, or neither" % where)
        try:
            parse_rate(site.get("rate", "1r/s"))
        except NginxSiteError as exc:
            out.append("%s: %s" % (where, exc))
        if "burst" in site and _int(site["burst"]) is None:
            out.append("%s: burst %r must be a whole number >= 0" % (where, site["burst"]))
        if "client_max_body_size" in site and not _SIZE.match(str(site["client_max_body_size"])):
            out.append("%s: client_max_body_size %r must be a size like 1m or 512k"
                       % (where, site["client_max_body_size"]))
        headers = site.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(k, str) and _HEADER.match(k) for k in headers):
            out.append("%s: headers must be a dict of header name -> value" % where)
        elif any('"' in str(v) for v in headers.values() if v is not None):
            out.append("%s: header values cannot contain double quotes" % where)
        if "extra" in site and not (isinstance(site["extra"], list) and all(isinstance(x, str) for x in site["extra"])):
            out.append("%s: extra must be a list of directive strings" % where)
        out.extend(_long_lived_problems(where, site))
        if "upstream_servers" in site:
            servers = site["upstream_servers"]
            if not isinstance(servers, list) or not servers:
                out.append("%s: upstream_servers must be a non-empty list of address:port" % where)
            else:
                bad = [s for s in servers if not (isinstance(s, str) and _SERVER.match(s))]
                if bad:
                    out.append("%s: upstream server(s) %s are not address:port" % (where, ", ".join(map(repr, bad))))
        else:
            group = site.get("upstream_group", "app")
            service = site.get("upstream_service", "app_http")
            if not (groups or {}).get(group):
                out.append("%s: upstream group '%s' has no hosts: add hosts to it, set upstream_group "
                           "or list upstream_servers" % (where, group))
            if service not in (port_map or {}):
                out.append("%s: upstream_service '%s' is not in the port map" % (where, service))
        locations = site.get("locations", [{"path": "/"}])
        if not isinstance(locations, list) or not locations:
            out.append("%s: locations must be a non-empty list" % where)
        else:
            paths = set()
            for li, loc in enumerate(locations):
                out.extend(_location_problems("%s location #%d" % (where, li), loc))
                if isinstance(loc, dict):
                    if loc.get("path") in paths:
                        out.append("%s: location %r is defined twice" % (where, loc.get("path")))
                    paths.add(loc.get("path"))
    defaults = [s.get("name") for s in sites if isinstance(s, dict) and s.get("default_server")]
    if len(defaults) > 1:
        out.append("only one site can be default_server, got %s" % ", ".join(map(str, defaults)))
    return out


def _group_hosts(site, groups):
    return sorted((groups or {}).get(site.get("upstream_group", "app")) or [])


def _known_hosts(groups):
    known = set((groups or {}).get("all") or [])
    for hosts in (groups or {}).values():
        known.update(hosts or [])
    return known


def _same_name(a, b):
    return u"%s" % a != "" and (u"%s" % a).lower().rstrip(".") == (u"%s" % b).lower().rstrip(".")


def _server_host(server, candidates, hostvars):
    """The inventory host (among ``candidates``) an explicit ``address:port`` entry names, or
    None. An IP matches any of the host's addresses; a name matches the host's inventory name
    or its configured address (the names are not resolved here)."""
    m = _SERVER.match(u"%s" % server)
    if not m:
        return None
    target = m.group(1)
    ip = am.parse_ip(target)
    for host in candidates:
        try:
            if ip is not None:
                if ip.compressed in am.cluster_addresses(host, hostvars):
                    return host
            elif _same_name(target, host) or _same_name(target, am.configured(host, hostvars)[0]):
                return host
        except am.AddressError:
            continue
    return None


def upstream_peers(site, groups, hostvars, port_map, drained=()):
    """The site's upstream servers as ``{"server": "address:port", "host": inventory host or
    None, "down": bool}``: ``down`` when the host is in ``drained`` (inventory host names).
    ``upstream_group`` servers are sorted by host name; explicit ``upstream_servers`` keep
    their order and get a host only when it is a drained one (see the module doc)."""
    drained = list(drained or [])
    if site.get("upstream_servers"):
        out = []
        for server in site["upstream_servers"]:
            host = _server_host(server, drained, hostvars) if drained else None
            out.append({"server": u"%s" % server, "host": host, "down": host is not None})
        return out
    group = site.get("upstream_group", "app")
    service = site.get("upstream_service", "app_http")
    hosts = _group_hosts(site, groups)
    if not hosts:
        raise NginxSiteError("site '%s': upstream group '%s' has no hosts" % (site.get("name"), group))
    if service not in port_map:
        raise NginxSiteError("site '%s': upstream_service '%s' is not in the port map" % (site.get("name"), service))
    port = int(port_map[service]["port"])
    try:
        return [{"server": am.host_port(am.cluster_address(h, hostvars), port), "host": h, "down": h in drained}
                for h in hosts]
    except am.AddressError as exc:
        raise NginxSiteError("site '%s': %s" % (site.get("name"), exc))


def upstream_servers(site, groups, hostvars, port_map):
    """``address:port`` of the site's upstream servers: the explicit list, else every host of
    ``upstream_group`` at the port map's ``upstream_service`` port (sorted by host name)."""
    return [peer["server"] for peer in upstream_peers(site, groups, hostvars, port_map)]


def drained_problems(drained, sites, groups, hostvars, port_map):
    """What is wrong with ``nginx_drained_hosts`` (list of messages, empty when all is well):
    not a list of names, a name that is no inventory host, or a host that is an upstream
    server of no site (draining it would change nothing, and a caller such as the rolling
    restart would restart it undrained)."""
    if drained in (None, ""):
        return []
    if not isinstance(drained, (list, tuple)) or not all(isinstance(h, str) and h for h in drained):
        return ["nginx_drained_hosts must be a list of inventory host names, got %r" % (drained,)]
    known = _known_hosts(groups)
    unknown = [h for h in drained if h not in known]
    if unknown:
        return ["nginx_drained_hosts: %s %s not in the inventory (give inventory host names, not addresses)"
                % (", ".join("'%s'" % h for h in unknown), "is" if len(unknown) == 1 else "are")]
    if not isinstance(sites, list) or problems(sites, groups, port_map):
        return []  # the site checks report those
    served = set()
    for site in sites:
        try:
            served.update(p["host"] for p in upstream_peers(site, groups, hostvars, port_map, drained) if p["host"])
        except NginxSiteError:
            return []  # reported when the sites are rendered
    idle = [h for h in drained if h not in served]
    if idle:
        return ["nginx_drained_hosts: %s %s an upstream server of no site (sites: %s), so nothing would be "
                "drained" % (", ".join("'%s'" % h for h in idle), "is" if len(idle) == 1 else "are",
                             ", ".join(str(s.get("name")) for s in sites))]
    return []


def merged_headers(base, override):
    """The security headers of a site: ``base`` with ``override`` on top; a value of None or
    '' drops the header. Sorted by name for a stable rendering."""
    out = dict(base or {})
    for key, value in (override or {}).items():
        if value is None or value == "":
            out.pop(key, None)
        else:
            out[key] = value
    return [{"name": k, "value": str(out[k])} for k in sorted(out)]


def _duration_text(value):
    return None if value is None else u"%s" % value


def normalise(sites, groups, hostvars, port_map, defaults):
    """Sites ready to render. ``defaults``: rate, burst, nodelay, headers, hsts_preload,
    client_max_body_size, pki_dir, certificate (default pki name), server_names, certs
    (``{site name: {'rsa': bool, 'ocsp': bool}}`` from the certificate files), drained_hosts
    (inventory host names rendered ``down``). Each site's ``peers`` are its upstream servers
    with their host and ``down``; ``drained`` lists the inventory hosts rendered ``down``."""
    drained = defaults.get("drained_hosts") or []
    found = problems(sites, groups, port_map, defaults.get("profile", "intermediate"))
    found = found or drained_problems(drained, sites, groups, hostvars, port_map)
    if found:
        raise NginxSiteError("; ".join(found))
    certs = defaults.get("certs") or {}
    out = []
    has_default = any(s.get("default_server") for s in sites)
    for index, site in enumerate(sites):
        name = site["name"]
        if "certificate_file" in site:
            cert, key = site["certificate_file"], site["certificate_key_file"]
        else:
            base = "%s/%s" % (defaults["pki_dir"].rstrip("/"), site.get("certificate", defaults["certificate"]))
            cert, key = base + "-fullchain.crt", base + ".key"
        locations = []
        for li, loc in enumerate(site.get("locations", [{"path": "/"}])):
            rate = loc.get("rate", site.get("rate", defaults["rate"]))
            locations.append({
                "path": loc["path"],
                "zone": "hs_%s_%d" % (name.replace("-", "_"), li),
                "rate": rate,
                "burst": int(loc.get("burst", site.get("burst", defaults["burst"]))),
                "nodelay": bool(loc.get("nodelay", defaults.get("nodelay", True))),
                "extra": list(loc.get("extra", [])),
                "websocket": bool(loc.get("websocket", site.get("websocket", False))),
                "streaming": bool(loc.get("streaming", site.get("streaming", False))),
                "read_timeout": _duration_text(loc.get("read_timeout", site.get("read_timeout"))),
                "send_timeout": _duration_text(loc.get("send_timeout", site.get("send_timeout"))),
            })
        info = certs.get(name, {})
        peers = upstream_peers(site, groups, hostvars, port_map, drained)
        out.append({
            "name": name,
            "upstream": "hs_%s" % name.replace("-", "_"),
            "server_names": list(site.get("server_names") or defaults["server_names"]),
            "default_server": bool(site.get("default_server", not has_default and index == 0)),
            "certificate": cert,
            "certificate_key": key,
            "rsa": bool(info.get("rsa", False)),
            "ocsp": bool(info.get("ocsp", False)),
            "servers": [p["server"] for p in peers],
            "peers": peers,
            "drained": [p["host"] for p in peers if p["down"]],
            "headers": merged_headers(defaults.get("headers"), site.get("headers")),
            "hsts_preload": bool(site.get("hsts_preload", defaults.get("hsts_preload", False))),
            "client_max_body_size": str(site.get("client_max_body_size", defaults["client_max_body_size"])),
            "locations": locations,
            "extra": list(site.get("extra", [])),
        })
    return out


def cert_kind(info):
    """``{'rsa': bool, 'ocsp': bool}`` from a community.crypto.x509_certificate_info result
    (a skipped or failed result gives both False)."""
    info = info or {}
    key_type = str(info.get("public_key_type") or "").upper()
    return {"rsa": key_type == "RSA", "ocsp": bool(info.get("ocsp_uri"))}
