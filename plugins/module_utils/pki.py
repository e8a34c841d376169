# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""subjectAltName computation for host certificates (pure functions)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.hardened.stack.plugins.module_utils import address as am


class SanError(ValueError):
    """A subjectAltName is malformed; the message names it."""


def _ip(value):
    try:
        return ipaddress.ip_address(str(value).split("%", 1)[0])
    except ValueError:
        return None


def normalise_san(san):
    """Return ``DNS:name`` / ``IP:addr`` in canonical form, or raise SanError."""
    if not isinstance(san, str) or ":" not in san:
        raise SanError("subjectAltName %r must look like DNS:name or IP:address" % (san,))
    kind, value = san.split(":", 1)
    kind = kind.strip().upper()
    value = value.strip()
    if kind == "IP":
        addr = _ip(value)
        if addr is None:
            raise SanError("subjectAltName %r: %r is not an IP address" % (san, value))
        return "IP:%s" % addr.compressed
    if kind == "DNS":
        if not value or " " in value or len(value) > 253:
            raise SanError("subjectAltName %r: %r is not a DNS name" % (san, value))
        return "DNS:%s" % value.lower()
    raise SanError("subjectAltName %r: type %r is not DNS or IP" % (san, kind))


def host_sans(inventory_hostname, facts, ansible_host=None, extra=None, loopback=True):
    """SANs for a host: its inventory name, hostname and FQDN, ``ansible_host``, every
    global/private address in its facts, optional loopback names, plus ``extra``.
    Sorted, without duplicates; link-local addresses are left out."""
    facts = facts or {}
    sans = []
    names = [inventory_hostname, facts.get("hostname"), facts.get("fqdn"), facts.get("nodename")]
    addresses = list(facts.get("all_ipv4_addresses") or []) + list(facts.get("all_ipv6_addresses") or [])
    if ansible_host:
        if _ip(ansible_host) is not None:
            addresses.append(ansible_host)
        else:
            names.append(ansible_host)
    for name in names:
        if name and _ip(name) is None and name != "localhost":
            sans.append("DNS:%s" % name)
        elif name and _ip(name) is not None:
            addresses.append(name)
    for addr in addresses:
        ip = _ip(addr)
        if ip is not None and not ip.is_link_local:
            sans.append("IP:%s" % ip.compressed)
    if loopback:
        sans += ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    sans += list(extra or [])
    out = []
    for san in sans:
        canon = normalise_san(san)
        if canon not in out:
            out.append(canon)
    dns = sorted(s for s in out if s.startswith("DNS:"))
    ips = sorted((s for s in out if s.startswith("IP:")), key=lambda s: (_ip(s[3:]).version, _ip(s[3:])))
    return dns + ips


def endpoint_sans(inventory_hostname, groups, hostvars, mapping):
    """SANs a host needs because clients reach it through a TLS-passthrough endpoint: for
    every ``{backend_group: endpoint_group}`` in ``mapping`` that has this host in
    ``backend_group``, the names and addresses of the ``endpoint_group`` hosts (a client
    verifying the server's name against the endpoint it dialled, e.g. libpq's verify-full
    through HAProxy, must find the endpoint in the backend's certificate), and the endpoint group's
    virtual address (``hardened_stack_virtual_address``); a host of the load balancers gets that
    virtual address too (the front door's certificate)."""
    out = []
    for backend, endpoint in sorted((mapping or {}).items()):
        if inventory_hostname not in (groups.get(backend) or []):
            continue
        for host in groups.get(endpoint) or []:
            if host == inventory_hostname:
                continue
            names = [host]
            try:
                value, _source, _extra = am.configured(host, hostvars)
                names += [value, am.cluster_address(host, hostvars)]
            except am.AddressError as exc:
                raise SanError(str(exc))
            for name in names:
                san = ("IP:%s" % _ip(name).compressed) if _ip(name) is not None else "DNS:%s" % name
                if san not in out:
                    out.append(san)
        # clients dial the endpoint group's virtual address (the front door) when it has one
        for address in _virtual(groups, hostvars, endpoint):
            if "IP:%s" % address not in out:
                out.append("IP:%s" % address)
    # the front door's own certificate (nginx, HAProxy) names the virtual address it answers on
    if inventory_hostname in (groups.get(am.FRONT_DOOR_GROUP) or []):
        for address in _virtual(groups, hostvars, am.FRONT_DOOR_GROUP):
            if "IP:%s" % address not in out:
                out.append("IP:%s" % address)
    return out


def _virtual(groups, hostvars, group):
    try:
        return am.virtual_addresses(groups, hostvars, group)
    except am.AddressError as exc:
        raise SanError(str(exc))
