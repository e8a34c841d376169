# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure helpers for the redis_sentinel module: parse SENTINEL replies, diff settings.

Nothing here touches the network; :mod:`resp` does that. Everything is unit-tested.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.hardened.stack.plugins.module_utils.resp import pairs_to_dict

# Fields of SENTINEL MASTER / REPLICAS / SENTINELS that are integers.
INT_FIELDS = frozenset((
    "port", "link-pending-commands", "link-refcount", "last-ping-sent", "last-ok-ping-reply",
    "last-ping-reply", "down-after-milliseconds", "info-refresh", "role-reported-time",
    "config-epoch", "num-slaves", "num-other-sentinels", "quorum", "failover-timeout",
    "parallel-syncs", "master-link-down-time", "master-port", "slave-priority",
    "replica-priority", "slave-repl-offset", "replica-announced", "last-hello-message",
    "voted-leader-epoch", "s-down-time", "o-down-time", "master-reboot-down-after-period",
))

# Settings SENTINEL SET accepts and SENTINEL MASTER reports back, so they can be compared.
COMPARABLE_SETTINGS = ("quorum", "down-after-milliseconds", "failover-timeout", "parallel-syncs",
                       "master-reboot-down-after-period")
# Settings SENTINEL SET accepts but never reports (secrets, scripts): only set on request.
WRITE_ONLY_SETTINGS = ("auth-pass", "auth-user", "notification-script", "client-reconfig-script")
KNOWN_SETTINGS = COMPARABLE_SETTINGS + WRITE_ONLY_SETTINGS
# Sentinel's own settings (SENTINEL CONFIG GET/SET, one name per call on Redis 7.0): the user
# and password it logs in with at the other Sentinels, what it announces, name resolution.
# SENTINEL CONFIG SET sentinel-user/sentinel-pass drops the links to the other Sentinels,
# which reconnect with the new credentials (sentinel.c, sentinelConfigSetCommand, Redis 7.0.15
# and Valkey 8.0).
SENTINEL_CONFIG_SETTINGS = ("sentinel-user", "sentinel-pass", "announce-ip", "announce-port",
                            "resolve-hostnames", "announce-hostnames")
# Never shown: masked in diffs and results.
SECRET_SETTINGS = ("auth-pass", "sentinel-pass")
MASK = "********"


class SentinelSettingsError(ValueError):
    """A requested setting is unknown or has a wrong value."""


def parse_entry(flat):
    """One SENTINEL MASTER/REPLICAS/SENTINELS entry (flat list) -> typed dict."""
    raw = pairs_to_dict(flat)
    out = {}
    for key, value in raw.items():
        if key in INT_FIELDS:
            try:
                value = int(value)
            except (TypeError, ValueError):
                pass
        out[key] = value
    if "flags" in out:
        out["flags"] = [f for f in str(out["flags"]).split(",") if f]
    return out


def parse_entries(reply):
    """SENTINEL REPLICAS/SENTINELS/MASTERS reply (list of flat lists) -> list of dicts."""
    return [parse_entry(item) for item in (reply or [])]


def is_down(entry):
    flags = entry.get("flags", [])
    return any(f in flags for f in ("s_down", "o_down", "disconnected"))


def summarise_replica(entry):
    return {
        "ip": entry.get("ip"),
        "port": entry.get("port"),
        "flags": entry.get("flags", []),
        "down": is_down(entry),
        "master_link_status": entry.get("master-link-status"),
        # The master this replica itself reports (INFO replication, as Sentinel last read it).
        "master_host": entry.get("master-host"),
        "replica_priority": entry.get("replica-priority", entry.get("slave-priority")),
        "repl_offset": entry.get("slave-repl-offset"),
    }


def summarise_sentinel(entry):
    return {
        "ip": entry.get("ip"),
        "port": entry.get("port"),
        "runid": entry.get("runid"),
        "flags": entry.get("flags", []),
        "down": is_down(entry),
    }


def normalise_settings(settings):
    """Accept ``down_after_milliseconds`` or ``down-after-milliseconds``; check names and values."""
    out = {}
    for key, value in (settings or {}).items():
        name = str(key).replace("_", "-").lower()
        if name not in KNOWN_SETTINGS:
            raise SentinelSettingsError("unknown Sentinel setting '%s' (known: %s)"
                                        % (key, ", ".join(KNOWN_SETTINGS)))
        if name in COMPARABLE_SETTINGS:
            if isinstance(value, bool):
                raise SentinelSettingsError("Sentinel setting '%s' must be an integer, got %r" % (key, value))
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise SentinelSettingsError("Sentinel setting '%s' must be an integer, got %r" % (key, value))
            if value < (1 if name in ("quorum", "parallel-syncs", "down-after-milliseconds",
                                      "failover-timeout") else 0):
                raise SentinelSettingsError("Sentinel setting '%s' is out of range: %r" % (key, value))
        else:
            value = "" if value is None else str(value)
        out[name] = value
    return out


def normalise_sentinel_config(settings):
    """Sentinel's own settings: names with dashes, values as SENTINEL CONFIG GET reports them."""
    out = {}
    for key, value in (settings or {}).items():
        name = str(key).replace("_", "-").lower()
        if name not in SENTINEL_CONFIG_SETTINGS:
            raise SentinelSettingsError("unknown Sentinel configuration '%s' (known: %s)"
                                        % (key, ", ".join(SENTINEL_CONFIG_SETTINGS)))
        if isinstance(value, bool):
            value = "yes" if value else "no"
        out[name] = "" if value is None else u"%s" % value
    return out


def settings_diff(current, wanted, write_only_always=False, known=None):
    """What SENTINEL SET must change.

    ``current`` is a parsed SENTINEL MASTER entry, ``wanted`` normalised settings, ``known``
    the values of write-only settings read elsewhere (auth-pass and auth-user from the
    sentinel.conf Sentinel rewrites on every change). Returns (changes, before, after):
    ``changes`` an ordered list of (name, value) to send, ``before`` and ``after`` dicts for
    Ansible's diff. Other write-only settings are sent only when ``write_only_always`` is
    true. Secrets are masked in the diff.
    """
    known = known or {}
    changes = []
    before = {}
    after = {}
    for name in sorted(wanted):
        value = wanted[name]
        if name in COMPARABLE_SETTINGS and name in current:
            have = current.get(name)
            before[name] = have
            after[name] = value
            if have != value:
                changes.append((name, value))
        elif name in known:
            have = known[name]
            before[name] = MASK if name in SECRET_SETTINGS and have else have
            after[name] = MASK if name in SECRET_SETTINGS and value else value
            if have != value and name in SECRET_SETTINGS:
                after[name] = MASK + " (another value)"
            if have != value:
                changes.append((name, value))
        elif write_only_always:
            # not reported by this Sentinel version (secrets, scripts, newer settings)
            masked = MASK if name in SECRET_SETTINGS else value
            before[name] = "(not reported by Sentinel)"
            after[name] = masked
            changes.append((name, value))
    return changes, before, after


def parse_ckquorum(ok, message):
    """SENTINEL CKQUORUM: ``+OK 3 usable Sentinels...`` or an error text -> dict."""
    usable = None
    words = (message or "").split()
    for i, word in enumerate(words):
        if word.isdigit() and i + 1 < len(words) and words[i + 1].lower().startswith("usable"):
            usable = int(word)
            break
    return {"ok": bool(ok), "message": message, "usable_sentinels": usable}


def default_quorum(sentinel_count):
    """A majority of the Sentinels: 1 of 1, 2 of 2 or 3, 3 of 4 or 5."""
    if sentinel_count < 1:
        raise ValueError("at least one Sentinel is needed")
    return sentinel_count // 2 + 1
