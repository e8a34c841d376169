# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which packages of an apt task still need apt, from the package facts read once per run.

Every ``ansible.builtin.apt`` call opens the apt cache on the host, even when there is nothing
to do: on a rerun that is most of an install task's time. ``roles/_common`` reads the installed
packages once per host and run (``ansible.builtin.package_facts``), and each install runs only
when this filter names a package:

    - name: Install iptables
      ansible.builtin.apt:
        name: "{{ _firewall_apt_packages }}"
        state: present
      vars:
        _firewall_apt_packages: [iptables]
      when: _firewall_apt_packages | hardened.stack.packages_pending(ansible_facts) | length > 0
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# A Debian package name (Debian Policy 5.6.1): lower case letters, digits, + - and ., at least
# two characters, starting with a letter or digit. Anything else apt is given (name=version,
# name>=version, name:arch, a glob, a .deb) is apt's to resolve.
_PLAIN_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")

_STATES = ("present", "absent")


def packages_pending(names, facts, state="present"):
    """The packages of ``names`` that apt still has to act on for ``state``.

    ``names`` is what the apt task's ``name`` gets (a list, or a comma-separated string);
    ``facts`` is the host's ``ansible_facts``, whose ``packages`` (``ansible.builtin.package_facts``)
    lists the installed packages. ``state`` is ``present`` (the names not installed) or ``absent``
    (the names installed).

    Whatever the facts cannot answer is pending, so apt decides as it would without the check:
    every name when the host has no package facts (not read in this run: ``_common`` did not
    run, e.g. ``--tags`` of a role's sub-part), and every name that is not a plain package name
    (a version, an architecture, a glob). The facts may be older than the run's own changes:
    a package installed earlier in the run is still listed missing (apt then finds it
    installed), and a task that removes packages must read the facts again after a change.
    An empty result means the task can be skipped.
    """
    if state not in _STATES:
        raise AnsibleFilterError("packages_pending: state must be one of %s, not %r" % (", ".join(_STATES), state))
    if names is None:
        names = []
    elif isinstance(names, str):
        names = names.split(",")
    elif not isinstance(names, (list, tuple)):
        raise AnsibleFilterError("packages_pending: expected a list of package names, got %s" % type(names).__name__)
    names = [str(name).strip() for name in names]
    names = [name for name in names if name]

    installed = facts.get("packages") if isinstance(facts, Mapping) else None
    if not isinstance(installed, Mapping):
        return names

    out = []
    for name in names:
        if not _PLAIN_NAME.match(name):
            out.append(name)
        elif (name in installed) != (state == "present"):
            out.append(name)
    return out


class FilterModule(object):
    def filters(self):
        return {"packages_pending": packages_pending}
