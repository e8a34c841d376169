# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Patroni REST API: request/response logic shared by the patroni_cluster* modules.

Pure functions (unit-tested) decide what to do from the API's answers: the cluster's state
from ``GET /cluster``, whether it is healthy, which replica is the best switchover
candidate, in which order to restart members, and which part of the dynamic configuration
has to be PATCHed. :class:`PatroniClient` only moves bytes (``open_url``).

Works with Patroni 3.0 (Debian 12: replicas report ``state: running``) and 4.x (Debian 13:
``state: streaming``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlsplit
from ansible.module_utils.urls import open_url

LEADER_ROLES = ("leader", "master", "primary", "standby_leader")
REPLICA_STATES = ("running", "streaming")
SYNC_ROLES = ("sync_standby", "quorum_standby")


class PatroniError(Exception):
    """The API could not be reached or refused a request; the message says which."""


# ---------------------------------------------------------------------------------------------
# Pure logic
# ---------------------------------------------------------------------------------------------

def api_base(api_url):
    """``https://h:8008/patroni`` -> ``https://h:8008`` (members advertise the former)."""
    parts = urlsplit(api_url)
    return "%s://%s" % (parts.scheme, parts.netloc)


def normalise_cluster(data):
    """A stable view of ``GET /cluster``: leader name, members (sorted), pause flag."""
    members = []
    leader = None
    for m in data.get("members") or []:
        role = m.get("role", "")
        if role == "master":
            role = "leader"
        lag = m.get("lag", 0 if role in LEADER_ROLES else "unknown")
        member = {
            "name": m.get("name"),
            "role": role,
            "state": m.get("state", ""),
            "host": m.get("host"),
            "port": m.get("port"),
            "api_url": m.get("api_url"),
            "timeline": m.get("timeline"),
            "lag": lag,
            "pending_restart": bool(m.get("pending_restart", False)),
            "tags": m.get("tags") or {},
        }
        if role in LEADER_ROLES:
            leader = member["name"]
        members.append(member)
    members.sort(key=lambda x: x["name"] or "")
    return {"leader": leader, "members": members, "pause": bool(data.get("pause", False)),
            "scheduled_switchover": data.get("scheduled_switchover")}


def member(cluster, name):
    for m in cluster["members"]:
        if m["name"] == name:
            return m
    return None


def health_problems(cluster, max_lag=1048576, expected_members=None):
    """Why the cluster is not healthy (empty list = healthy).

    Healthy: exactly one leader, running; every other member a replica that is running or
    streaming, on the leader's timeline, with a known lag of at most ``max_lag`` bytes; and
    ``expected_members`` members when given.
    """
    problems = []
    leaders = [m for m in cluster["members"] if m["role"] in LEADER_ROLES]
    if len(leaders) != 1:
        problems.append("%d leaders (%s)" % (len(leaders), ", ".join(m["name"] for m in leaders) or "none"))
    elif leaders[0]["state"] != "running":
        problems.append("leader %s is %s" % (leaders[0]["name"], leaders[0]["state"] or "in no state"))
    leader_tl = leaders[0]["timeline"] if len(leaders) == 1 else None
    for m in cluster["members"]:
        if m["role"] in LEADER_ROLES:
            continue
        if m["state"] not in REPLICA_STATES:
            problems.append("member %s is %s" % (m["name"], m["state"] or "in no state"))
            continue
        if not isinstance(m["lag"], int) or isinstance(m["lag"], bool):
            problems.append("member %s has an unknown lag" % m["name"])
        elif m["lag"] > max_lag:
            problems.append("member %s lags %d bytes (> %d)" % (m["name"], m["lag"], max_lag))
        if leader_tl is not None and m["timeline"] is not None and m["timeline"] != leader_tl:
            problems.append("member %s is on timeline %s, the leader on %s" % (m["name"], m["timeline"], leader_tl))
    if expected_members is not None and len(cluster["members"]) != int(expected_members):
        problems.append("%d members, expected %d" % (len(cluster["members"]), int(expected_members)))
    return problems


def switchover_candidate(cluster, candidate=None, max_lag=1048576):
    """The member to switch over to: ``candidate`` if eligible, else the healthiest replica.

    Eligible: not the leader, running/streaming, no ``nofailover`` tag, lag known and at most
    ``max_lag``. Healthiest: synchronous standbys first, then the smallest lag, then the name.
    Raises PatroniError when none is eligible (the message says why).
    """
    leader = cluster["leader"]
    reasons = {}
    eligible = []
    for m in cluster["members"]:
        if m["name"] == leader:
            continue
        if m["state"] not in REPLICA_STATES:
            reasons[m["name"]] = "it is %s" % (m["state"] or "in no state")
        elif m["tags"].get("nofailover"):
            reasons[m["name"]] = "it is tagged nofailover"
        elif not isinstance(m["lag"], int) or m["lag"] > max_lag:
            reasons[m["name"]] = "its lag is %s" % m["lag"]
        else:
            eligible.append(m)
    if candidate is not None:
        if candidate == leader:
            return candidate
        chosen = [m for m in eligible if m["name"] == candidate]
        if chosen:
            return candidate
        if member(cluster, candidate) is None:
            raise PatroniError("candidate %s is not a member of the cluster (%s)"
                               % (candidate, ", ".join(m["name"] for m in cluster["members"])))
        raise PatroniError("candidate %s cannot take over: %s" % (candidate, reasons.get(candidate, "unknown")))
    if not eligible:
        raise PatroniError("no replica can take over: %s" % (
            "; ".join("%s: %s" % kv for kv in sorted(reasons.items())) or "there are no replicas"))
    eligible.sort(key=lambda m: (m["role"] not in SYNC_ROLES, m["lag"], m["name"]))
    return eligible[0]["name"]


def restart_plan(cluster, pending_only=True, members=None):
    """Member names to restart, replicas first (by name) and the leader last."""
    chosen = [m for m in cluster["members"]
              if (members is None or m["name"] in members) and (m["pending_restart"] or not pending_only)]
    replicas = sorted(m["name"] for m in chosen if m["role"] not in LEADER_ROLES)
    leaders = [m["name"] for m in chosen if m["role"] in LEADER_ROLES]
    return replicas + leaders


def _norm(value):
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str) and value.lower() in ("true", "on", "yes"):
        return "on"
    if isinstance(value, str) and value.lower() in ("false", "off", "no"):
        return "off"
    return value


def config_patch(current, desired):
    """The smallest PATCH body that makes ``current`` contain ``desired`` (None if none).

    Nested dicts are compared key by key; scalars are compared loosely (``true``/``on``, ``5``
    and ``"5"`` are equal: Patroni and PostgreSQL treat them alike). A ``None`` in
    ``desired`` removes the key (PATCH semantics) when it is present.
    """
    patch = {}
    current = current or {}
    for key, want in desired.items():
        have = current.get(key)
        if want is None:
            if key in current and have is not None:
                patch[key] = None
        elif isinstance(want, dict):
            sub = config_patch(have if isinstance(have, dict) else {}, want)
            if sub is not None:
                patch[key] = sub
        elif isinstance(want, list):
            if not isinstance(have, list) or [_norm(x) for x in have] != [_norm(x) for x in want]:
                patch[key] = want
        elif key not in current or _norm(have) != _norm(want):
            patch[key] = want
    return patch or None


def auth_verdict(status):
    """What a member's answer to the authentication probe means.

    The probe is ``PATCH /config`` with the body ``{}``: Patroni checks the client
    certificate and the ``Authorization`` header first (``check_access``: 403 without a
    certificate, 401 with a wrong user or password), and only then reads the body, which it
    refuses as empty (400) without touching the configuration. Patroni 3.0 and 4.x answer
    alike. Returns ``"accepted"`` (400), ``"refused"`` (401) or ``"unexpected"``.
    """
    if status == 400:
        return "accepted"
    if status == 401:
        return "refused"
    return "unexpected"


def auth_problems(answers, expected_members=None):
    """``{member: (status or None, detail)}`` -> why the credentials are not accepted
    everywhere (empty list = every member accepts them)."""
    problems = []
    for name in sorted(answers):
        status, detail = answers[name]
        verdict = auth_verdict(status) if status is not None else "unreachable"
        if verdict == "accepted":
            continue
        if verdict == "refused":
            problems.append("member %s refuses the REST API user's password (HTTP 401)" % name)
        elif verdict == "unreachable":
            problems.append("member %s: %s" % (name, str(detail)[:200]))
        else:
            problems.append("member %s answered the authentication probe with HTTP %s %s"
                            % (name, status, str(detail)[:200]))
    if expected_members is not None and len(answers) != int(expected_members):
        problems.append("%d members answered, expected %d" % (len(answers), int(expected_members)))
    return problems


def apply_patch(current, patch):
    """``current`` with ``patch`` applied as Patroni does (recursive merge, None deletes)."""
    out = dict(current or {})
    for key, value in (patch or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = apply_patch(out[key], value)
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------

class PatroniClient(object):
    """Talks to the Patroni REST API of one or more members (the first that answers)."""

    def __init__(self, api_urls, ca_path=None, client_cert=None, client_key=None, username=None,
                 password=None, validate_certs=True, timeout=5, opener=open_url):
        if isinstance(api_urls, str):
            api_urls = [api_urls]
        self.api_urls = [u.rstrip("/") for u in api_urls]
        self.ca_path = ca_path
        self.client_cert = client_cert
        self.client_key = client_key
        self.username = username
        self.password = password
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.opener = opener

    def request(self, method, url, body=None, timeout=None):
        """(status, parsed JSON or text) of one request; HTTP errors are answers too."""
        kwargs = dict(method=method, validate_certs=self.validate_certs, timeout=timeout or self.timeout,
                      headers={"Content-Type": "application/json", "Accept": "application/json"})
        if body is not None:
            kwargs["data"] = json.dumps(body)
        if self.ca_path:
            kwargs["ca_path"] = self.ca_path
        if self.client_cert:
            kwargs["client_cert"] = self.client_cert
            kwargs["client_key"] = self.client_key
        if self.username and method not in ("GET", "HEAD", "OPTIONS"):
            kwargs.update(url_username=self.username, url_password=self.password, force_basic_auth=True)
        try:
            resp = self.opener(url, **kwargs)
            status, raw = resp.getcode(), resp.read()
        except HTTPError as exc:
            status, raw = exc.code, exc.read() if hasattr(exc, "read") else b""
        except (URLError, OSError, ValueError) as exc:
            raise PatroniError("%s %s: %s" % (method, url, exc))
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def any_member(self, method, path, body=None, ok=(200,)):
        """Send to each API URL in turn until one answers with a status in ``ok``."""
        errors = []
        for base in self.api_urls:
            try:
                status, data = self.request(method, base + path, body)
            except PatroniError as exc:
                errors.append(str(exc))
                continue
            if status in ok:
                return data
            errors.append("%s %s%s: HTTP %s %s" % (method, base, path, status, data))
        raise PatroniError("; ".join(errors) or "no API URL given")

    def cluster(self):
        return normalise_cluster(self.any_member("GET", "/cluster") or {})

    def config(self):
        return self.any_member("GET", "/config") or {}

    def patch_config(self, patch):
        return self.any_member("PATCH", "/config", patch)

    def auth_answers(self, cluster):
        """``{member: (status, detail)}``: each member's answer to the authentication probe
        (see :func:`auth_verdict`), sent to the member's own API URL with this client's
        certificate and credentials; ``(None, error)`` when it cannot be reached."""
        answers = {}
        for m in cluster["members"]:
            if not m["api_url"]:
                answers[m["name"]] = (None, "no API URL")
                continue
            try:
                status, data = self.request("PATCH", api_base(m["api_url"]) + "/config", {})
            except PatroniError as exc:
                answers[m["name"]] = (None, str(exc))
                continue
            answers[m["name"]] = (status, data if isinstance(data, str) else json.dumps(data))
        return answers

    def member_request(self, cluster, name, method, path, body=None, ok=(200,), timeout=None):
        m = member(cluster, name)
        if m is None or not m["api_url"]:
            raise PatroniError("member %s is not in the cluster or has no API URL" % name)
        status, data = self.request(method, api_base(m["api_url"]) + path, body, timeout=timeout)
        if status not in ok:
            raise PatroniError("%s %s on %s: HTTP %s %s" % (method, path, name, status, data))
        return data
