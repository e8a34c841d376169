# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encoders: a value made safe for one file format (one function per format).

Each encoder takes any value (rendered as text), returns the text to write into the file and
raises :class:`EncodeError` when the format cannot carry the value. ``problems`` runs one of
them over named values for the preflight checks (names only in its messages, never values).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class EncodeError(ValueError):
    """The format cannot carry the value; the message says which character."""


def _text(value, fmt):
    text = u"%s" % value
    if u"\x00" in text:
        raise EncodeError("%s cannot hold a NUL character" % fmt)
    try:
        text.encode("utf-8")
    except UnicodeError:
        raise EncodeError("%s: the value is not valid UTF-8 text" % fmt)
    return text


def pgpass_field(value):
    """One field of a libpq password file (``host:port:db:user:password``): ``\\`` and ``:``
    are escaped with a backslash, so an IPv6 host or a password with a colon stays one field.
    A newline cannot be carried (the file is line-based)."""
    text = u"%s" % value
    if "\n" in text or "\r" in text:
        raise EncodeError("a libpq password file field cannot hold a line break")
    return text.replace("\\", "\\\\").replace(":", "\\:")


_REDIS_ESCAPES = {u"\\": u"\\\\", u'"': u'\\"', u"\n": u"\\n", u"\r": u"\\r", u"\t": u"\\t",
                  u"\a": u"\\a", u"\b": u"\\b"}


def redis_string(value):
    """``value`` -> ``str``: one double-quoted argument of a Redis/Valkey configuration line
    (``masterauth``, ``requirepass``, ...), as redis-server's config loader splits it
    (``sdssplitargs`` in src/sds.c): ``\\`` and ``"`` are escaped with a backslash, line feed,
    carriage return, tab, bell and backspace as ``\\n \\r \\t \\a \\b``, every other control
    character (below 0x20, and 0x7f) as ``\\xHH``; anything else, non-ASCII letters included,
    is written as it is. This is the form ``CONFIG REWRITE`` writes back (``sdscatrepr``).

    Raises :class:`EncodeError` on a NUL character (the loader and ``CONFIG REWRITE`` handle
    values as C strings) and on text that is not valid UTF-8."""
    text = _text(value, "a Redis configuration string")
    out = []
    for ch in text:
        if ch in _REDIS_ESCAPES:
            out.append(_REDIS_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(u"\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return u'"' + u"".join(out) + u'"'


_SENTINEL_REFUSED = {u" ": "a space", u"\t": "a tab", u"\n": "a line break", u"\r": "a line break",
                     u"\v": "a vertical tab", u"\f": "a form feed", u'"': 'a double quote (")',
                     u"'": "a single quote (')"}


def redis_sentinel_token(value):
    """``value`` -> ``str``: a password in ``sentinel.conf`` (``sentinel sentinel-pass``,
    ``sentinel auth-pass``), written bare. Sentinel rewrites its own file at start and on
    every state change and writes these two values unquoted (``sdscatprintf("%s")`` in
    src/sentinel.c, Redis 7.x and Valkey 8), then reads them back with ``sdssplitargs``. So
    whatever the role writes, the value must survive as one bare word: quoting it would only
    hold until Sentinel's first rewrite.

    Raises :class:`EncodeError` on an empty value (Sentinel reads it as "no password"), on
    ASCII whitespace (space, tab, line break, vertical tab, form feed: it ends the word), on
    ``"`` and ``'`` (a quote anywhere in a bare word opens a quoted string), on NUL and on text
    that is not valid UTF-8. Everything else (``\\``, ``$``, ``#``, non-ASCII) is carried as is."""
    text = _text(value, "a sentinel.conf password")
    if not text:
        raise EncodeError("a sentinel.conf password cannot be empty (Sentinel reads it as no password)")
    for ch in text:
        if ch in _SENTINEL_REFUSED:
            raise EncodeError("a sentinel.conf password cannot hold %s: Sentinel rewrites its "
                              "configuration with the password unquoted" % _SENTINEL_REFUSED[ch])
    return text


_SYSTEMD_ESCAPED = u'\\"`$'


def systemd_env_value(value):
    """``value`` -> ``str``: the value of one ``KEY=value`` line of a systemd
    ``EnvironmentFile`` (``parse_env_file_internal`` in src/basic/env-file.c), double-quoted:
    ``\\``, ``"``, `````` ` `````` and ``$`` (systemd's ``SHELL_NEED_ESCAPE``) get a backslash;
    everything else is written as it is, spaces (kept inside quotes), ``'``, ``#``, ``%``
    (no specifier expansion in the file), non-ASCII letters and line breaks (a line break
    inside double quotes is part of the value) included. The same text is a POSIX shell
    double-quoted word with the same value, for the init scripts that source /etc/default
    files.

    Raises :class:`EncodeError` on a NUL character (an environment is a list of C strings)
    and on text that is not valid UTF-8 (systemd drops such assignments)."""
    text = _text(value, "a systemd environment file value")
    return u'"' + u"".join(u"\\" + ch if ch in _SYSTEMD_ESCAPED else ch for ch in text) + u'"'


ENCODERS = {
    "pgpass_field": pgpass_field,
    "redis_string": redis_string,
    "redis_sentinel_token": redis_sentinel_token,
    "systemd_env_value": systemd_env_value,
}


def problems(named_values, fmt, prefix=u"", skip_empty=True):
    """``{variable name: value}``, encoder name -> sorted list of ``"<prefix>name: reason"``
    for the values ``fmt``'s encoder refuses (empty values skipped unless ``skip_empty`` is
    false). The messages name the variable, never its value."""
    if fmt not in ENCODERS:
        raise EncodeError("unknown format %r (one of %s)" % (fmt, ", ".join(sorted(ENCODERS))))
    out = []
    for name in sorted(named_values):
        value = named_values[name]
        if value is None or (skip_empty and u"%s" % value == u""):
            continue
        try:
            ENCODERS[fmt](value)
        except EncodeError as exc:
            out.append(u"%s%s: %s" % (prefix, name, exc))
    return out
