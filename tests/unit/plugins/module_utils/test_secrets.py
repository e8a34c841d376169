"""The secrets contract (plugins/module_utils/secrets.py): one directory, one layout, producers
create once (atomically, private), consumers only read and name who makes the file and which
vault variable replaces it; files of the pre-contract layout are adopted; rotation replaces a
file atomically."""

import multiprocessing
import os
import stat
import string
import threading

import pytest
import yaml
from ansible_collections.hardened.stack.plugins.module_utils import secrets

# One example of every kind's parameters, and where the contract puts it.
EXAMPLES = {
    "postgresql": ({"cluster": "main", "user": "app"}, "postgresql/main/app"),
    "patroni_api": ({"cluster": "main"}, "postgresql/main/patroni-api"),
    "redis": ({"cluster": "cache", "user": "sentinel"}, "redis/cache/sentinel"),
    "monitoring": ({}, "monitoring/basic_auth"),
    "backup_cipher": ({"stanza": "hs"}, "backup/hs/repo-cipher"),
    "backup_user": ({"stanza": "hs", "user": "pgdump"}, "backup/hs/pgdump"),
}
# Files the roles wrote before the contract (relative to the old per-role directories, which
# the contract's directory replaces), per kind: (old path, parameters).
LEGACY = {
    "postgresql": ("main/app", {"cluster": "main", "user": "app"}),
    "patroni_api": ("main/patroni-api", {"cluster": "main"}),
    "backup_cipher": ("backup/repo-cipher-hs", {"stanza": "hs"}),
    "backup_user": ("backup/pgdump", {"stanza": "hs", "user": "pgdump"}),
}
ALNUM = set(string.ascii_letters + string.digits)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def tree(root):
    """Every path under ``root`` (relative), directories with a trailing slash."""
    out = set()
    for folder, dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        out.update(os.path.normpath(os.path.join(rel, d)) + "/" for d in dirs)
        out.update(os.path.normpath(os.path.join(rel, f)) for f in files)
    return out


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


# --- the layout ----------------------------------------------------------------------------

def test_every_kind_has_an_example_and_its_documented_path():
    assert set(EXAMPLES) == set(secrets.KINDS)
    for kind, (params, rel) in EXAMPLES.items():
        assert secrets.relpath(kind, **params) == rel
        assert secrets.path(kind, "/srv/secrets", **params) == "/srv/secrets/" + rel


def test_layout_lists_every_kind_once_sorted_by_path_with_producer_and_vault_variable():
    rows = secrets.layout()
    assert [r[1] for r in rows] == sorted(secrets.KINDS, key=lambda k: secrets.KINDS[k].pattern)
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    for pattern, kind, producer, description, vault, length in rows:
        spec = secrets.KINDS[kind]
        assert (pattern, producer, description, vault, length) == (
            spec.pattern, spec.producer, spec.description, spec.vault_variable, spec.length)
        assert producer.startswith("hardened.stack.") and vault and description
    assert dict((r[1], r[5]) for r in rows)["backup_cipher"] == 48


def test_no_two_kinds_can_name_the_same_file():
    """A PostgreSQL role named patroni-api, or a pg_dump user named repo-cipher, would share a
    file with another secret: the fixed name belongs to that secret and the user is refused."""
    params = {"cluster": "x", "user": "patroni-api", "stanza": "x"}
    assert secrets.relpath("patroni_api", cluster="x") == "postgresql/x/patroni-api"
    with pytest.raises(secrets.SecretError) as err:
        secrets.relpath("postgresql", **dict((p, params[p]) for p in ("cluster", "user")))
    assert "postgresql/x/patroni-api is the file of secret patroni_api" in str(err.value)
    assert secrets.relpath("backup_cipher", stanza="x") == "backup/x/repo-cipher"
    with pytest.raises(secrets.SecretError) as err:
        secrets.relpath("backup_user", stanza="x", user="repo-cipher")
    assert "backup/x/repo-cipher is the file of secret backup_cipher" in str(err.value)
    # every other combination names a file of its own
    names = ("x", "y", "patroni-api", "repo-cipher", "basic_auth")
    seen = {}
    for kind, spec in secrets.KINDS.items():
        for a in names:
            for b in names:
                values = dict(zip(spec.params, (a, b)[:len(spec.params)], strict=True))
                try:
                    rel = secrets.relpath(kind, **values)
                except secrets.SecretError:
                    continue
                assert seen.setdefault(rel, (kind, values)) == (kind, values), rel


def test_identify_is_the_inverse_of_relpath():
    for kind, (params, rel) in EXAMPLES.items():
        assert secrets.identify(rel) == (kind, params)
    assert secrets.identify("postgresql/main/patroni-api") == ("patroni_api", {"cluster": "main"})
    assert secrets.identify("backup/hs/repo-cipher") == ("backup_cipher", {"stanza": "hs"})
    # not secrets of the layout: pre-contract files, a producer's temporary file, other depths
    for rel in ("hs/app", "backup/repo-cipher-hs", "redis/main/.new-x1y2", "redis/main", "monitoring/other",
                "redis/a/b/c", "postgresql/main/app/x"):
        assert secrets.identify(rel) is None, rel


def test_default_directory_is_under_home_and_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert secrets.secrets_dir() == str(tmp_path / ".hardened-stack" / "secrets")
    assert secrets.secrets_dir("") == secrets.secrets_dir(None) == secrets.secrets_dir()
    assert secrets.secrets_dir("~/vaulted") == str(tmp_path / "vaulted")
    assert secrets.path("monitoring") == str(tmp_path / ".hardened-stack" / "secrets" / "monitoring" / "basic_auth")


def test_a_relative_directory_is_made_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert secrets.path("monitoring", "job/secrets") == str(tmp_path / "job" / "secrets" / "monitoring" / "basic_auth")


# --- parameter validation --------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "params", "message"), [
    ("mysql", {}, "unknown secret kind 'mysql' (one of backup_cipher, backup_user, monitoring, patroni_api, "
                  "postgresql, redis)"),
    ("postgresql", {"cluster": "main"}, "secret postgresql needs user"),
    ("postgresql", {"cluster": "", "user": ""}, "secret postgresql needs cluster, user"),
    ("backup_cipher", {}, "secret backup_cipher needs stanza"),
    ("monitoring", {"cluster": "main"}, "secret monitoring takes no cluster (its parameters: none)"),
    ("patroni_api", {"cluster": "main", "user": "x"}, "secret patroni_api takes no user (its parameters: cluster)"),
    ("redis", {"cluster": "..", "user": "app"}, "secret redis: cluster '..' cannot be a file name"),
    ("redis", {"cluster": "a/b", "user": "app"}, "cluster 'a/b' cannot be a file name"),
    ("redis", {"cluster": "main", "user": ".hidden"}, "user '.hidden' cannot be a file name"),
    ("redis", {"cluster": "main", "user": "-x"}, "user '-x' cannot be a file name"),
    ("redis", {"cluster": "main", "user": "a b"}, "user 'a b' cannot be a file name"),
    ("redis", {"cluster": "main", "user": "a\nb"}, "cannot be a file name"),
])
def test_parameters_are_checked_before_any_file_is_touched(tmp_path, kind, params, message):
    for call in (secrets.path, secrets.read, secrets.produce, secrets.replace):
        with pytest.raises(secrets.SecretError) as err:
            call(kind, directory=str(tmp_path), **params)
        assert message in str(err.value), call
    assert not tree(str(tmp_path))


def test_parameters_that_are_none_count_as_absent(tmp_path):
    """The lookup passes every option (cluster, user, stanza); unset ones are None."""
    assert secrets.relpath("monitoring", cluster=None, user=None, stanza=None) == "monitoring/basic_auth"
    assert secrets.relpath("redis", cluster="c", user="app", stanza=None) == "redis/c/app"


def test_names_the_layout_allows():
    for name in ("hardened-stack", "pg_15", "app.ro", "svc@prod", "a+b", "_x", "9"):
        assert secrets.relpath("postgresql", cluster=name, user=name) == "postgresql/%s/%s" % (name, name)


# --- read: never creates -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_read_of_a_missing_secret_names_producer_and_vault_variable_and_creates_nothing(tmp_path, kind):
    params, rel = EXAMPLES[kind]
    with pytest.raises(secrets.SecretError) as err:
        secrets.read(kind, str(tmp_path), **params)
    text = str(err.value)
    spec = secrets.KINDS[kind]
    assert str(tmp_path / rel) in text
    assert "created by the %s role" % spec.producer in text
    # the one variable of this secret (redis_<user>_password -> redis_sentinel_password; the
    # postgresql_users entry of an application role), never the kind's whole list
    assert "set %s from a vault" % secrets.replacing_variable(kind, **params) in text
    assert "<user>" not in text and " or the postgresql_users entry's password" not in text
    assert "hardened_stack_secrets_dir" in text
    assert not tree(str(tmp_path))


def test_read_names_the_callers_vault_variable(tmp_path):
    with pytest.raises(secrets.SecretError) as err:
        secrets.read("redis", str(tmp_path), vault_variable="redis_sentinel_password", cluster="redis", user="sentinel")
    assert "set redis_sentinel_password from a vault" in str(err.value)
    assert "redis_<user>_password" not in str(err.value)
    assert secrets.missing_message("redis", str(tmp_path), "redis_sentinel_password", cluster="redis",
                                   user="sentinel") in str(err.value)


# The PostgreSQL role's own users have a vault variable each; any other role is a postgresql_users
# entry (the tryout: every missing postgresql secret listed all four variables).
PG_USERS = [
    ("postgres", None, "postgresql_superuser_password"),
    ("replicator", None, "postgresql_replication_password"),
    ("rewinder", None, "postgresql_rewind_password"),
    ("app", None, "the password of the postgresql_users entry named app"),
    # the inventory renamed the superuser: its name, not the default, decides
    ("pgadmin", {"postgresql_superuser": "pgadmin"}, "postgresql_superuser_password"),
    ("postgres", {"postgresql_superuser": "pgadmin"}, "the password of the postgresql_users entry named postgres"),
]


@pytest.mark.parametrize("user, names, expected", PG_USERS)
def test_a_missing_postgresql_secret_names_the_one_variable_of_its_user(tmp_path, user, names, expected):
    assert secrets.replacing_variable("postgresql", names, cluster="main", user=user) == expected
    text = secrets.missing_message("postgresql", str(tmp_path), secrets.replacing_variable(
        "postgresql", names, cluster="main", user=user), cluster="main", user=user)
    assert "or set %s from a vault" % expected in text
    others = {"postgresql_superuser_password", "postgresql_replication_password", "postgresql_rewind_password"}
    assert [v for v in others if v in text] == ([expected] if expected in others else [])
    if names is None:
        with pytest.raises(secrets.SecretError) as err:
            secrets.read("postgresql", str(tmp_path), cluster="main", user=user)
        assert "or set %s from a vault" % expected in str(err.value)


def test_the_users_with_a_variable_of_their_own_are_the_postgresql_roles_defaults():
    """secrets.py names them by the role defaults when the caller does not know the inventory's
    names: they must be the postgresql role's defaults."""
    with open(os.path.join(os.path.dirname(secrets.__file__), "..", "..", "roles", "postgresql", "defaults",
                           "main.yml"), encoding="utf-8") as fh:
        defaults = yaml.safe_load(fh)
    assert secrets.user_variables("postgresql") == (
        "postgresql_superuser", "postgresql_replication_user", "postgresql_rewind_user")
    for variable, default, vault in secrets.KINDS["postgresql"].users:
        assert defaults[variable] == default and vault in defaults
    assert secrets.user_variables("redis") == ()
    assert secrets.replacing_variable("redis", cluster="c", user="admin") == "redis_admin_password"
    assert secrets.replacing_variable("backup_user", stanza="s", user="pgdump") == "backup_pg_dump_password"


def test_read_in_a_directory_that_does_not_exist_creates_nothing(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(secrets.SecretError):
        secrets.read("monitoring", str(missing))
    assert not os.path.exists(str(tmp_path / "no"))


def test_read_returns_the_value_without_its_final_line_feed_only(tmp_path):
    cases = {
        b"abc\n": "abc",
        b"abc": "abc",
        b"  spaced out  \n": "  spaced out  ",
        b"two\n\n": "two\n",
        "p\u00e4ss w\u00f6rd \"'$#%!\\\n".encode(): "p\u00e4ss w\u00f6rd \"'$#%!\\",
    }
    for data, want in cases.items():
        write(str(tmp_path / "monitoring" / "basic_auth"), data)
        assert secrets.read("monitoring", str(tmp_path)) == want


@pytest.mark.parametrize(("data", "message"), [(b"", "is empty"), (b"\n", "is empty"),
                                               (b"\xff\xfe\n", "is not UTF-8 text")])
def test_an_empty_or_binary_file_is_an_error_not_a_password(tmp_path, data, message):
    write(str(tmp_path / "monitoring" / "basic_auth"), data)
    for call in (secrets.read, secrets.produce):
        with pytest.raises(secrets.SecretError) as err:
            call("monitoring", str(tmp_path))
        assert message in str(err.value)
        assert str(tmp_path / "monitoring" / "basic_auth") in str(err.value)


def test_a_directory_in_place_of_the_file_is_an_error(tmp_path):
    os.makedirs(str(tmp_path / "monitoring" / "basic_auth"))
    with pytest.raises(secrets.SecretError) as err:
        secrets.read("monitoring", str(tmp_path))
    assert "cannot read" in str(err.value)


# --- produce: once, atomic, private ------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_produce_creates_once_with_the_kinds_rule_and_reuses(tmp_path, kind):
    params, rel = EXAMPLES[kind]
    first = secrets.produce(kind, str(tmp_path), **params)
    assert len(first) == secrets.KINDS[kind].length and set(first) <= ALNUM
    assert secrets.produce(kind, str(tmp_path), **params) == first
    assert secrets.read(kind, str(tmp_path), **params) == first
    with open(str(tmp_path / rel), encoding="utf-8") as fh:
        assert fh.read() == first + "\n"
    assert tree(str(tmp_path)) == {rel} | {p + "/" for p in _parents(rel)}


def _parents(rel):
    parts = rel.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def test_generated_values_differ():
    values = {secrets.generate("redis") for dummy in range(50)}
    assert len(values) == 50
    assert all(len(v) == 32 and set(v) <= ALNUM for v in values)
    assert len(secrets.generate("backup_cipher")) == 48


def test_produce_makes_the_file_0600_and_every_directory_it_creates_0700(tmp_path):
    old = os.umask(0o022)
    try:
        root = tmp_path / "home" / ".hardened-stack" / "secrets"
        secrets.produce("redis", str(root), cluster="main", user="app")
    finally:
        os.umask(old)
    assert mode(str(root / "redis" / "main" / "app")) == 0o600
    for folder in (tmp_path / "home", tmp_path / "home" / ".hardened-stack", root, root / "redis",
                   root / "redis" / "main"):
        assert mode(str(folder)) == 0o700, folder


def test_produce_leaves_an_existing_directorys_mode_alone(tmp_path):
    os.chmod(str(tmp_path), 0o750)  # noqa: S103 (a directory the user made readable for a group)
    secrets.produce("monitoring", str(tmp_path))
    assert mode(str(tmp_path)) == 0o750
    assert mode(str(tmp_path / "monitoring")) == 0o700


def test_produce_keeps_a_value_the_user_put_there(tmp_path):
    write(str(tmp_path / "redis" / "main" / "admin"), "my own \u00e9 pass\n".encode())
    assert secrets.produce("redis", str(tmp_path), cluster="main", user="admin") == "my own \u00e9 pass"


def test_concurrent_producers_in_threads_agree_on_one_value(tmp_path):
    count = 24
    barrier = threading.Barrier(count)
    results, errors = [], []

    def producer():
        try:
            barrier.wait()
            results.append(secrets.produce("redis", str(tmp_path), cluster="main", user="app"))
        except Exception as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=producer) for dummy in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(results) == count and len(set(results)) == 1
    assert secrets.read("redis", str(tmp_path), cluster="main", user="app") == results[0]
    assert tree(str(tmp_path)) == {"redis/", "redis/main/", "redis/main/app"}  # no temporary file left


def _race(args):
    directory, start = args
    start.wait()
    # many secrets in the same order: every one of them is raced for
    return [secrets.produce("backup_user", directory, stanza="hs", user="u%d" % i) for i in range(40)]


def test_concurrent_producers_in_processes_agree_on_one_value(tmp_path):
    """Ansible's forks: one process per host, each running the producer's lookup."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(8) as pool:
            pending = pool.map_async(_race, [(str(tmp_path), start)] * 8, chunksize=1)
            start.set()
            results = pending.get(60)
    assert all(r == results[0] for r in results)
    assert [secrets.read("backup_user", str(tmp_path), stanza="hs", user="u%d" % i) for i in range(40)] == results[0]
    assert tree(str(tmp_path)) == {"backup/", "backup/hs/"} | {"backup/hs/u%d" % i for i in range(40)}


# --- pre-contract files ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(LEGACY))
def test_a_pre_contract_file_is_read_in_place_and_adopted_by_the_producer(tmp_path, kind):
    old, params = LEGACY[kind]
    write(str(tmp_path / old), b"OldValue123\n")
    assert secrets.read(kind, str(tmp_path), **params) == "OldValue123"
    assert not os.path.exists(secrets.path(kind, str(tmp_path), **params))  # read never writes
    assert secrets.produce(kind, str(tmp_path), **params) == "OldValue123"
    new = secrets.path(kind, str(tmp_path), **params)
    with open(new, encoding="utf-8") as fh:
        assert fh.read() == "OldValue123\n"
    assert mode(new) == 0o600
    assert os.path.exists(str(tmp_path / old))  # left in place: an older checkout still reads it


def test_the_contracts_file_wins_over_a_pre_contract_one(tmp_path):
    write(str(tmp_path / "main" / "app"), b"old\n")
    write(str(tmp_path / "postgresql" / "main" / "app"), b"new\n")
    assert secrets.read("postgresql", str(tmp_path), cluster="main", user="app") == "new"
    assert secrets.produce("postgresql", str(tmp_path), cluster="main", user="app") == "new"


@pytest.mark.parametrize(("stored", "value"), [
    (b"Abc123 salt=Xy./z0\n", "Abc123"),
    (b"Abc123 salt=Xy./z0 ident=2b\n", "Abc123"),
    (b"Abc123 salt=\n", "Abc123"),
    # Not written by ansible.builtin.password (its values are letters and digits): kept whole.
    (b"my pass salt=x\n", "my pass salt=x"),
    (b"Abc123 salt=a b\n", "Abc123 salt=a b"),
])
def test_ansible_password_lookups_salt_suffix_is_dropped(tmp_path, stored, value):
    write(str(tmp_path / "hs" / "app"), stored)
    assert secrets.read("postgresql", str(tmp_path), cluster="hs", user="app") == value
    assert secrets.produce("postgresql", str(tmp_path), cluster="hs", user="app") == value
    with open(secrets.path("postgresql", str(tmp_path), cluster="hs", user="app"), encoding="utf-8") as fh:
        assert fh.read() == value + "\n"


def test_a_salted_file_at_the_contracts_own_path_is_read_without_the_salt(tmp_path):
    """The redis and monitoring files kept their paths: the old lookup's files are there."""
    write(str(tmp_path / "redis" / "redis" / "app"), b"Abc123 salt=s0m3salt\n")
    assert secrets.read("redis", str(tmp_path), cluster="redis", user="app") == "Abc123"


def test_a_pre_contract_path_that_is_now_a_directory_is_not_a_file(tmp_path):
    """A PostgreSQL cluster named 'redis' has the pre-contract path redis/USER, which is the
    Redis set USER's directory in the contract's layout: not a password."""
    secrets.produce("redis", str(tmp_path), cluster="app", user="admin")
    with pytest.raises(secrets.SecretError) as err:
        secrets.read("postgresql", str(tmp_path), cluster="redis", user="app")
    assert "does not exist" in str(err.value)
    value = secrets.produce("postgresql", str(tmp_path), cluster="redis", user="app")
    assert len(value) == 32


# --- replace: rotation ------------------------------------------------------------------------

def test_replace_stores_a_new_generated_value_atomically(tmp_path):
    old = secrets.produce("redis", str(tmp_path), cluster="main", user="app")
    target = secrets.path("redis", str(tmp_path), cluster="main", user="app")
    inode = os.stat(target).st_ino
    new = secrets.replace("redis", directory=str(tmp_path), cluster="main", user="app")
    assert new != old and len(new) == 32 and set(new) <= ALNUM
    assert secrets.read("redis", str(tmp_path), cluster="main", user="app") == new
    assert os.stat(target).st_ino != inode  # a new file renamed over the old one, never rewritten
    assert mode(target) == 0o600
    assert tree(str(tmp_path)) == {"redis/", "redis/main/", "redis/main/app"}


def test_replace_stores_a_given_value_and_creates_a_missing_file(tmp_path):
    awkward = " sp\u00e4ces \"quotes\" 'single' $HOME #hash %p !bang \\back "
    assert secrets.replace("postgresql", awkward, str(tmp_path), cluster="c", user="u") == awkward
    assert secrets.read("postgresql", str(tmp_path), cluster="c", user="u") == awkward
    assert mode(str(tmp_path / "postgresql")) == 0o700
    assert mode(str(tmp_path / "postgresql" / "c" / "u")) == 0o600


@pytest.mark.parametrize("value", ["", "a\x00b", "Abc123 salt=xyz"])
def test_replace_refuses_a_value_that_would_not_read_back(tmp_path, value):
    secrets.replace("monitoring", "before", str(tmp_path))
    with pytest.raises(secrets.SecretError):
        secrets.replace("monitoring", value, str(tmp_path))
    assert secrets.read("monitoring", str(tmp_path)) == "before"
    assert tree(str(tmp_path)) == {"monitoring/", "monitoring/basic_auth"}


def test_readers_see_the_old_or_the_new_value_never_a_partial_one(tmp_path):
    secrets.replace("monitoring", "A" * 4096, str(tmp_path))
    stop = threading.Event()
    seen = set()

    def reader():
        while not stop.is_set():
            seen.add(secrets.read("monitoring", str(tmp_path)))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for letter in "BCDEFGH":
            secrets.replace("monitoring", letter * 4096, str(tmp_path))
    finally:
        stop.set()
        t.join(10)
    assert seen <= {c * 4096 for c in "ABCDEFGH"}
