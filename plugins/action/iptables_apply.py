# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``hardened.stack.iptables_apply``: apply, reconnect, confirm.

1. Run the module (``phase=apply``): it arms a rollback timer on the host, then applies.
2. Reset the connection (a new SSH connection, not the ControlPersist master that is still
   ESTABLISHED) and run the module again with ``phase=confirm``: this disarms the timer and
   persists the ruleset.
3. If the host cannot be reached to confirm, wait until the timer has restored the previous
   ruleset, reconnect to prove the host is reachable again, and fail with the reason.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

# Seconds after the rollback deadline before the controller checks that the host is back.
GRACE = 5


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def _module(self, args, task_vars):
        return self._execute_module(module_name="hardened.stack.iptables_apply", module_args=args,
                                    task_vars=task_vars)

    def _reconnect(self):
        try:
            self._connection.reset()
        except Exception as exc:  # pylint: disable=broad-except
            # Not every connection plugin can reset; the next command opens what it can.
            self._display.vvv("iptables_apply: connection reset failed: %s" % exc)

    def _after_deadline(self, result, started, timeout, error):
        """The host could not be reached to confirm: wait for its rollback, prove it is back."""
        reason = error.strip().splitlines()[-1] if error.strip() else "connection failure"
        time.sleep(max(0.0, started + timeout + GRACE - time.time()))
        self._reconnect()
        try:
            self._low_level_execute_command("true", sudoable=False)
            back = "the host is reachable again"
        except AnsibleConnectionFailure as exc:
            back = "the host is STILL unreachable after the rollback deadline: %s" % exc
        result.update(
            failed=True, changed=True, confirmed=False, rolled_back=True,
            msg="the new ruleset cut the management connection (%s); it was not confirmed and the "
                "host restored the previous ruleset after %ds; %s. Check firewall_ssh_allow and "
                "the rules that admit the controller." % (reason, timeout, back))
        return result

    def run(self, tmp=None, task_vars=None):
        if task_vars is None:
            task_vars = {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        if args.get("phase", "apply") != "apply" or args.get("rollback_id"):
            result.update(failed=True, msg="phase and rollback_id are set by the action plugin only")
            return result
        timeout = int(args.get("rollback_timeout", 30) or 0)

        started = time.time()
        try:
            applied = self._module(args, task_vars)
        except AnsibleConnectionFailure as exc:
            # The new ruleset dropped the connection before the reply came back.
            if not timeout or self._play_context.check_mode:
                raise
            return self._after_deadline(result, started, timeout, str(exc))
        result.update(applied)
        rid = applied.get("rollback_id")
        if applied.get("failed") or not rid:
            return result
        confirm_args = dict(args, phase="confirm", rollback_id=rid)
        self._reconnect()
        try:
            confirmed = self._module(confirm_args, task_vars)
        except AnsibleConnectionFailure as exc:
            return self._after_deadline(result, started, timeout, str(exc))
        if confirmed.get("failed"):
            result.update(failed=True, confirmed=False, rolled_back=confirmed.get("rolled_back", False),
                          msg="%s (the reply to the apply took %.0fs)"
                              % (confirmed.get("msg"), time.time() - started))
            return result
        result.update(confirmed=True, persisted=confirmed.get("persisted", result.get("persisted")))
        return result
