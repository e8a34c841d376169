#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: redis_sentinel
short_description: Query a Redis Sentinel, check its quorum, fail over, reset, tune a master
version_added: "0.1.0"
description:
  - Talks to one Redis (or Valkey) Sentinel about one monitored master.
  - O(action=info) (the default) reports the current master address, its replicas, the other
    Sentinels and the result of C(SENTINEL CKQUORUM); it never changes anything.
  - O(action=set) applies O(settings) with C(SENTINEL SET), only those whose value differs
    from what C(SENTINEL MASTER) reports (idempotent, with diff).
  - O(action=failover) asks for a failover (C(SENTINEL FAILOVER)) and waits until the
    Sentinel reports a new master address. O(action=reset) sends C(SENTINEL RESET).
  - The module uses a small RESP client shipped in the collection's module_utils instead of
    the C(redis) Python library, so the managed host needs nothing beyond Python. Debian 12
    and 13 ship different major versions of python3-redis (4.3 and 6.1), and the module only
    needs a few plain commands over one socket (optionally TLS), with a timeout and no retries.
author:
  - hardened.stack contributors (@hardened-stack)
options:
  login_host:
    description: Address of the Sentinel.
  login_port:
    description: Port of the Sentinel.
    default: 26379
  login_user:
    description: ACL user to authenticate as (omit for password-only C(AUTH)).
    default: null
  login_password:
    description: Password of O(login_user) (or the Sentinel's C(requirepass)).
    type: str
  login_passwords:
    description:
      - Passwords of O(login_user), tried in this order; the first the Sentinel accepts is used (a new
        password first, the one the Sentinel may still run with next). Excludes O(login_password).
  connect_timeout:
    default: 3.0
  tls_ca_file:
    description: CA bundle that signed the Sentinel's certificate.
  tls_cert_file:
    description: Client certificate (when the Sentinel asks for one, C(tls-auth-clients yes)).
  master_name:
    description: Name of the master as the Sentinel monitors it.
    type: str
    required: true
  action:
    description:
      - V(info) reports; V(set) applies O(settings); V(failover) forces a failover;
        V(reset) sends C(SENTINEL RESET).
    type: str
    choices: [info, set, failover, reset]
    default: info
  settings:
    description:
      - For O(action=set) the master's Sentinel settings, for example
        C(down-after-milliseconds), C(failover-timeout), C(parallel-syncs), C(quorum),
        C(master-reboot-down-after-period) (underscores are accepted for dashes).
      - C(auth-user), C(auth-pass) and the script settings are not reported back by Sentinel;
        they are sent only when O(update_write_only=true).
    type: dict
    default: {}
  update_write_only:
    description:
      - Send the write-only settings (C(auth-pass) ...) even though they cannot be compared. Not needed for
        C(auth-pass) and C(auth-user) when O(config_file) is given.
    type: bool
    default: false
  sentinel_config:
    description:
      - For O(action=set), Sentinel's own settings, compared with C(SENTINEL CONFIG GET) and changed with
        C(SENTINEL CONFIG SET) one at a time (Redis 7.0 takes one per call), namely C(sentinel-user) and
        C(sentinel-pass) (what this Sentinel logs in with at the other Sentinels; changing them drops those
        links, which reconnect with the new values), C(announce-ip), C(announce-port), C(resolve-hostnames),
        C(announce-hostnames).
    type: dict
    default: {}
  config_file:
    description:
      - The Sentinel's configuration file on the managed host. Sentinel does not report C(auth-pass) and
        C(auth-user), but it rewrites this file on every change; with O(config_file) they are compared with
        the file (so sent only when they differ), and after a change the module checks that the file holds
        the new values (no stale password stays on disk).
    type: path
  allow_unknown_master:
    description:
      - When the Sentinel cannot be reached or does not monitor O(master_name), return
        RV(monitored=false) instead of failing (O(action=info) only). Used to discover the
        master at run time before the first bootstrap.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds O(action=failover) waits for a new master address, and O(action=set) for the links to the
        master after a new C(auth-pass) or C(auth-user).
    type: int
    default: 60
extends_documentation_fragment:
  - hardened.stack.redis_login
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: In check mode V(set), V(failover) and V(reset) report what they would do.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: O(action=set) returns the settings before and after.
notes:
  - Point the module at one Sentinel; run it on several hosts to compare their views.
  - C(SENTINEL SET) changes one Sentinel only; apply the same settings to every Sentinel.
seealso:
  - name: Redis Sentinel documentation
    description: Commands, configuration and failover semantics.
    link: https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/
"""

EXAMPLES = r"""
- name: Where is the master now
  hardened.stack.redis_sentinel:
    master_name: main
    login_user: sentinel
    login_password: "{{ redis_sentinel_password }}"
  register: sentinel
  no_log: true

- name: Tune failure detection (idempotent)
  hardened.stack.redis_sentinel:
    master_name: main
    action: set
    settings:
      down-after-milliseconds: 5000
      failover-timeout: 60000
      parallel-syncs: 1
    login_user: sentinel
    login_password: "{{ redis_sentinel_password }}"
  no_log: true

- name: New passwords for the master and the other Sentinels, compared with sentinel.conf (no restart)
  hardened.stack.redis_sentinel:
    master_name: main
    action: set
    config_file: /etc/redis/sentinel.conf
    settings:
      auth-user: sentinel
      auth-pass: "{{ redis_sentinel_password }}"
    sentinel_config:
      sentinel-user: sentinel
      sentinel-pass: "{{ redis_sentinel_password }}"
    login_user: sentinel
    login_password: "{{ redis_sentinel_password }}"
  no_log: true

- name: Move the master to a replica and wait for it
  hardened.stack.redis_sentinel:
    master_name: main
    action: failover
    login_user: sentinel
    login_password: "{{ redis_sentinel_password }}"
  run_once: true
  no_log: true
"""

RETURN = r"""
monitored:
  description: Whether the Sentinel was reached and monitors O(master_name).
  returned: always
  type: bool
master_host:
  description: Address of the current master as this Sentinel sees it.
  returned: when monitored
  type: str
  sample: 172.30.26.11
master_port:
  description: Port of the current master.
  returned: when monitored
  type: int
  sample: 6379
master:
  description: The master's entry from C(SENTINEL MASTER) (flags as a list, numbers as int).
  returned: when monitored
  type: dict
replicas:
  description: Replicas known to this Sentinel.
  returned: when monitored
  type: list
  elements: dict
  sample: [{ip: 172.30.26.12, port: 6379, flags: [slave], down: false, master_link_status: ok, master_host: 172.30.26.11}]
sentinels:
  description: The other Sentinels known to this Sentinel.
  returned: when monitored
  type: list
  elements: dict
ckquorum:
  description: Result of C(SENTINEL CKQUORUM).
  returned: when monitored
  type: dict
  sample: {ok: true, message: OK 3 usable Sentinels. Quorum and failover authorization can be reached, usable_sentinels: 3}
previous_master:
  description: For O(action=failover), the master address before the failover.
  returned: when O(action=failover)
  type: str
changes:
  description: For O(action=set), the settings sent (names only), O(sentinel_config) ones included.
  returned: when O(action=set)
  type: list
  elements: str
error:
  description: Why the Sentinel did not answer, with O(allow_unknown_master=true).
  returned: when not monitored
  type: str
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hardened.stack.plugins.module_utils.redis_auth import (
    ConfigSyntaxError,
    login,
    login_argument_spec,
    sentinel_conf_values,
    without_secrets,
)
from ansible_collections.hardened.stack.plugins.module_utils.resp import (
    RespClient,
    RespConnectionError,
    RespError,
    RespProtocolError,
    pairs_to_dict,
)
from ansible_collections.hardened.stack.plugins.module_utils.redis_sentinel import (
    MASK,
    SECRET_SETTINGS,
    SentinelSettingsError,
    normalise_sentinel_config,
    normalise_settings,
    parse_ckquorum,
    parse_entries,
    parse_entry,
    settings_diff,
    summarise_replica,
    summarise_sentinel,
)


def master_address(client, name):
    reply = client.execute("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
    if not reply:
        return None, None
    return reply[0], int(reply[1])


def describe(client, name):
    master = parse_entry(client.execute("SENTINEL", "MASTER", name))
    host, port = master_address(client, name)
    try:
        replicas = client.execute("SENTINEL", "REPLICAS", name)
    except RespError:  # Sentinel older than 5.0
        replicas = client.execute("SENTINEL", "SLAVES", name)
    sentinels = client.execute("SENTINEL", "SENTINELS", name)
    try:
        ck = parse_ckquorum(True, client.execute("SENTINEL", "CKQUORUM", name))
    except RespError as exc:
        ck = parse_ckquorum(False, str(exc))
    return {
        "monitored": True,
        "master_host": host,
        "master_port": port,
        "master": master,
        "replicas": [summarise_replica(r) for r in parse_entries(replicas)],
        "sentinels": [summarise_sentinel(s) for s in parse_entries(sentinels)],
        "ckquorum": ck,
    }


def reconnected(client, name, timeout):
    """SENTINEL MASTER once the links are up again (or at ``timeout``; the caller checks flags)."""
    deadline = time.time() + timeout
    while True:
        master = parse_entry(client.execute("SENTINEL", "MASTER", name))
        if "disconnected" not in master.get("flags", []) or time.time() > deadline:
            return master
        time.sleep(0.1)


def read_credentials(module, name):
    """auth-pass/auth-user of master ``name`` and sentinel-user/sentinel-pass from the file."""
    path = module.params["config_file"]
    try:
        with open(path, "rb") as handle:
            return sentinel_conf_values(handle.read().decode("utf-8", "surrogateescape"), name)
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot read %s: %s" % (path, exc.strerror))
    except ConfigSyntaxError as exc:
        module.fail_json(msg="%s: %s" % (path, exc))


def check_file(module, name, wanted, wanted_global, result):
    """After a change: the Sentinel rewrote its file with the wanted credentials."""
    on_disk = read_credentials(module, name)
    stale = sorted(key for key, value in list(wanted.items()) + list(wanted_global.items())
                   if key in on_disk and on_disk[key] != value)
    if stale:
        module.fail_json(msg="Sentinel accepted the change but %s still holds other values for %s"
                         % (module.params["config_file"], ", ".join(stale)), **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            login_argument_spec(
                login_port=dict(type="int", default=26379),
                login_user=dict(type="str"),
                login_password=dict(type="str", no_log=True),
                login_passwords=dict(type="list", elements="str", no_log=True),
                connect_timeout=dict(type="float", default=3.0),
            ),
            master_name=dict(type="str", required=True),
            action=dict(type="str", default="info", choices=["info", "set", "failover", "reset"]),
            settings=dict(type="dict", default={}),
            update_write_only=dict(type="bool", default=False),
            sentinel_config=dict(type="dict", default={}),
            config_file=dict(type="path"),
            allow_unknown_master=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
        mutually_exclusive=[("login_password", "login_passwords")],
    )
    p = module.params
    name = p["master_name"]
    action = p["action"]
    try:
        wanted = normalise_settings(p["settings"])
        wanted_global = normalise_sentinel_config(p["sentinel_config"])
    except SentinelSettingsError as exc:
        module.fail_json(msg=str(exc))
    if (wanted or wanted_global) and action != "set":
        module.fail_json(msg="settings and sentinel_config are only used with action=set")
    secrets = [p["login_password"] or ""] + list(p["login_passwords"] or [])
    for secret in SECRET_SETTINGS:
        for given in (wanted, wanted_global):
            if given.get(secret):
                module.no_log_values.add(given[secret])
                secrets.append(given[secret])

    client = RespClient(host=p["login_host"], port=p["login_port"], username=p["login_user"],
                        password=p["login_password"], timeout=p["connect_timeout"], tls=p["tls"],
                        ca_file=p["tls_ca_file"], cert_file=p["tls_cert_file"], key_file=p["tls_key_file"])
    result = {"changed": False, "monitored": False}
    try:
        try:
            client.connect()
            if p["login_passwords"]:
                login(client, p["login_user"], p["login_passwords"])
            result.update(describe(client, name))
        except (RespConnectionError, RespError, RespProtocolError) as exc:
            # Before the first bootstrap the Sentinel may be absent, run Debian's default
            # configuration (other master name, no ACL user) or be starting up.
            if action == "info" and p["allow_unknown_master"]:
                result["error"] = without_secrets(exc, secrets)
                module.exit_json(**result)
            raise

        if action == "set":
            known = read_credentials(module, name) if p["config_file"] else {}
            changes, before, after = settings_diff(result["master"], wanted, p["update_write_only"], known)
            global_changes = []
            for key in sorted(wanted_global):
                have = pairs_to_dict(client.execute("SENTINEL", "CONFIG", "GET", key)).get(key)
                if have is None:
                    module.fail_json(msg="this Sentinel does not report '%s' (SENTINEL CONFIG GET)" % key, **result)
                have = u"%s" % have
                if have != wanted_global[key]:
                    global_changes.append((key, wanted_global[key]))
                    hidden = key in SECRET_SETTINGS
                    before[key] = MASK if hidden and have else have
                    after[key] = (MASK + " (another value)") if hidden else wanted_global[key]
            result["changes"] = [c[0] for c in changes + global_changes]
            if changes or global_changes:
                result["changed"] = True
                result["diff"] = {"before": before, "after": after,
                                  "before_header": "sentinel %s" % name, "after_header": "sentinel %s" % name}
                if not module.check_mode:
                    args = []
                    for key, value in changes:
                        args += [key, value]
                    if args:
                        client.execute("SENTINEL", "SET", name, *args)
                    for key, value in global_changes:
                        client.execute("SENTINEL", "CONFIG", "SET", key, value)
                    result["master"] = parse_entry(client.execute("SENTINEL", "MASTER", name))
                    if any(key in ("auth-pass", "auth-user") for key, dummy in changes):
                        # SENTINEL SET auth-pass/auth-user closed the links to the master:
                        # report the master once Sentinel is connected again.
                        result["master"] = reconnected(client, name, min(p["wait_timeout"], 15))
                    if p["config_file"]:
                        check_file(module, name, wanted, wanted_global, result)

        elif action == "reset":
            result["changed"] = True
            if not module.check_mode:
                result["reset_count"] = client.execute("SENTINEL", "RESET", name)

        elif action == "failover":
            old = "%s:%s" % (result["master_host"], result["master_port"])
            result["previous_master"] = old
            result["changed"] = True
            if not module.check_mode:
                client.execute("SENTINEL", "FAILOVER", name)
                deadline = time.time() + p["wait_timeout"]
                while True:
                    host, port = master_address(client, name)
                    if host and "%s:%s" % (host, port) != old:
                        break
                    if time.time() > deadline:
                        module.fail_json(msg="Sentinel accepted the failover but still reports %s after %ss"
                                         % (old, p["wait_timeout"]), **result)
                    time.sleep(0.5)
                result.update(describe(client, name))
    except RespConnectionError as exc:
        module.fail_json(msg=without_secrets(exc, secrets), **result)
    except (RespError, RespProtocolError) as exc:
        module.fail_json(msg="Sentinel %s:%s: %s" % (p["login_host"], p["login_port"], without_secrets(exc, secrets)),
                         **result)
    finally:
        client.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
