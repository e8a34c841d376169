#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: redis_acl
short_description: Keep a running Redis, Valkey or Sentinel's ACL users equal to its ACL file, without ACL LOAD
version_added: "0.1.0"
description:
  - Reads an ACL file (C(aclfile)) on the managed host and, with O(sync=true), makes the users of the
    running server or Sentinel equal to it with C(ACL SETUSER <user> reset <rules>), one user at a time,
    and C(ACL DELUSER) for users the file no longer names.
  - C(ACL LOAD) would do the same in one command, but it drops every authenticated connection (replicas,
    Sentinels, applications; Redis 7.0 frees the whole user set). C(ACL SETUSER) changes a user in one
    step and disconnects nobody, so passwords can be added and withdrawn while the server serves.
  - A user is re-applied when its passwords or its on/off state differ from the file, or every user when
    O(force=true) (the caller just rewrote the file, so other rules may have changed too).
  - With O(sync=false) the module only reads the file and returns the password hashes of each user
    (RV(passwords)); nothing is contacted. Rotation uses this to keep accepting the passwords deployed
    before a change.
  - The module logs in with the first of O(login_passwords) the instance accepts, so a caller can offer
    the new admin password and, as a fallback, the one the instance still runs with.
author:
  - hardened.stack contributors (@hardened-stack)
options:
  path:
    description: The ACL file on the managed host.
    type: path
    required: true
  sync:
    description:
      - V(true) makes the running instance's users equal to O(path); V(false) only reads O(path).
    type: bool
    default: true
  force:
    description: Re-apply every user of the file, not only those whose passwords or on/off state differ.
    type: bool
    default: false
  login_user:
    description: ACL user to log in as (it needs the C(ACL) command).
  login_passwords:
    default: []
  allow_unreachable:
    description:
      - When nothing answers on O(login_host):O(login_port), return RV(reachable=false) instead of failing
        (the instance reads the file when it starts).
    type: bool
    default: false
  allow_unmanaged:
    description:
      - When no password is accepted but the instance answers without any (it runs a configuration without
        ACL users, such as a package's default before the first bootstrap), return RV(managed=false)
        instead of failing.
    type: bool
    default: false
extends_documentation_fragment:
  - hardened.stack.redis_login
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
notes:
  - Connections authenticated before a password is withdrawn stay authenticated (Redis checks a password
    only at C(AUTH)); new logins with it are refused.
  - Error messages from the instance are returned with passwords and hashes masked.
seealso:
  - name: ACL
    description: Redis ACL rules, C(ACL SETUSER), ACL files.
    link: https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/
"""

EXAMPLES = r"""
- name: Hashes deployed before this run
  hardened.stack.redis_acl:
    path: /etc/redis/users.acl
    sync: false
  register: deployed
  no_log: true

- name: Apply the rewritten file to the running server (no ACL LOAD, nobody disconnected)
  hardened.stack.redis_acl:
    path: /etc/redis/users.acl
    force: "{{ acl_file.changed }}"
    login_user: admin
    login_passwords: ["{{ new_admin_password }}", "{{ deployed_admin_password }}"]
  no_log: true
"""

RETURN = r"""
exists:
  description: Whether O(path) exists.
  returned: always
  type: bool
passwords:
  description: The password hashes (hex SHA-256) of each user of O(path).
  returned: when O(sync=false)
  type: dict
  sample: {admin: ["5e88...42d8"], app: ["1150...c437", "5e88...42d8"]}
reachable:
  description: Whether the instance answered.
  returned: when O(sync=true)
  type: bool
managed:
  description: Whether one of O(login_passwords) was accepted (false with O(allow_unmanaged)).
  returned: when O(sync=true)
  type: bool
login_index:
  description: Index in O(login_passwords) of the password that was accepted.
  returned: when logged in
  type: int
applied:
  description: Users re-applied from the file (C(ACL SETUSER ... reset ...)).
  returned: when O(sync=true)
  type: list
  elements: str
deleted:
  description: Users the instance had and the file does not name (C(ACL DELUSER)).
  returned: when O(sync=true)
  type: list
  elements: str
first_login_accepted:
  description: Whether the first of O(login_passwords) logs in after the sync (false in check mode when it does not yet).
  returned: when logged in
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hardened.stack.plugins.module_utils.redis_auth import (
    ConfigSyntaxError,
    connect,
    getuser_state,
    login,
    login_argument_spec,
    parse_acl_file,
    rule_passwords,
    without_secrets,
)
from ansible_collections.hardened.stack.plugins.module_utils.resp import (
    RespConnectionError,
    RespError,
    RespProtocolError,
)


def accepts(p, password):
    """Whether a fresh connection logs in with ``password``."""
    client = connect(p)
    try:
        login(client, p["login_user"], [password])
        return True
    except RespError:
        return False
    finally:
        client.close()


def plan(client, users):
    """(to apply, to delete): users whose live passwords/state differ from the file, and users
    the instance has that the file does not name."""
    to_apply = []
    for name, rules in users:
        live = getuser_state(client.execute("ACL", "GETUSER", name))
        want_hashes, want_on = rule_passwords(rules)
        if live is None or sorted(set(live[0])) != sorted(set(want_hashes)) or live[1] != want_on:
            to_apply.append(name)
    named = set(name for name, dummy in users)
    to_delete = sorted(u for u in client.execute("ACL", "USERS") if u not in named and u != "default")
    return to_apply, to_delete


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            sync=dict(type="bool", default=True),
            force=dict(type="bool", default=False),
            allow_unreachable=dict(type="bool", default=False),
            allow_unmanaged=dict(type="bool", default=False),
            **login_argument_spec()
        ),
        supports_check_mode=True,
    )
    p = module.params
    secrets = [s for s in p["login_passwords"] if s]
    result = {"changed": False, "exists": os.path.exists(p["path"])}

    text = ""
    if result["exists"]:
        try:
            with open(p["path"], "rb") as handle:
                text = handle.read().decode("utf-8", "surrogateescape")
            users = parse_acl_file(text)
        except (IOError, OSError) as exc:
            module.fail_json(msg="cannot read %s: %s" % (p["path"], exc.strerror), **result)
        except ConfigSyntaxError as exc:
            module.fail_json(msg="%s: %s" % (p["path"], exc), **result)
    else:
        users = []

    if not p["sync"]:
        result["passwords"] = dict((name, rule_passwords(rules)[0]) for name, rules in users)
        module.exit_json(**result)

    if not result["exists"]:
        module.fail_json(msg="%s does not exist: nothing to apply" % p["path"], **result)
    if not secrets:
        module.fail_json(msg="login_passwords is empty", **result)

    result.update(reachable=False, managed=False, applied=[], deleted=[])
    where = "%s:%s" % (p["login_host"], p["login_port"])
    try:
        client = connect(p)
    except RespConnectionError as exc:
        if p["allow_unreachable"]:
            result["error"] = str(exc)
            module.exit_json(**result)
        module.fail_json(msg=without_secrets(exc, secrets), **result)
    try:
        result["reachable"] = True
        try:
            result["login_index"] = login(client, p["login_user"], p["login_passwords"])
        except RespError as exc:
            try:
                unmanaged = client.execute("PING") == "PONG"
            except RespError:
                unmanaged = False
            if unmanaged and p["allow_unmanaged"]:
                result["error"] = "%s answers without a password: it does not run with ACL users yet" % where
                module.exit_json(**result)
            module.fail_json(msg="%s: none of the %d password(s) given for %s is accepted (%s)"
                             % (where, len(secrets), p["login_user"], without_secrets(exc, secrets)), **result)
        result["managed"] = True

        to_apply, to_delete = plan(client, users)
        if p["force"]:
            to_apply = [name for name, dummy in users]
        result["applied"], result["deleted"] = to_apply, to_delete
        result["changed"] = bool(to_apply or to_delete)
        if result["changed"] and not module.check_mode:
            rules_of = dict(users)
            # the login user last: its own rules may be what changes
            for name in sorted(to_apply, key=lambda n: n == p["login_user"]):
                try:
                    client.execute("ACL", "SETUSER", name, "reset", *rules_of[name])
                except RespError as exc:
                    module.fail_json(msg="%s: ACL SETUSER %s (from %s) refused: %s"
                                     % (where, name, p["path"], without_secrets(exc, secrets)), **result)
            for name in to_delete:
                client.execute("ACL", "DELUSER", name)
        result["first_login_accepted"] = accepts(p, p["login_passwords"][0])
    except RespConnectionError as exc:
        module.fail_json(msg=without_secrets(exc, secrets), **result)
    except (RespError, RespProtocolError) as exc:
        module.fail_json(msg="%s: %s" % (where, without_secrets(exc, secrets)), **result)
    finally:
        client.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
