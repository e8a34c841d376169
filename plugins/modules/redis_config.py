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
  login_user:
    description: ACL user to log in as (it needs C(CONFIG)).
  login_passwords:
    required: true
extends_documentation_fragment:
  - hardened.stack.redis_login
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
from ansible_collections.hardened.stack.plugins.module_utils.redis_auth import (
    connect,
    login,
    login_argument_spec,
    without_secrets,
)
from ansible_collections.hardened.stack.plugins.module_utils.resp import (
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
            **login_argument_spec(login_passwords=dict(type="list", elements="str", required=True, no_log=True))
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
    client = None
    try:
        client = connect(p)
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
        if client is not None:
            client.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
