# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encoders for file formats the collection renders (module_utils/encode.py, one per format).

``pgpass_field``: one field of a libpq password file: ``:`` and ``\\`` escaped, a leading ``*``
or ``#`` too (``fd00::31`` -> ``fd00\\:\\:31``); a line break is an error.

``patroni_pgpass_field``: a PostgreSQL password Patroni writes into its pgpass file: the
``pgpass_field`` rules, and white space at the end is an error (Patroni < 4.0 strips it).

``patroni_role_password``: the password of a role Patroni creates at bootstrap (superuser,
replication, rewind), returned unchanged; a non-ASCII character is an error (Patroni quotes it
with psycopg2's ``adapt()`` without a connection, Latin-1, and fails).

``libpq_conninfo_value``: a single-quoted libpq connection string value (``\\`` ``'`` escaped).

``redis_string``: a double-quoted Redis/Valkey configuration argument (``masterauth``):
``\\`` ``"`` escaped, ``\\n \\r \\t \\a \\b``, other control characters ``\\xHH``.

``redis_sentinel_token``: a sentinel.conf password, written bare because Sentinel rewrites it
unquoted; empty, ASCII whitespace, ``"`` and ``'`` are errors.

``systemd_env_value``: a double-quoted systemd EnvironmentFile value (also a POSIX shell
word), ``\\`` ``"`` `````` ` `````` ``$`` escaped.

``yaml_string``: a double-quoted one-line YAML scalar (``\\`` ``"`` escaped, control and
line-separator characters as ``\\t \\n \\r \\xHH \\uHHHH``).

``yaml_document``: data -> a YAML document like ``to_nice_yaml``, but vault-encrypted or
tagged values are written as plain text, never as ``!vault`` ciphertext.

``pgbackrest_value``: a pgBackRest INI option value (written as is); empty, a line feed, or a
space/tab/CR at either end are errors (pgBackRest trims them).

``prometheus_password``: a basic auth password Prometheus reads from ``password_file``;
white space at either end is an error (Prometheus trims it).

``bcrypt_password``: a password hashed with bcrypt; more than 72 bytes is an error.

``basic_auth_user``: an HTTP basic auth user name; empty, ``:`` or a control character is an
error. ``htpasswd_user``: the same, and no leading ``#`` (nginx's htpasswd reader).

Every encoder refuses NUL and text that is not valid UTF-8. A refusal is an
``AnsibleFilterError`` naming the filter and the reason, never the value.

``nginx_string``: a double-quoted nginx directive parameter (``\\`` ``"`` escaped); ``$`` (a
variable to nginx), control characters but tab, and 4096 bytes or more are errors.

``encode_problems``: ``{variable: value} | encode_problems('redis_sentinel_token')`` (or a list
of formats) -> list of ``"variable: reason"`` for the preflight (empty values skipped).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.hardened.stack.plugins.module_utils import encode

# filter name -> module_utils function; each one encodes a value for one format
_FILTERS = ("pgpass_field", "patroni_pgpass_field", "patroni_role_password", "libpq_conninfo_value", "redis_string",
            "redis_sentinel_token", "systemd_env_value", "yaml_string", "pgbackrest_value", "prometheus_password", "bcrypt_password",
            "basic_auth_user", "htpasswd_user", "nginx_string")


def _wrap(name, func):
    def encoder(value, *args, **kwargs):
        try:
            return func(value, *args, **kwargs)
        except encode.EncodeError as exc:
            # the value itself never goes into the message (it is a secret)
            raise AnsibleFilterError("%s: %s" % (name, exc))

    encoder.__name__ = name
    encoder.__doc__ = func.__doc__
    return encoder


def encode_problems(named_values, fmt, prefix=""):
    """``{variable name: value}`` -> ``["<prefix>name: reason", ...]`` for the values ``fmt``
    (a format or a list of them) refuses (``prefix`` names a dict variable:
    ``prefix='app_secret_environment.'``)."""
    try:
        return encode.problems(dict(named_values), fmt, prefix=prefix)
    except encode.EncodeError as exc:
        raise AnsibleFilterError("encode_problems: %s" % exc)


class FilterModule(object):
    def filters(self):
        out = dict((name, _wrap(name, encode.ENCODERS[name])) for name in _FILTERS)
        out["yaml_document"] = _wrap("yaml_document", encode.yaml_document)
        out["encode_problems"] = encode_problems
        return out
