# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encoders for file formats the collection renders (module_utils/encode.py).

``pgpass_field``: one field of a libpq password file, ``:`` and ``\\`` escaped
(``fd00::31`` -> ``fd00\\:\\:31``); a line break is an error.

``redis_string``: a double-quoted Redis/Valkey configuration argument (``masterauth``):
``\\`` ``"`` escaped, ``\\n \\r \\t \\a \\b``, other control characters ``\\xHH``; NUL is an error.

``redis_sentinel_token``: a sentinel.conf password, written bare because Sentinel rewrites it
unquoted; empty, ASCII whitespace, ``"``, ``'`` and NUL are errors.

``systemd_env_value``: a double-quoted systemd EnvironmentFile value, ``\\`` ``"`` `````` ` ``````
``$`` escaped; NUL is an error.

``encode_problems``: ``{variable: value} | encode_problems('redis_sentinel_token')`` -> list
of ``"variable: reason"`` for the preflight (empty values skipped; no value in a message).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.stack.plugins.module_utils import encode


def _wrap(name):
    func = encode.ENCODERS[name]

    def encoder(value):
        try:
            return func(value)
        except encode.EncodeError as exc:
            # the value itself never goes into the message (it is a secret)
            raise AnsibleFilterError("%s: %s" % (name, exc))

    encoder.__name__ = name
    encoder.__doc__ = func.__doc__
    return encoder


pgpass_field = _wrap("pgpass_field")
redis_string = _wrap("redis_string")
redis_sentinel_token = _wrap("redis_sentinel_token")
systemd_env_value = _wrap("systemd_env_value")


def encode_problems(named_values, fmt, prefix=""):
    """``{variable name: value}`` -> ``["<prefix>name: reason", ...]`` for the values ``fmt``
    refuses (``prefix`` names a dict variable: ``prefix='app_secret_environment.'``)."""
    try:
        return encode.problems(dict(named_values), fmt, prefix=prefix)
    except encode.EncodeError as exc:
        raise AnsibleFilterError("encode_problems: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {
            "pgpass_field": pgpass_field,
            "redis_string": redis_string,
            "redis_sentinel_token": redis_sentinel_token,
            "systemd_env_value": systemd_env_value,
            "encode_problems": encode_problems,
        }
