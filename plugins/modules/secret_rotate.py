#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: secret_rotate
short_description: Replace a generated secret on the controller with a new value
version_added: "0.1.0"
description:
  - Writes a new value for one secret of the secrets contract (C(plugins/module_utils/secrets.py),
    C(docs/secrets.md)) under O(secrets_dir) on the B(controller), atomically (a complete
    temporary file renamed over the old one, mode 0600).
  - The old value is not kept on the controller. The roles learn what is deployed from the
    hosts and withdraw it only after every consumer switched (C(playbooks/rotate_secrets.yml)).
  - Runs on the controller only (an action plugin); the task's host is not contacted.
  - In check mode nothing is written and the task reports a change.
  - Secrets given as vault variables are not stored here; change the vault and run
    C(rotate_secrets.yml) without rotating the file.
  - With C(hardened_stack_controller_state=external) (docs/secrets.md) the task fails unless
    O(value) is given. The secrets directory of an external state lives for one job, so a value
    generated here would be deployed and then lost. The message names the variable to set.
options:
  kind:
    description:
      - The kind of secret, one of V(postgresql), V(patroni_api), V(redis), V(monitoring),
        V(backup_user). V(backup_cipher) is refused, a pgBackRest repository keeps the passphrase
        it was created with.
    type: str
    required: true
  cluster:
    description:
      - The PostgreSQL cluster or Redis replication set, for V(postgresql), V(patroni_api), V(redis).
    type: str
  user:
    description:
      - The role or ACL user, for V(postgresql), V(redis), V(backup_user).
    type: str
  stanza:
    description:
      - The pgBackRest stanza, for V(backup_user).
    type: str
  value:
    description:
      - The new value. Default, a new one generated with the kind's rule (letters and digits,
        32 characters).
    type: str
  secrets_dir:
    description:
      - The directory on the controller. Default, the variable C(hardened_stack_secrets_dir),
        else C(~/.hardened-stack/secrets).
    type: str
author:
  - hardened.stack contributors (@hardened-stack)
notes:
  - Use O(ignore:no_log=true) on the task; the value is never returned.
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
    details: Everything runs in the action plugin, on the controller; the module only refuses to run on a host.
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
"""

EXAMPLES = r"""
- name: New password for the Redis app user (the redis role deploys it next)
  hardened.stack.secret_rotate:
    kind: redis
    cluster: "{{ redis_cluster_name }}"
    user: app
  run_once: true
  no_log: true
"""

RETURN = r"""
path:
  description: The file written on the controller.
  returned: always
  type: str
  sample: /home/ops/.hardened-stack/secrets/redis/main/app
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kind=dict(type="str", required=True),
            cluster=dict(type="str"),
            user=dict(type="str"),
            stanza=dict(type="str"),
            value=dict(type="str", no_log=True),
            secrets_dir=dict(type="str", no_log=False),  # a directory, not a secret
        ),
        supports_check_mode=True,
    )
    module.fail_json(msg="hardened.stack.secret_rotate runs on the controller (its action plugin); "
                         "it was started as a module on a host")


if __name__ == "__main__":
    main()
