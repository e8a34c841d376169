# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encoders for file formats the collection renders (module_utils/encode.py).

``pgpass_field``: one field of a libpq password file, ``:`` and ``\\`` escaped
(``fd00::31`` -> ``fd00\\:\\:31``); a line break is an error.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.stack.plugins.module_utils import encode


def pgpass_field(value):
    """``value`` as one field of a libpq password file."""
    try:
        return encode.pgpass_field(value)
    except encode.EncodeError as exc:
        raise AnsibleFilterError("pgpass_field: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"pgpass_field": pgpass_field}
