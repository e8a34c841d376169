"""Debian's own programs for the unit tests that run real servers on loopback: the one way
tests (and tests/run.py) get them.

Two kinds:

- ``INSTALLED``: packages installed on the controller with apt (libraries for Debian's
  /usr/bin/python3, PostgreSQL, Redis, pgBackRest). ``tests/run.py pytest`` installs them
  before pytest runs; a test that needs a missing one is skipped with the ``apt-get install``
  line (``needs``), and the pytest stage fails on any skip.
- ``UNPACKED``: server packages that are never installed on the controller (no service, no
  maintainer script, no port taken): ``apt-get download`` + ``dpkg-deb -x`` into
  ``<HSLAB_CACHE>/debs/<package>`` (default ``~/.cache/hardened-stack/debs``), once.
  ``unpacked``/``binary`` fetch on first use; ``tests/run.py pytest`` fetches them all first
  (``fetch``), so a download failure is reported before any test runs. An unpacked package
  brings none of its dependencies: every one listed here needs only libraries a Debian 12
  base system has (``fetch`` runs each binary once to prove it).

Versions are Debian 12's, the release the hosts run: nginx 1.22, Prometheus 2.42,
Alertmanager 0.25, node exporter 1.5, PostgreSQL 15, Redis 7.0, pgBackRest 2.45.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from lab.platform import CACHE_ROOT

CACHE = os.path.join(CACHE_ROOT, "debs")
PYTHON = "/usr/bin/python3"  # Debian's interpreter, as on the hosts (not the controller venv's)
POSTGRESQL_BIN = "/usr/lib/postgresql/15/bin"
MARKER = ".deb"  # in an unpacked package's root: the .deb it came from, written last

# Installed with apt (tests/run.py): package -> the files the tests use, and which tests.
INSTALLED = {
    # test_redis_sentinel, test_redis_rotation, test_encode (Redis), test_app_demo_passwords
    "redis-server": ("/usr/bin/redis-server",),
    "redis-sentinel": ("/usr/bin/redis-sentinel",),
    # test_app_demo_passwords (ACL changes); a dependency of redis-server
    "redis-tools": ("/usr/bin/redis-cli",),
    # test_encode_formats (repo1-cipher-pass)
    "pgbackrest": ("/usr/bin/pgbackrest",),
    # test_encode_postgres, test_app_demo_passwords: a throw-away server of their own (initdb,
    # own port, own socket directory); postgresql-common also creates the `postgres` account
    # the server runs as when the tests run as root.
    "postgresql-15": tuple(os.path.join(POSTGRESQL_BIN, b) for b in ("initdb", "pg_ctl", "postgres")),
    # test_encode_postgres (libpq's own psql); a dependency of postgresql-15
    "postgresql-client-15": (os.path.join(POSTGRESQL_BIN, "psql"),),
    # Debian's interpreter and libraries, as the hosts run the demo app and the bcrypt script
    "python3": (PYTHON,),
    "python3-psycopg2": ("/usr/lib/python3/dist-packages/psycopg2/__init__.py",),  # test_app_demo_passwords
    "python3-redis": ("/usr/lib/python3/dist-packages/redis/__init__.py",),  # test_app_demo_passwords
    # test_monitoring_basic_auth (auth_users.yml's script), test_encode_nginx (htpasswd hashes);
    # installed, not unpacked: it needs python3-cffi-backend, which unpacking does not bring
    "python3-bcrypt": ("/usr/lib/python3/dist-packages/bcrypt/__init__.py",),
}

# Unpacked, never installed: package -> (files the tests use, the command that proves the
# first one runs here).
UNPACKED = {
    # test_encode_formats, test_monitoring_basic_auth; promtool: tests/run.py promtool
    "prometheus": (("usr/bin/prometheus", "usr/bin/promtool"), ("--version",)),
    # test_encode_formats; the binary reads its templates from /usr/share/prometheus/alertmanager
    # (Debian's build), see alertmanager_command
    "prometheus-alertmanager": (("usr/bin/prometheus-alertmanager", "usr/share/prometheus/alertmanager/default.tmpl"),
                                ("--version",)),
    # test_monitoring_basic_auth
    "prometheus-node-exporter": (("usr/bin/prometheus-node-exporter",), ("--version",)),
    # test_encode_nginx, test_monitoring_basic_auth
    "nginx": (("usr/sbin/nginx",), ("-v",)),
}


class Unavailable(Exception):
    """A Debian package or one of its files cannot be had (the message says what to do)."""


def missing(*packages: str) -> list[str]:
    """The ``INSTALLED`` packages among ``packages`` (all of them when none is given) with a
    file absent."""
    return [p for p in packages or INSTALLED if not all(os.path.exists(f) for f in INSTALLED[p])]


def needs(*packages: str):
    """A pytest mark: skip, naming the ``apt-get install`` line, unless every one of the
    ``INSTALLED`` ``packages`` is there."""
    import pytest

    gone = missing(*packages)
    return pytest.mark.skipif(bool(gone), reason="needs Debian packages: apt-get install " + " ".join(gone))


def _download(package: str, folder: str) -> str:
    """``apt-get download package`` into ``folder``; the .deb's path. Stale or absent package
    lists are refreshed once."""
    for attempt in range(2):
        res = subprocess.run(["apt-get", "download", "-q", package], cwd=folder, capture_output=True, text=True,
                             check=False)
        debs = [f for f in os.listdir(folder) if f.endswith(".deb")]
        if res.returncode == 0 and len(debs) == 1:
            return os.path.join(folder, debs[0])
        if attempt == 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
    raise Unavailable("apt-get download %s failed (exit %d): %s" % (package, res.returncode,
                                                                    (res.stderr or res.stdout).strip()))


def unpacked(package: str) -> str:
    """The root of Debian's ``package`` unpacked into the cache (downloaded the first time).
    Safe when several test runs unpack at once: each unpacks into its own directory and the
    first rename wins."""
    if package not in UNPACKED:
        raise Unavailable("%s is not in tests/unit/debian.py's UNPACKED (tests/run.py fetches those)" % package)
    dest = os.path.join(CACHE, package)
    marker = os.path.join(dest, MARKER)
    if os.path.exists(marker):
        return dest
    if os.path.exists(dest):  # an unpack that was interrupted, or one without the marker
        shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(CACHE, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".%s-" % package, dir=CACHE)
    try:
        deb = _download(package, work)
        root = os.path.join(work, "root")
        res = subprocess.run(["dpkg-deb", "-x", deb, root], capture_output=True, text=True, check=False)
        if res.returncode:
            raise Unavailable("dpkg-deb -x %s failed: %s" % (os.path.basename(deb), res.stderr.strip()))
        with open(os.path.join(root, MARKER), "w", encoding="utf-8") as fh:
            fh.write(os.path.basename(deb) + "\n")  # which version, for the reports
        try:
            os.rename(root, dest)
        except OSError:
            if not os.path.exists(marker):  # not another run's complete unpack
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def version(package: str) -> str:
    """The .deb an unpacked package came from (``nginx_1.22.1-9+deb12u12_amd64.deb``)."""
    with open(os.path.join(unpacked(package), MARKER), encoding="utf-8") as fh:
        return fh.read().strip()


def binary(package: str, relpath: str) -> str:
    """The path of ``relpath`` (``usr/sbin/nginx``) in Debian's ``package``, unpacked."""
    path = os.path.join(unpacked(package), relpath)
    if not os.path.exists(path):
        raise Unavailable("Debian's %s has no %s (%s)" % (package, relpath, version(package)))
    return path


def needed(package: str, relpath: str) -> str:
    """``binary`` for a test: skipped, saying why, when the package cannot be had (no network,
    no apt); tests/run.py fetches first and fails on any skip."""
    import pytest

    try:
        return binary(package, relpath)
    except (Unavailable, OSError) as exc:
        pytest.skip(str(exc))


def alertmanager_command(args: list[str], scratch: str) -> list[str]:
    """Debian's Alertmanager with ``args``. Its build reads the default notification templates
    from /usr/share/prometheus/alertmanager, so the unpacked binary runs in a private mount
    namespace where ``scratch`` (an empty directory of the test's) holding the package's
    templates is /usr/share (``--map-root-user`` when not root)."""
    binary_path = needed("prometheus-alertmanager", "usr/bin/prometheus-alertmanager")
    templates = os.path.join(unpacked("prometheus-alertmanager"), "usr", "share", "prometheus", "alertmanager")
    os.makedirs(os.path.join(scratch, "prometheus"))
    os.symlink(templates, os.path.join(scratch, "prometheus", "alertmanager"))
    return ["unshare", "--mount", *(["--map-root-user"] if os.geteuid() else []),
            "sh", "-c", 'mount --bind "$0" /usr/share && exec "$@"', scratch, binary_path, *args]


def fetch() -> list[str]:
    """Every ``UNPACKED`` package in the cache and its first binary run once: the problems
    (empty when all is well). One line per package is printed."""
    problems = []
    for package, (files, check) in UNPACKED.items():
        try:
            paths = [binary(package, f) for f in files]
            res = subprocess.run([paths[0], *check], capture_output=True, text=True, timeout=60, check=False)
            if res.returncode:
                output = (res.stderr or res.stdout).strip()
                raise Unavailable("%s %s failed (exit %d): %s" % (paths[0], " ".join(check), res.returncode, output))
            print("%s: %s in %s" % (package, version(package), unpacked(package)))
        except (Unavailable, OSError, subprocess.SubprocessError) as exc:
            problems.append("%s: %s" % (package, exc))
            print("%s: CANNOT BE HAD: %s" % (package, exc))
    return problems
