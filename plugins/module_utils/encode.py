# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encoders: a value made safe for one file format (one function per format).

Each encoder takes any value (rendered as text), returns the text to write into the file and
raises :class:`EncodeError` when the format cannot carry the value. ``problems`` runs one of
them over named values for the preflight checks (names only in its messages, never values).

Every encoder refuses a NUL character and text that is not valid UTF-8: no program behind
these files (libpq, Redis, systemd, pgBackRest, Patroni, Prometheus, Alertmanager's SMTP
client) can use such a value.

==========================  ===========================================================
encoder                     format
==========================  ===========================================================
pgpass_field                a field of a libpq password file (``.pgpass``)
patroni_pgpass_field        a password Patroni writes into its pgpass file
patroni_role_password       a password of a role Patroni creates at bootstrap (ASCII only)
libpq_conninfo_value        a value of a libpq ``key=value`` connection string
redis_string                a double-quoted Redis/Valkey configuration argument
redis_sentinel_token        a password in sentinel.conf (one bare word)
systemd_env_value           a value of a systemd EnvironmentFile / a POSIX shell word
yaml_string                 a double-quoted YAML scalar (hand-written YAML templates)
yaml_document               a whole YAML document from data (``to_nice_yaml`` without tags)
pgbackrest_value            an option value of pgBackRest's INI configuration file
prometheus_password         a basic auth password Prometheus reads (``password_file``)
bcrypt_password             a password checked against a bcrypt hash (exporter-toolkit, nginx)
basic_auth_user             an HTTP basic auth user name
htpasswd_user               the user name of an nginx htpasswd line
nginx_string                a double-quoted nginx directive parameter (add_header values)
==========================  ===========================================================
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.six.moves.collections_abc import Mapping


class EncodeError(ValueError):
    """The format cannot carry the value; the message says which character."""


def native_text(value):
    """``value`` as a plain ``str``: Ansible's tagged and vault-encrypted strings become the
    plain (decrypted) text, so nothing about their origin leaks into a file."""
    text = value if isinstance(value, str) else u"%s" % value
    return str.__str__(text)


def _text(value, fmt):
    text = native_text(value)
    if u"\x00" in text:
        raise EncodeError("%s cannot hold a NUL character" % fmt)
    try:
        text.encode("utf-8")
    except UnicodeError:
        raise EncodeError("%s: the value is not valid UTF-8 text" % fmt)
    return text


def pgpass_field(value):
    """``value`` -> ``str``: one field of a libpq password file line
    (``host:port:database:user:password``), as libpq reads it (``passwordFromFile`` and
    ``pwdfMatchesString`` in src/interfaces/libpq/fe-connect.c): ``\\`` and ``:`` get a
    backslash, so an IPv6 host or a password with a colon stays one field; a ``*`` or ``#``
    that starts the field gets one too (a bare ``*`` field is a wildcard, a line starting with
    ``#`` is a comment). Everything else, spaces and non-ASCII letters included, is written as
    it is.

    Raises :class:`EncodeError` on a line feed or carriage return (the file is line based and
    libpq strips trailing CR/LF), on NUL and on text that is not valid UTF-8."""
    text = _text(value, "a libpq password file field")
    if u"\n" in text or u"\r" in text:
        raise EncodeError("a libpq password file field cannot hold a line break")
    out = text.replace(u"\\", u"\\\\").replace(u":", u"\\:")
    if out[:1] in (u"*", u"#"):
        out = u"\\" + out
    return out


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


def patroni_pgpass_field(value):
    """``value`` -> ``str``: a PostgreSQL password Patroni writes into its own pgpass file
    (superuser, replication, rewind: ``postgresql.authentication`` in patroni.yml; the
    replicas' ``primary_conninfo`` and pg_rewind read it through ``passfile``). Patroni escapes
    ``:`` and ``\\`` (``_pgpass_line``/``_pgpass_content`` in patroni/postgresql/config.py) and
    writes the password last on the line; Patroni before 4.0 (Debian 12 ships 3.0.2) returns
    ``line.rstrip()``, so white space at the end of the password is lost. Returns the field as
    :func:`pgpass_field` writes it.

    Raises :class:`EncodeError` on white space at the end (Python's ``str.isspace``), on a
    line break (the file is line based), NUL and text that is not valid UTF-8."""
    text = _text(value, "a password in Patroni's pgpass file")
    if text and text[-1].isspace():
        raise EncodeError("a password in Patroni's pgpass file cannot end with white space (Patroni before 4.0 "
                          "strips it from the line it writes)")
    if u"\n" in text or u"\r" in text:
        raise EncodeError("a password in Patroni's pgpass file cannot hold a line break")
    return pgpass_field(text)


def patroni_role_password(value):
    """``value`` -> ``str``: the password of a role Patroni itself creates at bootstrap
    (superuser, replication, rewind: ``create_or_update_role`` in patroni/postgresql/bootstrap.py
    runs ``ALTER ROLE ... PASSWORD <literal>``). Patroni quotes the literal with
    ``quote_literal`` (patroni/psycopg.py), which with psycopg2 calls ``adapt(value)`` without a
    connection: the value is encoded as Latin-1 and the result decoded as UTF-8, so any
    non-ASCII character fails the bootstrap ("UnicodeDecodeError ... invalid start byte", or
    UnicodeEncodeError beyond Latin-1; seen with Patroni 3.0.2 on Debian 12). Returns the value
    unchanged.

    Raises :class:`EncodeError` on a character outside ASCII, on NUL and on text that is not
    valid UTF-8. Everything else (spaces, quotes, backslashes) Patroni quotes correctly."""
    text = _text(value, "a password of a role Patroni creates")
    for ch in text:
        if ord(ch) > 0x7F:
            raise EncodeError("a password of a role Patroni creates at bootstrap (superuser, replication, rewind) "
                              "must be ASCII: Patroni quotes it with psycopg2's adapt() without a connection "
                              "(Latin-1), which fails on a non-ASCII character")
    return text


def libpq_conninfo_value(value):
    """``value`` -> ``str``: one value of a libpq ``key=value`` connection string
    (``conninfo_parse`` in src/interfaces/libpq/fe-connect.c), single-quoted: ``\\`` and ``'``
    get a backslash; everything else (spaces, ``=``, line breaks, non-ASCII) is written as it
    is. An empty value is written ``''``.

    Raises :class:`EncodeError` on NUL and on text that is not valid UTF-8."""
    text = _text(value, "a libpq connection string value")
    return u"'" + text.replace(u"\\", u"\\\\").replace(u"'", u"\\'") + u"'"


# YAML: characters a double-quoted scalar writes as an escape. Only the escapes YAML 1.1 and
# 1.2 share (PyYAML, libyaml, Go's yaml.v2/v3): \\ \" \t \n \r \xHH \uHHHH.
_YAML_NAMED = {u"\\": u"\\\\", u'"': u'\\"', u"\t": u"\\t", u"\n": u"\\n", u"\r": u"\\r"}


def _yaml_escape(ch):
    if ch in _YAML_NAMED:
        return _YAML_NAMED[ch]
    code = ord(ch)
    # not printable in YAML (C0, DEL, C1), YAML line breaks (NEL, LS, PS), BOM, non-characters
    if code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF):
        return u"\\x%02x" % code if code <= 0xFF else u"\\u%04x" % code
    return ch


def yaml_string(value):
    """``value`` -> ``str``: a double-quoted YAML scalar with the same value for every YAML
    reader the collection feeds (PyYAML/Patroni, Go's yaml for Prometheus, Alertmanager and
    exporter-toolkit): ``\\`` and ``"`` get a backslash, tab, line feed and carriage return
    are written ``\\t \\n \\r``, the characters YAML does not allow raw (other C0 controls,
    DEL, C1 controls, the line separators U+0085/U+2028/U+2029, U+FEFF, U+FFFE, U+FFFF) as
    ``\\xHH``/``\\uHHHH``. Everything else, non-ASCII letters included, is written as it is;
    the result is one line.

    Raises :class:`EncodeError` on NUL and on text that is not valid UTF-8."""
    text = _text(value, "a YAML string")
    return u'"' + u"".join(_yaml_escape(ch) for ch in text) + u'"'


def plain_data(data):
    """``data`` with every string a plain ``str`` and every number/boolean its plain type
    (Ansible's tagged and vault-encrypted values would otherwise be written as ``!vault``
    ciphertext by ``to_nice_yaml``); mappings become dicts, other collections lists."""
    if data is None or type(data) in (bool, int, float, str):
        return data
    if isinstance(data, bool):
        return bool(data)
    if isinstance(data, int):
        return int(data)
    if isinstance(data, float):
        return float(data)
    if isinstance(data, str):
        return native_text(data)
    if isinstance(data, Mapping):
        return dict((plain_data(k), plain_data(v)) for k, v in data.items())
    if isinstance(data, (list, tuple, set, frozenset)):
        return [plain_data(item) for item in data]
    # anything else is text: ansible-core 2.18's AnsibleVaultEncryptedUnicode (a Sequence, not a
    # str) and 2.19's EncryptedString give their decrypted value
    return native_text(data)


def _check_strings(data, fmt):
    if isinstance(data, str):
        _text(data, fmt)
    elif isinstance(data, dict):
        for key, item in data.items():
            _check_strings(key, fmt)
            _check_strings(item, fmt)
    elif isinstance(data, list):
        for item in data:
            _check_strings(item, fmt)


def yaml_document(data, indent=2, width=120, sort_keys=True):
    """``data`` -> ``str``: a YAML document (block style, non-ASCII written as is), as
    ``ansible.builtin.to_nice_yaml`` writes it with the same dumper (libyaml's when present),
    but over :func:`plain_data`: a vault-encrypted or tagged value is written as its plain
    text, never as a ``!vault`` block that the service could not read. The emitter quotes and
    escapes every string that needs it (tests: every corpus value loads back the same).

    Raises :class:`EncodeError` on a string holding NUL or text that is not valid UTF-8."""
    import yaml  # noqa: PLC0415 (controller side only)

    plain = plain_data(data)
    _check_strings(plain, "a YAML document")
    dumper = getattr(yaml, "CSafeDumper", None) or yaml.SafeDumper
    return yaml.dump(plain, Dumper=dumper, allow_unicode=True, default_flow_style=False, indent=indent,
                     width=width, sort_keys=sort_keys)


# What pgBackRest's INI reader trims from both ends of a value (strTrim, src/common/type/string.c).
_PGBACKREST_TRIMMED = {u" ": "a space", u"\t": "a tab", u"\r": "a carriage return"}


def pgbackrest_value(value):
    """``value`` -> ``str``: the value of a ``key=value`` line of pgBackRest's configuration
    file, written as it is. pgBackRest (2.45 and current, ``iniValueNext`` in
    src/common/ini.c) reads the file line by line (split at line feeds), trims space, tab,
    CR and LF from both ends of the line and of the value, and takes everything after the
    first ``=`` with no quoting or escapes: ``#``, ``;``, ``=``, quotes, backslashes, ``$`` and
    non-ASCII letters inside the value are kept; an empty value is an error ("must have a
    value", src/config/parse.c).

    Raises :class:`EncodeError` on an empty value, a line feed anywhere, a space, tab or
    carriage return at the start or the end, NUL and text that is not valid UTF-8."""
    text = _text(value, "a pgBackRest configuration value")
    if not text:
        raise EncodeError("a pgBackRest configuration value cannot be empty (pgBackRest refuses an option "
                          "without a value)")
    if u"\n" in text:
        raise EncodeError("a pgBackRest configuration value cannot hold a line feed (the file is line based)")
    for end, ch in ((u"start", text[0]), (u"end", text[-1])):
        if ch in _PGBACKREST_TRIMMED:
            raise EncodeError("a pgBackRest configuration value cannot %s with %s (pgBackRest trims it)"
                              % (end, _PGBACKREST_TRIMMED[ch]))
    return text


# Go's unicode.IsSpace: what strings.TrimSpace removes (prometheus/common reads a password
# file, and before v0.45 the inline password too, through strings.TrimSpace).
_GO_SPACE = frozenset(u"\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                      u"\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def prometheus_password(value):
    """``value`` -> ``str``: a basic auth password as Prometheus reads it, the content of a
    ``password_file`` (written as it is). prometheus/common reads the file through
    ``strings.TrimSpace`` (config/http_config.go, every version), and before v0.45 (Debian
    12's Prometheus 2.42) the inline ``password`` too: leading and trailing white space
    (Go's ``unicode.IsSpace``: ASCII space, tab, line breaks, VT, FF, NEL, NBSP and the
    Unicode spaces) can never reach the server. White space inside the password is kept.

    Raises :class:`EncodeError` on white space at the start or the end, NUL and text that is
    not valid UTF-8."""
    text = _text(value, "a Prometheus basic auth password")
    if text and (text[0] in _GO_SPACE or text[-1] in _GO_SPACE):
        raise EncodeError("a Prometheus basic auth password cannot start or end with white space "
                          "(Prometheus trims its password file)")
    return text


BCRYPT_MAX_BYTES = 72


def bcrypt_password(value):
    """``value`` -> ``str``: a password checked against a bcrypt hash (exporter-toolkit's
    ``basic_auth_users``, nginx's htpasswd), unchanged. bcrypt uses the first 72 bytes of a
    password and stops at NUL: a longer password would be accepted by its first 72 bytes
    alone (and newer bcrypt libraries refuse to hash it).

    Raises :class:`EncodeError` above 72 UTF-8 bytes, on NUL and on text that is not valid
    UTF-8."""
    text = _text(value, "a bcrypt-hashed password")
    if len(text.encode("utf-8")) > BCRYPT_MAX_BYTES:
        raise EncodeError("a bcrypt-hashed password cannot be longer than %d bytes (bcrypt ignores the "
                          "rest)" % BCRYPT_MAX_BYTES)
    return text


def basic_auth_user(value):
    """``value`` -> ``str``: an HTTP basic auth user name (RFC 7617), unchanged: the
    credentials travel as ``user:password`` and every server splits them at the first colon,
    so a user name cannot hold ``:``, nor a control character.

    Raises :class:`EncodeError` on an empty name, ``:``, a control character (below 0x20,
    DEL), NUL and text that is not valid UTF-8."""
    text = _text(value, "an HTTP basic auth user name")
    if not text:
        raise EncodeError("an HTTP basic auth user name cannot be empty")
    if u":" in text:
        raise EncodeError("an HTTP basic auth user name cannot hold a colon (user:password is split at the first one)")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise EncodeError("an HTTP basic auth user name cannot hold a control character")
    return text


NGX_CONF_BUFFER = 4096


def nginx_string(value):
    """``value`` -> ``str``: one double-quoted parameter of an nginx configuration directive
    whose value nginx interpolates (``add_header``, ``return``, ``auth_basic``...), as nginx
    reads it (``ngx_conf_read_token`` in src/core/ngx_conf_file.c): ``\\`` and ``"`` get a
    backslash; everything else (spaces, ``'``, ``;``, ``{``, ``#``, tabs, non-ASCII letters)
    is written as it is inside the quotes.

    Raises :class:`EncodeError` on ``$`` (nginx reads it as a variable and has no escape for
    it), on a control character other than tab (a line break would end an HTTP header), on
    a parameter of 4096 bytes or more (nginx's token buffer), NUL and text that is not valid
    UTF-8."""
    text = _text(value, "an nginx configuration string")
    if u"$" in text:
        raise EncodeError("an nginx configuration string cannot hold $ (nginx reads it as a variable)")
    if any((ord(ch) < 0x20 and ch != u"\t") or ord(ch) == 0x7F for ch in text):
        raise EncodeError("an nginx configuration string cannot hold a control character (line breaks included)")
    out = u'"' + text.replace(u"\\", u"\\\\").replace(u'"', u'\\"') + u'"'
    if len(out.encode("utf-8")) >= NGX_CONF_BUFFER:
        raise EncodeError("an nginx configuration string cannot be longer than %d bytes" % (NGX_CONF_BUFFER - 3))
    return out


def htpasswd_user(value):
    """``value`` -> ``str``: the user name of an nginx htpasswd line (``user:hash``),
    unchanged. nginx (``ngx_http_auth_basic_handler``) compares the name byte for byte up to
    the first ``:``, skips a line starting with ``#`` or CR, and splits lines at LF: so the
    :func:`basic_auth_user` rules, and no ``#`` first.

    Raises :class:`EncodeError` as :func:`basic_auth_user` does, and on a leading ``#``."""
    text = basic_auth_user(value)
    if text.startswith(u"#"):
        raise EncodeError("an htpasswd user name cannot start with # (nginx reads the line as a comment)")
    return text


ENCODERS = {
    "pgpass_field": pgpass_field,
    "patroni_pgpass_field": patroni_pgpass_field,
    "patroni_role_password": patroni_role_password,
    "libpq_conninfo_value": libpq_conninfo_value,
    "redis_string": redis_string,
    "redis_sentinel_token": redis_sentinel_token,
    "systemd_env_value": systemd_env_value,
    "yaml_string": yaml_string,
    "pgbackrest_value": pgbackrest_value,
    "prometheus_password": prometheus_password,
    "bcrypt_password": bcrypt_password,
    "basic_auth_user": basic_auth_user,
    "htpasswd_user": htpasswd_user,
    "nginx_string": nginx_string,
}


def refusals(value, formats):
    """The reasons the encoders named in ``formats`` refuse ``value`` (empty list: every
    format can carry it). Reasons never contain the value."""
    out = []
    for fmt in formats:
        if fmt not in ENCODERS:
            raise EncodeError("unknown format %r (one of %s)" % (fmt, ", ".join(sorted(ENCODERS))))
        try:
            ENCODERS[fmt](value)
        except EncodeError as exc:
            if str(exc) not in out:
                out.append(str(exc))
    return out


def problems(named_values, fmt, prefix=u"", skip_empty=True):
    """``{variable name: value}``, encoder name (or a list of them) -> sorted list of
    ``"<prefix>name: reason"`` for the values an encoder refuses (empty values skipped unless
    ``skip_empty`` is false). The messages name the variable, never its value."""
    formats = [fmt] if isinstance(fmt, str) else list(fmt)
    for name in formats:
        if name not in ENCODERS:
            raise EncodeError("unknown format %r (one of %s)" % (name, ", ".join(sorted(ENCODERS))))
    out = []
    for name in sorted(named_values):
        value = named_values[name]
        if value is None or (skip_empty and native_text(value) == u""):
            continue
        for reason in refusals(value, formats):
            out.append(u"%s%s: %s" % (prefix, name, reason))
    return out
