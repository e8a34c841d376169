#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: redis_config
short_description: Keep runtime settings of a Redis or Valkey server (CONFIG GET, CONFIG SET, CONFIG REWRITE)
version_added: "0.1.0"
description:
  - Reads O(settings) with C(CONFIG GET), sets those whose value differs in one C(CONFIG SET) (all or
    none) and, with O(rewrite=true), persists them with C(CONFIG REWRITE).
  - Values are compared as the server reports them (C(CONFIG GET maxmemory) is a number of bytes).
  - Secret settings (O(secret_settings), C(masterauth) by default) are compared like the others but never
    returned or shown in the diff. Changing C(masterauth) does not drop a replica's link; the replica
    uses the new value the next time it connects to its master.
  - The module logs in with the first of O(login_passwords) the server accepts.
author:
  - hardened.stack contributors (@hardened-stack)
options:
  settings:
    description: Setting name -> value (as C(CONFIG SET) takes it).
    type: dict
    required: true
  secret_settings:
    description: Settings whose values are secrets.
    type: list
    elements: str
    default: [masterauth, primaryauth, requirepass, tls-key-file-pass, tls-client-key-file-pass]
  rewrite:
    description: Run C(CONFIG REWRITE) after a change, so the server starts with the new values.
    type: bool
    default: true
  login_host:
    description: Address of the server.
    type: str
    default: 127.0.0.1
  login_port:
    description: Port of the server.
    type: int
    default: 6379
  login_user:
    description: ACL user to log in as (it needs C(CONFIG)).
    type: str
    default: admin
  login_passwords:
    description: Passwords of O(login_user), tried in this order; the first accepted is used.
    type: list
    elements: str
    required: true
  connect_timeout:
    description: Seconds to wait for the connection and for each reply.
    type: float
    default: 5.0
  tls:
    description: Connect over TLS.
    type: bool
    default: false
  tls_ca_file:
    description: CA bundle that signed the server's certificate.
    type: path
  tls_cert_file:
    description: Client certificate (when the server asks for one).
    type: path
  tls_key_file:
    description: Key of O(tls_cert_file).
    type: path
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Secret settings appear as C(********) on both sides.
seealso:
  - name: CONFIG SET
    description: Which settings can be changed at run time.
    link: https://redis.io/docs/latest/commands/config-set/
"""

EXAMPLES = r"""
- name: New replication password on a replica (its link stays up)
  hardened.stack.redis_config:
    settings:
      masteruser: replication
      masterauth: "{{ redis_replication_password }}"
    login_passwords: ["{{ redis_admin_password }}"]
  no_log: true
"""

RETURN = r"""
changes:
  description: Names of the settings that were (or in check mode would be) set.
  returned: always
  type: list
  elements: str
login_index:
  description: Index in O(login_passwords) of the password that was accepted.
  returned: success
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hardened.stack.plugins.module_utils.redis_auth import login, without_secrets
from ansible_collections.hardened.stack.plugins.module_utils.resp import (
    RespClient,
    RespConnectionError,
    RespError,
    RespProtocolError,
    pairs_to_dict,
)

MASK = "********"


def as_text(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    return u"%s" % value


def main():
    module = AnsibleModule(
        argument_spec=dict(
            settings=dict(type="dict", required=True),
            secret_settings=dict(type="list", elements="str", no_log=False,
                                 default=["masterauth", "primaryauth", "requirepass", "tls-key-file-pass",
                                          "tls-client-key-file-pass"]),
            rewrite=dict(type="bool", default=True),
            login_host=dict(type="str", default="127.0.0.1"),
            login_port=dict(type="int", default=6379),
            login_user=dict(type="str", default="admin"),
            login_passwords=dict(type="list", elements="str", required=True, no_log=True),
            connect_timeout=dict(type="float", default=5.0),
            tls=dict(type="bool", default=False),
            tls_ca_file=dict(type="path"),
            tls_cert_file=dict(type="path"),
            tls_key_file=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    wanted = dict((str(k).lower(), as_text(v)) for k, v in p["settings"].items())
    hidden = set(s.lower() for s in p["secret_settings"])
    secrets = [s for s in p["login_passwords"] if s] + [v for k, v in wanted.items() if k in hidden and v]
    for value in secrets:
        module.no_log_values.add(value)
    result = {"changed": False, "changes": []}
    where = "%s:%s" % (p["login_host"], p["login_port"])
    client = RespClient(host=p["login_host"], port=p["login_port"], timeout=p["connect_timeout"], tls=p["tls"],
                        ca_file=p["tls_ca_file"], cert_file=p["tls_cert_file"], key_file=p["tls_key_file"])
    try:
        client.connect()
        result["login_index"] = login(client, p["login_user"], p["login_passwords"])
        live = pairs_to_dict(client.execute("CONFIG", "GET", *sorted(wanted))) if wanted else {}
        unknown = sorted(set(wanted) - set(live))
        if unknown:
            module.fail_json(msg="%s does not know the setting(s) %s" % (where, ", ".join(unknown)), **result)
        changes = [k for k in sorted(wanted) if live[k] != wanted[k]]
        result["changes"] = changes
        if changes:
            result["changed"] = True
            result["diff"] = {
                "before": "".join("%s %s\n" % (k, MASK if k in hidden else live[k]) for k in changes),
                "after": "".join("%s %s\n" % (k, MASK if k in hidden else wanted[k]) for k in changes),
                "before_header": "%s (running)" % where, "after_header": "%s (wanted)" % where,
            }
            if not module.check_mode:
                args = []
                for key in changes:
                    args += [key, wanted[key]]
                client.execute("CONFIG", "SET", *args)
                if p["rewrite"]:
                    client.execute("CONFIG", "REWRITE")
    except (RespConnectionError, RespError, RespProtocolError) as exc:
        module.fail_json(msg="%s: %s" % (where, without_secrets(exc, secrets)), **result)
    finally:
        client.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
