"""galaxy-importer accepts the built tarball as Galaxy would (issue 20): exit 0, no ERROR.

The tarball is built from the checkout (`ansible-galaxy collection build`, galaxy.yml's
build_ignore) into a temporary directory and imported by `python -m galaxy_importer.main` with
a config file: ansible-doc on every plugin, the changelog check, ansible-lint offline (production
profile, as Galaxy runs it); ansible-test off (it needs containers). galaxy-importer lives in its
own venv, .build/galaxy-importer/, installed from tests/galaxy-importer-requirements.txt (pinned;
that file says why it is not the dev venv) and reused until that file changes. Its first install
needs PyPI; every run takes 2-3 minutes (ansible-lint on the whole collection).
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIREMENTS = os.path.join(ROOT, "tests", "galaxy-importer-requirements.txt")
VENV_HOME = os.path.join(ROOT, ".build", "galaxy-importer")
VENV = os.path.join(VENV_HOME, "venv")
STAMP = os.path.join(VENV_HOME, "stamp")
CONFIG = """[galaxy-importer]
run_ansible_doc = true
run_ansible_lint = true
offline_ansible_lint = true
run_ansible_test = false
check_changelog = true
log_level_main = INFO
"""


def _wanted_stamp():
    with open(REQUIREMENTS, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    return f"{digest} python{sys.version_info[0]}.{sys.version_info[1]}\n"


def importer_venv():
    """The venv's python, (re)built when the requirements file (or Python) changed. A lock keeps
    two test runs on this checkout from building it at once."""
    os.makedirs(VENV_HOME, exist_ok=True)
    python = os.path.join(VENV, "bin", "python")
    with open(os.path.join(VENV_HOME, "lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(STAMP, encoding="utf-8") as fh:
                current = fh.read()
        except FileNotFoundError:
            current = ""
        if current == _wanted_stamp() and os.access(python, os.X_OK):
            return python
        if os.path.exists(STAMP):
            os.unlink(STAMP)
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        pip = [python, "-m", "pip", "--disable-pip-version-check", "-q"]
        proc = subprocess.run([*pip, "install", "-r", REQUIREMENTS], capture_output=True, text=True, check=False)
        if proc.returncode:
            pytest.fail(
                f"pip install -r {REQUIREMENTS} into {VENV} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
            )
        with open(STAMP, "w", encoding="utf-8") as fh:
            fh.write(_wanted_stamp())
        return python


@pytest.fixture(scope="module", name="imported")
def fixture_imported(tmp_path_factory):
    """(returncode, output lines, importer_result.json) of one import of a freshly built tarball."""
    python = importer_venv()
    work = tmp_path_factory.mktemp("galaxy-importer")
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    build = subprocess.run(
        [galaxy, "collection", "build", "--output-path", str(work), ROOT],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = next(str(p) for p in work.iterdir() if p.name.endswith(".tar.gz"))
    (work / "galaxy-importer.cfg").write_text(CONFIG, encoding="utf-8")
    (work / "home").mkdir()
    # Nothing of this machine's Ansible set-up reaches the import: its own PATH (ansible-doc,
    # ansible-lint from the importer's venv), an empty HOME (no ~/.ansible/collections).
    env = {
        "PATH": os.path.join(VENV, "bin") + os.pathsep + "/usr/bin:/bin",
        "HOME": str(work / "home"),
        "LANG": "C.UTF-8",
        "GALAXY_IMPORTER_CONFIG": str(work / "galaxy-importer.cfg"),
    }
    proc = subprocess.run(
        [python, "-m", "galaxy_importer.main", tarball],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    output = (proc.stdout + proc.stderr).splitlines()
    result_file = work / "importer_result.json"
    result = json.loads(result_file.read_text(encoding="utf-8")) if result_file.exists() else None
    return proc.returncode, output, result


def test_import_succeeds_without_errors(imported):
    rc, output, _result = imported
    errors = [line[:600] for line in output if "ERROR" in line or "Traceback" in line]
    warnings = [line[:300] for line in output if line.startswith("WARNING")]
    report = "\n  ".join(errors + ["(warnings)"] + warnings)
    assert rc == 0 and not errors, f"galaxy-importer exit {rc}:\n  {report}"
    assert "Importer processing completed successfully" in output, "\n".join(output[-20:])
    assert "...ansible-lint run complete" in output, "ansible-lint did not run:\n" + "\n".join(output[-20:])


def test_import_result_matches_the_collection(imported):
    _rc, output, result = imported
    assert result, "no importer_result.json:\n" + "\n".join(output[-20:])
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as fh:
        galaxy = yaml.safe_load(fh)
    with open(os.path.join(ROOT, "meta", "runtime.yml"), encoding="utf-8") as fh:
        runtime = yaml.safe_load(fh)
    assert result["metadata"]["dependencies"] == galaxy["dependencies"]
    assert result["requires_ansible"] == runtime["requires_ansible"]
    assert result["docs_blob"]["collection_readme"]["html"], "README.md rendered empty"
    contents = result["docs_blob"]["contents"]
    roles = sorted(c["content_name"] for c in contents if c["content_type"] == "role")
    assert roles == sorted(os.listdir(os.path.join(ROOT, "roles")))
    assert all(c["readme_file"] for c in contents if c["content_type"] == "role")
    documented = [c for c in contents if c["content_type"] in ("module", "lookup")]
    assert documented and [c["content_name"] for c in documented if not c["doc_strings"]] == []
