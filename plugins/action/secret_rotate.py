# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``hardened.stack.secret_rotate``: replace a secret file on the controller
(module_utils/secrets.py). The host is not contacted."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.hardened.stack.plugins.module_utils import secrets

_ARGS = frozenset(("kind", "cluster", "user", "stanza", "value", "secrets_dir"))


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = _ARGS

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        kind = args.get("kind")
        if kind == "backup_cipher":
            result.update(failed=True, msg="secret_rotate: the pgBackRest repository passphrase cannot be rotated: "
                                           "an existing repository keeps the passphrase it was created with")
            return result
        directory = args.get("secrets_dir") or self._templar.template(task_vars.get(secrets.DIR_VAR) or "") or None
        params = dict((name, args.get(name)) for name in ("cluster", "user", "stanza"))
        try:
            state = secrets.controller_state(self._templar.template(task_vars.get(secrets.STATE_VAR) or ""))
            if state == "external" and not args.get("value"):
                # The secrets directory of an external state lives for one job (docs/secrets.md): a
                # value minted here would be deployed and then lost with the job.
                raise secrets.SecretError(
                    "%s is external: a new value for %s is not generated on this controller. Give the new "
                    "value in the vault or credential (%s) and run the rotation again"
                    % (secrets.STATE_VAR, secrets.relpath(kind, **params),
                       secrets.replacing_variable(kind, **params)))
            target = secrets.path(kind, directory, **params)
            if not self._task.check_mode:
                secrets.replace(kind, args.get("value"), directory, **params)
        except (secrets.SecretError, OSError) as exc:
            result.update(failed=True, msg="secret_rotate: %s" % exc)
            return result
        result.update(changed=True, path=target)
        return result
