# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The secrets contract: where the controller keeps the passwords the collection generates.

One directory, ``hardened_stack_secrets_dir`` (default ``~/.hardened-stack/secrets``), one file
per secret, laid out by :data:`KINDS` (written down here and nowhere else; docs/secrets.md is
generated from it):

=============================  ===================================  ======================
path under the directory       secret                               producer (role)
=============================  ===================================  ======================
postgresql/CLUSTER/USER        a PostgreSQL role's password         hardened.stack.postgresql
postgresql/CLUSTER/patroni-api the Patroni REST API password        hardened.stack.postgresql
redis/CLUSTER/USER             a Redis/Sentinel ACL user's password hardened.stack.redis
monitoring/basic_auth          the exporters', Prometheus' and      hardened.stack.exporters
                               Alertmanager's basic auth password
backup/STANZA/repo-cipher      the pgBackRest repository passphrase hardened.stack.backup
backup/STANZA/USER             the pg_dump role's password          hardened.stack.backup
=============================  ===================================  ======================

A parameter value is one path segment, and a fixed name of the layout is reserved: a
PostgreSQL role named ``patroni-api`` or a pg_dump user named ``repo-cipher`` would share the
file of another secret, so they are refused.

Producers call :func:`produce` (create once with the kind's generation rule, then reuse);
consumers call :func:`read`, which never creates: a missing file is an error that names the
producing role and the vault variable that replaces the file. A vault variable (the roles'
``*_password`` variables) always wins over the file; the roles decide that, not this module.

With ``hardened_stack_controller_state: external`` (:func:`controller_state`) the state lives
outside this controller (a vault file, an AWX credential, a mounted directory): a producer
finds its file or fails naming the variable to set, and nothing is generated. In check mode
nothing is written: a missing secret is stood in for by a value generated in memory for that
one lookup (:func:`produce`, :func:`read` with ``check_mode``), and the caller warns.

Files are written atomically (a hard link of a complete temporary file, so concurrent
producers agree on one value), mode 0600 in directories of mode 0700, as ``value`` + a line
feed; :func:`read` drops one trailing line feed and nothing else (spaces are part of a value).
Files written by ``ansible.builtin.password`` before this contract are read the same way (its
`` salt=`` suffix is dropped), and the pre-contract locations are adopted (copied to the
contract's path) by :func:`produce`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import random
import re
import string
import tempfile

DEFAULT_DIR = "~/.hardened-stack/secrets"
DIR_VAR = "hardened_stack_secrets_dir"

# Per-role secret directory variables replaced by hardened_stack_secrets_dir (the preflight
# refuses them: a second directory is a second, different password).
RETIRED_DIR_VARS = ("postgresql_secrets_dir", "redis_secrets_dir", "backup_secrets_dir",
                    "exporters_secrets_dir", "prometheus_secrets_dir", "alertmanager_secrets_dir")

# One switch for the whole controller-side state (the secrets and the CA): "local" (default)
# generates what is missing on this controller; "external" refuses to (the state is given).
STATE_VAR = "hardened_stack_controller_state"
STATES = ("local", "external")

_ALNUM = string.ascii_letters + string.digits
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]*$")
_PASSWORD_LOOKUP = re.compile(r"^([A-Za-z0-9]+) salt=\S*( ident=\S*)?$")


class SecretError(Exception):
    """A secret is missing, unreadable, or asked for with wrong parameters. Messages name
    paths, roles and variables, never a value."""


class Kind(object):
    """One kind of secret: where it lives (``pattern`` with ``{param}`` fields), who makes it,
    how it is generated, and which vault variable replaces it."""

    def __init__(self, pattern, producer, description, vault_variable, length=32, legacy=(), users=(),
                 other_user=None):
        self.pattern = pattern
        self.producer = producer
        self.description = description
        self.vault_variable = vault_variable
        self.length = length
        self.legacy = legacy
        # the users with a variable of their own: (variable naming the user, its role default,
        # the vault variable), and the words for any other user (``{user}`` filled in)
        self.users = users
        self.other_user = other_user

    @property
    def params(self):
        return tuple(re.findall(r"{(\w+)}", self.pattern))


KINDS = {
    "postgresql": Kind(
        "postgresql/{cluster}/{user}", "hardened.stack.postgresql",
        "the password of PostgreSQL role USER (superuser, replication, rewind, every postgresql_users entry)",
        "postgresql_superuser_password, postgresql_replication_password, postgresql_rewind_password "
        "or the postgresql_users entry's password",
        legacy=("{cluster}/{user}",),
        users=(("postgresql_superuser", "postgres", "postgresql_superuser_password"),
               ("postgresql_replication_user", "replicator", "postgresql_replication_password"),
               ("postgresql_rewind_user", "rewinder", "postgresql_rewind_password")),
        other_user="the password of the postgresql_users entry named {user}"),
    "patroni_api": Kind(
        "postgresql/{cluster}/patroni-api", "hardened.stack.postgresql",
        "the Patroni REST API password (postgresql_patroni_api_user)",
        "postgresql_patroni_api_password",
        legacy=("{cluster}/patroni-api",)),
    "redis": Kind(
        "redis/{cluster}/{user}", "hardened.stack.redis",
        "the password of Redis/Sentinel ACL user USER (app, replication, sentinel, exporter, admin)",
        "redis_<user>_password"),
    "monitoring": Kind(
        "monitoring/basic_auth", "hardened.stack.exporters",
        "the basic auth password of the exporters, Prometheus and Alertmanager",
        "exporters_auth_password (with prometheus_auth_password and alertmanager_auth_password)"),
    "backup_cipher": Kind(
        "backup/{stanza}/repo-cipher", "hardened.stack.backup",
        "the pgBackRest repository passphrase of STANZA", "backup_repo_cipher_pass", length=48,
        legacy=("backup/repo-cipher-{stanza}",)),
    "backup_user": Kind(
        "backup/{stanza}/{user}", "hardened.stack.backup",
        "the password of the pg_dump role USER of STANZA", "backup_pg_dump_password",
        legacy=("backup/{user}",)),
}


def controller_state(value=None):
    """``"local"`` (also for None or empty: the default) or ``"external"``; anything else is a
    :class:`SecretError` naming :data:`STATE_VAR`."""
    if value in (None, ""):
        return "local"
    text = (u"%s" % value).strip().lower()
    if text not in STATES:
        raise SecretError("%s is %r: it must be local (generate missing secrets and the CA on this "
                          "controller) or external (they are given; refuse to generate)" % (STATE_VAR, value))
    return text


def may_generate(state=None, switch=True):
    """Whether a producer may mint what is missing: its own switch (``*_generate_passwords``,
    ``pki_ca_create``) and the controller state both allow it."""
    return bool(switch) and controller_state(state) == "local"


def external_message(what, path_, variables, directory_variable):
    """A producer's refusal in the external state (no value involved): what is missing, where it
    was looked for and what to set instead."""
    return ("%s does not exist at %s and %s is external: nothing is generated on this controller. Set %s "
            "(in the vault file or the AWX credential, docs/secrets.md), or put the file there (%s), or "
            "set %s: local to generate it here."
            % (what, path_, STATE_VAR, variables, directory_variable, STATE_VAR))


def stand_in(kind):
    """Check mode: a value for a secret that does not exist yet, generated in memory for this one
    lookup and never written (a real run generates and stores its own)."""
    return generate(kind)


def secrets_dir(value=None):
    """The directory (``~`` expanded, absolute): ``value`` or :data:`DEFAULT_DIR`."""
    text = u"%s" % value if value not in (None, "") else DEFAULT_DIR
    return os.path.abspath(os.path.expanduser(text))


def _kind(kind):
    try:
        return KINDS[kind]
    except KeyError:
        raise SecretError("unknown secret kind %r (one of %s)" % (kind, ", ".join(sorted(KINDS))))


def _fill(kind, pattern, params):
    spec = _kind(kind)
    missing = [p for p in spec.params if params.get(p) in (None, "")]
    if missing:
        raise SecretError("secret %s needs %s" % (kind, ", ".join(missing)))
    extra = sorted(set(k for k, v in params.items() if v is not None) - set(spec.params))
    if extra:
        raise SecretError("secret %s takes no %s (its parameters: %s)"
                          % (kind, ", ".join(extra), ", ".join(spec.params) or "none"))
    for name in spec.params:
        value = u"%s" % params[name]
        if not _SEGMENT.match(value):
            raise SecretError("secret %s: %s %r cannot be a file name (letters, digits and _ . @ + -, "
                              "not starting with . or -)" % (kind, name, value))
    rel = pattern.format(**dict((k, u"%s" % params[k]) for k in spec.params))
    owner = identify(rel) if pattern == spec.pattern else None
    if owner is not None and owner[0] != kind:
        raise SecretError("secret %s: %s is the file of secret %s (%s); the name is reserved"
                          % (kind, rel, owner[0], KINDS[owner[0]].description))
    return rel


def _pattern_re(pattern):
    """A layout pattern as a regular expression; its parameters are named groups."""
    parts = re.split(r"{(\w+)}", pattern)
    return re.compile("^" + "".join("(?P<%s>[^/]+)" % part if i % 2 else re.escape(part)
                                    for i, part in enumerate(parts)) + "$")


def identify(rel):
    """``(kind, params)`` of a path relative to the directory (``redis/main/app``), or None when
    the layout has no such secret. A path two patterns match belongs to the one with fewer
    parameters: ``postgresql/main/patroni-api`` is the Patroni REST API password."""
    for kind in sorted(KINDS, key=lambda name: (len(KINDS[name].params), name)):
        match = _pattern_re(KINDS[kind].pattern).match(u"%s" % rel)
        if match and all(_SEGMENT.match(v) for v in match.groupdict().values()):
            return kind, match.groupdict()
    return None


def relpath(kind, **params):
    """The secret's path relative to the directory (``redis/main/app``)."""
    return _fill(kind, _kind(kind).pattern, params)


def path(kind, directory=None, **params):
    """The secret's absolute path on the controller."""
    return os.path.join(secrets_dir(directory), relpath(kind, **params))


def _legacy_paths(kind, directory, params):
    return [os.path.join(secrets_dir(directory), _fill(kind, pattern, params)) for pattern in _kind(kind).legacy]


def _decode(data, where):
    try:
        text = data.decode("utf-8")
    except UnicodeError:
        raise SecretError("%s is not UTF-8 text" % where)
    if text.endswith(u"\n"):
        text = text[:-1]
    # ansible.builtin.password appends " salt=..." (and " ident=..." for bcrypt) when it stored
    # a salt (generated values are letters and digits only, so the suffix cannot be part of one)
    match = _PASSWORD_LOOKUP.match(text)
    if match:
        text = match.group(1)
    if not text:
        raise SecretError("%s is empty" % where)
    return text


def _read_file(where, legacy=False):
    """The value stored in ``where``, None when there is no such file. A pre-contract location
    (``legacy``) that is a directory of the contract's layout counts as no file."""
    if legacy and not os.path.isfile(where):
        return None
    try:
        with open(where, "rb") as handle:
            return _decode(handle.read(), where)
    except (IOError, OSError) as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise SecretError("cannot read %s: %s" % (where, exc.strerror))


def _legacy_value(kind, directory, params):
    for old in _legacy_paths(kind, directory, params):
        value = _read_file(old, legacy=True)
        if value is not None:
            return value
    return None


def _described(spec, params):
    """The kind's description with its USER/CLUSTER/STANZA filled in."""
    text = spec.description
    for name in spec.params:
        if params.get(name) not in (None, ""):
            text = text.replace(name.upper(), u"%s" % params[name])
    return text


def user_variables(kind):
    """The variables naming the users that have a vault variable of their own (for the
    ``names`` of :func:`replacing_variable`): ``("postgresql_superuser", ...)`` for postgresql."""
    return tuple(variable for variable, _default, _vault in _kind(kind).users)


def replacing_variable(kind, names=None, **params):
    """The one variable (or entry) that replaces this secret, for messages: the PostgreSQL
    superuser's file is replaced by postgresql_superuser_password, an application role's by its
    postgresql_users entry, Redis user USER's by redis_USER_password. ``names``: the values of
    :func:`user_variables` where the caller knows them (the inventory's), the role defaults
    otherwise."""
    spec = _kind(kind)
    user = params.get("user")
    if user in (None, ""):
        return spec.vault_variable
    user = u"%s" % user
    if spec.users:
        names = names or {}
        for variable, default, vault in spec.users:
            given = names.get(variable)
            if user == (u"%s" % given if given not in (None, "") else default):
                return vault
        if spec.other_user:
            return spec.other_user.format(user=user)
    return spec.vault_variable.replace("<user>", user)


def missing_message(kind, directory=None, vault_variable=None, **params):
    """What a consumer says when the secret does not exist (no value involved): the producing
    role and the one variable that replaces the file (``vault_variable``, the caller's, else
    :func:`replacing_variable`)."""
    spec = _kind(kind)
    return ("secret %s does not exist (%s). It is created by the %s role: run it first (site.yml does), "
            "or set %s from a vault (and point %s at another directory if the file lives elsewhere)."
            % (path(kind, directory, **params), _described(spec, params), spec.producer,
               vault_variable or replacing_variable(kind, **params), DIR_VAR))


def read(kind, directory=None, vault_variable=None, check_mode=False, state=None, **params):
    """The stored value; never creates. Raises :class:`SecretError` naming the producing role
    and the vault variable when the file is missing (a pre-contract file is read too). In check
    mode with the local state a missing file gives a :func:`stand_in` (its producer, in check
    mode too, wrote nothing); with the external state it is the same error as in a real run."""
    external = controller_state(state) == "external"
    target = path(kind, directory, **params)
    value = _read_file(target)
    if value is None:
        value = _legacy_value(kind, directory, params)
    if value is None:
        if check_mode and not external:
            return stand_in(kind)
        raise SecretError(missing_message(kind, directory, vault_variable, **params))
    return value


def exists(kind, directory=None, **params):
    """Whether the secret is stored (at the contract's path or a pre-contract one)."""
    return (_read_file(path(kind, directory, **params)) is not None
            or _legacy_value(kind, directory, params) is not None)


def generate(kind):
    """A new value with the kind's rule (letters and digits, 32 or 48 characters)."""
    rng = random.SystemRandom()
    return u"".join(rng.choice(_ALNUM) for dummy in range(_kind(kind).length))


def _makedirs(folder):
    """Create ``folder`` and every missing parent with mode 0700 (``os.makedirs`` gives the
    parents the umask's mode: the secrets directory itself would be world-readable)."""
    if os.path.isdir(folder):
        return
    parent = os.path.dirname(folder)
    if parent and parent != folder:
        _makedirs(parent)
    try:
        os.mkdir(folder, 0o700)
    except OSError as exc:
        if exc.errno != errno.EEXIST or not os.path.isdir(folder):
            raise SecretError("cannot create %s: %s" % (folder, exc.strerror))


def _stored_form(value):
    """``value`` + a line feed, refused when :func:`read` would not give ``value`` back."""
    if not value or u"\x00" in value:
        raise SecretError("a secret cannot be empty or hold a NUL character")
    try:
        same = _decode((value + u"\n").encode("utf-8"), "the value") == value
    except (SecretError, UnicodeError):
        same = False
    if not same:
        raise SecretError("this value would not read back unchanged (it looks like an ansible.builtin.password "
                          "file with a salt)")
    return (value + u"\n").encode("utf-8")


def _write_new(target, value):
    """Write ``value`` to ``target`` unless it exists; True when this call created it."""
    folder = os.path.dirname(target)
    _makedirs(folder)
    data = _stored_form(value)
    fd, tmp = tempfile.mkstemp(prefix=".new-", dir=folder)
    try:
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = None
        try:
            os.link(tmp, target)  # atomic, and never replaces what another producer wrote
            return True
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise SecretError("cannot write %s: %s" % (target, exc.strerror))
    finally:
        if fd is not None:
            os.close(fd)
        os.unlink(tmp)


def produce(kind, directory=None, state=None, check_mode=False, vault_variable=None, **params):
    """The stored value, created with :func:`generate` when missing (a pre-contract file is
    copied to the contract's path instead). Concurrent producers get the same value.

    ``state`` external (:func:`controller_state`): a missing file is a :class:`SecretError`
    naming ``vault_variable`` (default :func:`replacing_variable`), nothing generated. In
    ``check_mode`` nothing is written: a pre-contract value is returned where it is, a missing
    one is a :func:`stand_in`."""
    external = controller_state(state) == "external"
    target = path(kind, directory, **params)
    value = _read_file(target)
    if value is not None:
        return value
    value = _legacy_value(kind, directory, params)
    if value is None and external:
        raise SecretError(external_message(
            "secret %s (%s)" % (relpath(kind, **params), _described(_kind(kind), params)), target,
            vault_variable or replacing_variable(kind, **params), DIR_VAR))
    if check_mode:
        return value if value is not None else stand_in(kind)
    if value is None:
        value = generate(kind)
    _write_new(target, value)
    return _read_file(target)


def replace(kind, value=None, directory=None, **params):
    """Rotation: store ``value`` (default: a new generated one) in place of the current file,
    atomically (rename), and return it."""
    target = path(kind, directory, **params)
    value = generate(kind) if value is None else u"%s" % value
    data = _stored_form(value)
    folder = os.path.dirname(target)
    _makedirs(folder)
    fd, tmp = tempfile.mkstemp(prefix=".new-", dir=folder)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, target)
    except (IOError, OSError) as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise SecretError("cannot write %s: %s" % (target, exc.strerror))
    return value


# The variables a secret of the layout is exported to (secrets_export): the role variable of the
# vault table first, then the consumers' variables that must hold the same value; a user with a
# variable of their own is found by the names given to export_variables (role defaults else).
_CONSUMERS = (
    # (kind, variable naming the user, its role default, consumer variable)
    ("postgresql", "app_db_user", "app", "app_db_password"),
    ("redis", "app_redis_user", "app", "app_redis_password"),
    ("redis", "app_sentinel_user", "", "app_sentinel_password"),
    ("redis", None, "exporter", "exporters_redis_password"),
)
_EXPORTED = {"patroni_api": "postgresql_patroni_api_password", "monitoring": "exporters_auth_password",
             "backup_cipher": "backup_repo_cipher_pass", "backup_user": "backup_pg_dump_password"}


def stored(directory=None):
    """``[(relative path, kind, params)]`` of every secret stored under the directory, by the
    layout (temporary files of a write in progress and anything else are left out)."""
    root = secrets_dir(directory)
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(folder, name), root)
            found = None if name.startswith(".") else identify(rel)
            if found is not None:
                out.append((rel, found[0], found[1]))
    return out


# Where the variables the export may write are read (the first host of the group whose roles read
# them): a value the inventory gives there is not exported, and its consumers get it.
EXPORT_SOURCES = (
    ("postgres", ("postgresql_superuser_password", "postgresql_replication_password", "postgresql_rewind_password",
                  "postgresql_patroni_api_password", "backup_pg_dump_password")),
    ("redis", ("redis_app_password", "redis_replication_password", "redis_sentinel_password",
               "redis_exporter_password", "redis_admin_password", "exporters_redis_password")),
    ("app", ("app_db_password", "app_redis_password", "app_sentinel_password")),
    ("monitoring", ("exporters_auth_password",)),
    ("backup", ("backup_repo_cipher_pass", "backup_pg_dump_password")),
)


def _given(value):
    return value not in (None, "") and not isinstance(value, (dict, list))


def export_variables(directory=None, names=None, postgresql_users=None, given=None):
    """``(variables, left)``: every stored secret under the variable a role reads instead of its
    file (the vault table of docs/secrets.md) and the consumers' variables of the same value
    (``app_db_password`` ...); ``left`` lists the paths that have no variable (a PostgreSQL role
    that is no ``postgresql_users`` entry). ``names``: the inventory's user-name variables
    (``postgresql_superuser``, ``app_db_user`` ...). ``postgresql_users``: the inventory's list;
    it is returned with each entry's stored password filled in where the entry has none.
    Two files for one variable (two clusters, sets or stanzas) are a :class:`SecretError`:
    the vault table's variables hold one value each. ``given``: the inventory's own values of
    these variables (``{variable: value}``). A variable the inventory gives is not exported (the
    inventory keeps giving it; its file is stale, the role does not read it), and a consumer of
    that secret (``app_redis_password`` of ``redis_app_password``...) gets the given value, as
    does a consumer of a ``postgresql_users`` entry that has a password."""
    names = dict(names or {})
    given = dict((k, v) for k, v in (given or {}).items() if _given(v))
    out, source, left, entries = {}, {}, [], {}
    passwords = dict((u.get("name"), u.get("password")) for u in postgresql_users or []
                     if isinstance(u, dict) and _given(u.get("password")))

    def put(variable, value, rel):
        if variable in given:
            return
        if variable in out and out[variable] != value:
            raise SecretError("%s and %s would both be %s: export an inventory with one PostgreSQL cluster, Redis "
                              "set and pgBackRest stanza per secrets directory" % (source[variable], rel, variable))
        out[variable], source[variable] = value, rel

    for rel, kind, params in stored(directory):
        value = _read_file(os.path.join(secrets_dir(directory), rel))
        if kind in _EXPORTED:
            put(_EXPORTED[kind], value, rel)
            continue
        variable = replacing_variable(kind, names, **params)
        if re.match(r"^[a-z_]+$", variable):
            put(variable, value, rel)
            current = given.get(variable, value)
        else:
            if params["user"] not in passwords:
                entries[params["user"]] = (value, rel)
            current = passwords.get(params["user"], value)
        for consumer_kind, user_var, default, consumer in _CONSUMERS:
            user = names.get(user_var) if user_var else None
            user = default if user in (None, "") else user
            if consumer_kind == kind and user and params.get("user") == user:
                put(consumer, current, rel)
    users = []
    for entry in postgresql_users or []:
        entry = dict(entry)
        if not entry.get("password") and entry.get("name") in entries:
            entry["password"] = entries.pop(entry["name"])[0]
        users.append(entry)
    if users:
        out["postgresql_users"] = users
    left.extend(rel for _user, (_value, rel) in sorted(entries.items()))
    return out, left


def layout():
    """``[(path pattern, kind, producer, description, vault variable, length)]`` for the docs."""
    return [(KINDS[k].pattern, k, KINDS[k].producer, KINDS[k].description, KINDS[k].vault_variable,
             KINDS[k].length) for k in sorted(KINDS, key=lambda name: KINDS[name].pattern)]
