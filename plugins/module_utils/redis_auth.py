# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credentials of Redis/Valkey and Sentinel: ACL files, sentinel.conf, logging in.

Helpers for the redis_acl, redis_config and redis_sentinel modules (the socket work is
:mod:`resp`): the connection options and connecting (:func:`login_argument_spec`,
:func:`connect`, :func:`login`), and pure parsers. The rules they follow are the servers' own, Redis 7.0 and Valkey 8:

- An ACL file (``aclfile``) is read line by line; each line is trimmed of spaces, tabs and
  line breaks and split on single spaces; the first word is ``user``, the second the name,
  the rest are ACL rules (src/acl.c, ACLLoadFromFile). ``#<sha256 hex>`` is a password hash,
  ``>text`` a clear password; a user may hold several.
- ``ACL LOAD`` frees the whole user set and with it every authenticated client (acl.c:
  ACLLoadFromFile -> ACLFreeUsersSet -> ACLFreeUserAndKillClients): replicas, Sentinels and
  applications are all cut off. ``ACL SETUSER <name> reset <rules>`` is applied to a copy of
  the user and copied back in one step (ACLStringSetUser) and disconnects nobody (only
  Pub/Sub clients whose channels were revoked), so the modules keep a live server in line
  with its file user by user instead.
- sentinel.conf lines are split like every Redis configuration line (sds.c, sdssplitargs):
  double quotes with C escapes, single quotes, or bare words. Sentinel writes ``auth-pass``
  and ``sentinel-pass`` back unquoted (sentinel.c, rewriteConfigSentinelOption).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re

from ansible_collections.hardened.stack.plugins.module_utils.resp import RespClient, RespError

_HASH = re.compile(r"^#[0-9a-f]{64}$")
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"a": b"\a"}
_HEX = b"0123456789abcdefABCDEF"


class ConfigSyntaxError(ValueError):
    """A configuration line the server itself would refuse (the message names the line number,
    never its content: the line may hold a password)."""


def split_args(line):
    """Port of Redis's ``sdssplitargs``: the words of one configuration line (str), or raise
    :class:`ConfigSyntaxError` for unbalanced quotes."""
    data = line.encode("utf-8", "surrogateescape") if not isinstance(line, bytes) else line
    words = []
    pos, end = 0, len(data)
    while True:
        while pos < end and data[pos:pos + 1].isspace():
            pos += 1
        if pos >= end:
            return words
        current = b""
        in_double = in_single = False
        while True:
            char = data[pos:pos + 1]
            nxt = data[pos + 1:pos + 2]
            if in_double:
                if (char == b"\\" and nxt == b"x" and data[pos + 2:pos + 3] and data[pos + 2:pos + 3] in _HEX
                        and data[pos + 3:pos + 4] and data[pos + 3:pos + 4] in _HEX):
                    current += bytes(bytearray([int(data[pos + 2:pos + 4], 16)]))
                    pos += 3
                elif char == b"\\" and nxt:
                    pos += 1
                    current += _ESCAPES.get(nxt, nxt)
                elif char == b'"':
                    if nxt and not nxt.isspace():
                        raise ConfigSyntaxError("a closing quote must be followed by a space")
                    pos += 1
                    break
                elif not char:
                    raise ConfigSyntaxError("unbalanced quotes")
                else:
                    current += char
            elif in_single:
                if char == b"\\" and nxt == b"'":
                    pos += 1
                    current += b"'"
                elif char == b"'":
                    if nxt and not nxt.isspace():
                        raise ConfigSyntaxError("a closing quote must be followed by a space")
                    pos += 1
                    break
                elif not char:
                    raise ConfigSyntaxError("unbalanced quotes")
                else:
                    current += char
            else:
                if not char or char in b" \n\r\t\0":
                    break
                if char == b'"':
                    in_double = True
                elif char == b"'":
                    in_single = True
                else:
                    current += char
            pos += 1
        words.append(current.decode("utf-8", "surrogateescape"))


def parse_acl_file(text):
    """``[(user, [rules])]`` in file order, as ACL LOAD reads them. Raises
    :class:`ConfigSyntaxError` for a line ACL LOAD would refuse outright or a user named twice."""
    users = []
    seen = set()
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip(" \t\r\n")
        if not line:
            continue
        words = [w.strip("\t\r\n") for w in line.split(" ")]
        words = [w for w in words if w]
        if not words:
            continue
        if words[0] != "user" or len(words) < 2:
            raise ConfigSyntaxError("line %d does not start with 'user <name>'" % number)
        if words[1] in seen:
            raise ConfigSyntaxError("line %d: user %s is defined twice" % (number, words[1]))
        seen.add(words[1])
        users.append((words[1], words[2:]))
    return users


def rule_passwords(rules):
    """The password hashes a user's rules leave it with (hex SHA-256, in order, no duplicates),
    and whether the user ends up ``on``. Follows ACLSetUser: ``>p``/``#h`` add, ``<p``/``!h``
    remove, ``nopass``/``resetpass``/``reset`` clear."""
    hashes = []
    enabled = False
    for rule in rules:
        low = rule.lower()
        if low == "on":
            enabled = True
        elif low == "off":
            enabled = False
        elif low in ("nopass", "resetpass"):
            hashes = []
        elif low == "reset":
            hashes, enabled = [], False
        elif rule.startswith(">"):
            digest = hashlib.sha256(rule[1:].encode("utf-8", "surrogateescape")).hexdigest()
            if digest not in hashes:
                hashes.append(digest)
        elif rule.startswith("<"):
            digest = hashlib.sha256(rule[1:].encode("utf-8", "surrogateescape")).hexdigest()
            hashes = [h for h in hashes if h != digest]
        elif _HASH.match(rule.lower()):
            if rule[1:].lower() not in hashes:
                hashes.append(rule[1:].lower())
        elif rule.startswith("!") and _HASH.match("#" + rule[1:].lower()):
            hashes = [h for h in hashes if h != rule[1:].lower()]
    return hashes, enabled


def acl_file_passwords(text):
    """``{user: [hashes]}`` of an ACL file's text."""
    return dict((name, rule_passwords(rules)[0]) for name, rules in parse_acl_file(text))


def getuser_state(reply):
    """(hashes, enabled) from an ``ACL GETUSER`` reply (a flat key/value list), or None."""
    if reply is None:
        return None
    fields = dict((reply[i], reply[i + 1]) for i in range(0, len(reply) - 1, 2))
    flags = fields.get("flags") or []
    return [h.lower() for h in (fields.get("passwords") or [])], "on" in flags


def sentinel_conf_values(text, master_name):
    """The credentials in a sentinel.conf: ``{'auth-pass', 'auth-user', 'sentinel-pass',
    'sentinel-user'}`` (the master's and Sentinel's own; "" when absent; the last line wins,
    as when Sentinel reads the file). Raises :class:`ConfigSyntaxError` with a line number."""
    out = {"auth-pass": "", "auth-user": "", "sentinel-pass": "", "sentinel-user": ""}
    for number, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            words = split_args(stripped)
        except ConfigSyntaxError as exc:
            raise ConfigSyntaxError("line %d: %s" % (number, exc))
        if len(words) < 2 or words[0].lower() != "sentinel":
            continue
        option = words[1].lower()
        if option in ("auth-pass", "auth-user") and len(words) == 4 and words[2] == master_name:
            out[option] = words[3]
        elif option in ("sentinel-pass", "sentinel-user") and len(words) == 3:
            out[option] = words[2]
    return out


def login_argument_spec(**overrides):
    """The options that say how a module reaches and logs in to an instance (documented by the
    doc fragment ``hardened.stack.redis_login``), with ``overrides`` (option -> spec) applied.
    ``login_passwords`` defaults to ``[]``; a module that cannot work without it overrides it."""
    spec = dict(
        login_host=dict(type="str", default="127.0.0.1"),
        login_port=dict(type="int", default=6379),
        login_user=dict(type="str", default="admin"),
        login_passwords=dict(type="list", elements="str", default=[], no_log=True),
        connect_timeout=dict(type="float", default=5.0),
        tls=dict(type="bool", default=False),
        tls_ca_file=dict(type="path"),
        tls_cert_file=dict(type="path"),
        tls_key_file=dict(type="path"),
    )
    spec.update(overrides)
    return spec


def connect(params):
    """A :class:`resp.RespClient` connected as the options of :func:`login_argument_spec` in
    ``params`` say, not logged in yet (:func:`login`). Raises :class:`resp.RespConnectionError`
    when nothing answers or the TLS handshake fails."""
    client = RespClient(host=params["login_host"], port=params["login_port"], timeout=params["connect_timeout"],
                        tls=params["tls"], ca_file=params["tls_ca_file"], cert_file=params["tls_cert_file"],
                        key_file=params["tls_key_file"])
    return client.connect()


def login(client, username, passwords):
    """Authenticate ``client`` (a connected :class:`resp.RespClient` without credentials) with
    the first of ``passwords`` the server accepts; return its index. Raises the last
    :class:`resp.RespError` (WRONGPASS ...) when none does."""
    error = RespError("no password to try")
    for index, password in enumerate(passwords):
        if password in (None, ""):
            continue
        try:
            client.execute("AUTH", username, password)
            return index
        except RespError as exc:
            if not str(exc).startswith(("WRONGPASS", "ERR invalid password")):
                raise
            error = exc
    raise error


def without_secrets(message, secrets):
    """``message`` with every one of ``secrets`` (and every hash-like word) masked."""
    text = u"%s" % message
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "********")
    return re.sub(r"[#!]?[0-9a-fA-F]{64}", "#<hash>", text)
