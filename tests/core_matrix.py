"""The newest ansible-core that meta/runtime.yml claims, tested on a controller that has its Python.

ansible-core 2.20 and later need Python 3.12 or newer; this machine's Python (Debian 12) is 3.11,
which is where the venv's ansible-core (requirements.txt) runs. The lab's Debian 13 image has
Debian's Python 3.13, so this builds a controller image from it:

- Debian's ``python3-venv``, ``shellcheck`` and ``git``;
- a venv at /opt/controller with ``NEWEST`` (ansible-core and the ``ansible`` community package
  that bundles the dependency collections at their current releases) and the test requirements;

cached under a tag that hashes what the image holds, so a second run starts at once. In it, on a
copy of the checkout (``git ls-files``; nothing is written back):

- ``ansible-test sanity`` with the same rules as the 2.19 stage (``tests/run.py sanity``: no
  ignore file, shellcheck present);
- ``pytest`` on every unit test that needs no Debian server package: the filters, lookups,
  modules' and module_utils' tests, the argument specs and both preflight suites
  (``test_preflight_bad_input``, ``test_inventory_preflight``: site.yml's preflight run by this
  ansible-core). The tests that start Debian 12's servers (PostgreSQL 15, Redis 7.0, nginx 1.22,
  Prometheus) from ``tests/unit/debian.py`` run in the 2.19 stage only: their binaries are
  Debian 12's and the hosts' release, not the controller's. They are deselected by name
  (``SERVER_TESTS``), printed in every run, and a test keeps the list equal to the tests that
  import ``debian``/``loopback`` (tests/unit/test_core_matrix.py). So are the tests of the
  repository's own tooling (``TOOLING_TESTS``: lab, changelog check, galaxy-importer, EE build,
  AWX launch model), which run on this machine's venv whatever ansible-core the collection meets.

``python tests/core_matrix.py`` (or ``python tests/run.py core-newest``) exits non-zero when a
step fails. The host's CA bundle is handed to pip in the image build when the host has one
configured (``PIP_CERT``/``REQUESTS_CA_BUNDLE``: a TLS-inspecting proxy), never baked into the
controller's trust store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# What the newest end of requires_ansible is tested with (README "Tested with" names these).
NEWEST = {"ansible-core": "2.21.5", "ansible": "14.5.0"}
PYTHON = "3.13"  # Debian 13's python3
BASE_IMAGE = "hardened-stack/debian13-systemd-rootfs:latest"  # lab/images.py (debootstrap trixie)
IMAGE = "hardened-stack/controller-newest"
# Test requirements besides ansible itself (pinned as in requirements-dev.txt / requirements.txt).
TEST_REQUIREMENTS = ("pytest==9.2.0", "pytest-xdist==3.8.0", "jmespath==1.1.0", "netaddr==1.3.0",
                     "psycopg2-binary==2.9.13", "requests==2.34.2", "pyyaml")

# Unit test modules that run Debian 12's server programs (tests/unit/debian.py, loopback.py and
# the procs/module_procs fixtures): 2.19 stage only (see the module docstring). Kept equal to the
# modules that use them by tests/unit/test_core_matrix.py.
SERVER_TESTS = (
    "tests/unit/plugins/filter/test_encode.py",
    "tests/unit/plugins/filter/test_encode_formats.py",
    "tests/unit/plugins/filter/test_encode_nginx.py",
    "tests/unit/plugins/filter/test_encode_postgres.py",
    "tests/unit/plugins/modules/test_redis_rotation.py",
    "tests/unit/plugins/modules/test_redis_sentinel.py",
    "tests/unit/roles/test_monitoring_basic_auth.py",
    "tests/unit/test_app_demo_passwords.py",
)

# Unit test modules of the repository's own tooling (the lab, the changelog check, the
# galaxy-importer run, the execution environment build, the AWX launch model, this matrix): they
# test tools that run on this machine's venv, not the collection on a controller, and need what
# only that venv has (docker, galaxy-importer, ansible-runner, antsibull-changelog, awx.awx).
TOOLING_TESTS = (
    "tests/unit/test_awx_launch.py",
    "tests/unit/test_awx_modules.py",  # docs/awx.md against awx.awx, which ansible 14 no longer bundles
    "tests/unit/test_changelog.py",
    "tests/unit/test_core_matrix.py",
    "tests/unit/test_ee.py",
    "tests/unit/test_galaxy_importer.py",
    "tests/unit/test_lab_exposure.py",
    "tests/unit/test_lab_network.py",
    "tests/unit/test_lab_recap.py",
    "tests/unit/test_lab_secrets.py",
)

DOCKERFILE = """FROM {base}
RUN apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
    python3-venv shellcheck git ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
COPY pip-ca.crt /tmp/pip-ca.crt
RUN python3 -m venv /opt/controller \\
 && CA=$(test -s /tmp/pip-ca.crt && echo /tmp/pip-ca.crt) \\
 && PIP_CERT=$CA /opt/controller/bin/pip install -q --no-cache-dir {requirements} \\
 && rm -f /tmp/pip-ca.crt
LABEL hslab.controller={revision}
"""


def log(msg: str) -> None:
    print(f"[core-newest] {msg}", flush=True)


def docker() -> str:
    from lab import engine  # noqa: PLC0415

    return engine.docker_bin()


def requirements() -> list[str]:
    return [f"{name}=={version}" for name, version in NEWEST.items()] + list(TEST_REQUIREMENTS)


def revision() -> str:
    text = DOCKERFILE + " ".join(requirements())
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def host_ca() -> str | None:
    for var in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        path = os.environ.get(var)
        if path and os.path.isfile(path):
            return path
    return None


def ensure_image() -> str:
    tag = f"{IMAGE}:{revision()}"
    if subprocess.run([docker(), "image", "inspect", tag], capture_output=True, check=False).returncode == 0:
        log(f"controller image {tag} present")
        return tag
    if subprocess.run([docker(), "image", "inspect", BASE_IMAGE], capture_output=True, check=False).returncode:
        from lab import images  # noqa: PLC0415

        images.build_all(["debian13"])
    ctx = tempfile.mkdtemp(prefix="hs-core-newest-")
    try:
        with open(os.path.join(ctx, "Dockerfile"), "w", encoding="utf-8") as fh:
            fh.write(DOCKERFILE.format(base=BASE_IMAGE, requirements=" ".join(f"'{r}'" for r in requirements()),
                                       revision=revision()))
        ca = host_ca()
        if ca:
            shutil.copyfile(ca, os.path.join(ctx, "pip-ca.crt"))
        else:
            open(os.path.join(ctx, "pip-ca.crt"), "w", encoding="utf-8").close()
        log(f"building {tag} from {BASE_IMAGE}: {' '.join(requirements())}")
        subprocess.run([docker(), "build", "--quiet", "-t", tag, ctx], check=True, stdout=subprocess.DEVNULL)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    return tag


def checkout_copy() -> str:
    """The checkout's files (tracked and untracked-not-ignored), with its .git for ansible-test."""
    from lab import collection  # noqa: PLC0415

    base = collection.copy_checkout(tempfile.mkdtemp(prefix="hs-core-newest-src-"))
    # The history too: tests read it (the changelog check walks `git log`).
    subprocess.run(["cp", "-a", os.path.join(ROOT, ".git"), os.path.join(base, ".git")], check=True)
    return base


def run_in(tag: str, src: str, script: str) -> int:
    env = []
    ca = host_ca()
    mounts = ["-v", f"{src}:/src"]
    if ca:
        # ansible-test sanity --requirements installs its tools with pip at run time, in venvs
        # whose environment it filters: pip's configuration file reaches them, PIP_CERT does not.
        mounts += ["-v", f"{ca}:/etc/hs-pip-ca.crt:ro"]
        script = "printf '[global]\\ncert = /etc/hs-pip-ca.crt\\n' > /etc/pip.conf && " + script
    cmd = [docker(), "run", "--rm", *mounts, *env, "-e", "PYTHONDONTWRITEBYTECODE=1",
           "-e", "PATH=/opt/controller/bin:/usr/sbin:/usr/bin:/sbin:/bin", "-w", "/src", tag,
           "bash", "-c", script]
    return subprocess.run(cmd, check=False).returncode


REPORT = "tests/output/pytest-newest.xml"


def skipped(src: str) -> int:
    """Skipped tests in the run's JUnit report: a skip fails the stage, as in tests/run.py."""
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    suite = ET.parse(os.path.join(src, REPORT)).getroot()  # noqa: S314 (our own pytest report)
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    return int(suite.get("skipped", "0"))


def main(only: list[str] | None = None) -> int:
    start = time.time()
    tag = ensure_image()
    log(f"image ready in {time.time() - start:.0f} s")
    src = checkout_copy()
    try:
        for path in SERVER_TESTS:
            log(f"not run on {NEWEST['ansible-core']} (Debian 12 servers; run by the pytest stage): {path}")
        for path in TOOLING_TESTS:
            log(f"not run on {NEWEST['ansible-core']} (repository tooling; run by the pytest stage): {path}")
        ignore = " ".join(f"--ignore={p}" for p in SERVER_TESTS + TOOLING_TESTS)
        steps = {
            "version": "ansible --version | head -1 && python3 --version",
            "pytest": f"python -m pytest tests/unit -q -rs -p no:cacheprovider -n 2 --dist loadfile {ignore} "
                      f"--junitxml {REPORT}",
            "sanity": "python tests/run.py sanity",
        }
        failed = []
        for name, script in steps.items():
            if only and name not in only:
                continue
            t0 = time.time()
            rc = run_in(tag, src, script)
            log(f"{name}: {'passed' if rc == 0 else 'FAILED'} in {time.time() - t0:.0f} s")
            if name == "pytest" and rc == 0 and skipped(src):
                log(f"pytest: {skipped(src)} test(s) skipped: nothing may be skipped silently")
                rc = 1
            if rc:
                failed.append(name)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    log(f"ansible-core {NEWEST['ansible-core']} on Python {PYTHON}: "
        f"{'FAILED: ' + ', '.join(failed) if failed else 'passed'} in {time.time() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))  # optional step names: version, pytest, sanity
