"""The AWX execution environment (lab/ee.py) against this scenario's converged hosts: the
preflight and this scenario's converge play in check mode, run by ansible-navigator from the
image hardened-stack-ee (its collections and Python only), exit 0 and change nothing.

`make test` builds the image in its ee stage; here `python -m lab.ee build` finds every layer
in Docker's cache then (a few seconds) and builds it otherwise (`make molecule SCENARIO=app`)."""

import os
import subprocess
import sys

import pytest

SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
sys.path.insert(0, PROJECT)
from lab import ee, leaks  # noqa: E402  (lab/ee.py, lab/leaks.py)

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE", "")
testinfra_hosts = [f"ansible://app?ansible_inventory={INVENTORY}"]


@pytest.fixture(name="ee_check", scope="module")
def fixture_ee_check():
    """(rc, output) of the check-mode run from the image (after the preflight passed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    build = subprocess.run([sys.executable, "-m", "lab.ee", "build"], cwd=PROJECT, env=env, check=False,
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return ee.scenario("app", limit="app")


def test_preflight_and_check_mode_from_the_image(ee_check, host):
    rc, out = ee_check
    name = host.ansible.get_variables()["inventory_hostname"]
    assert rc == 0, out[-4000:]
    assert "TASK [hardened.stack.app : " in out  # the role came from the image
    row = leaks.recap(out).get(name)
    assert row is not None, out[-2000:]
    assert row["changed"] == 0 and row["failed"] == 0 and row["unreachable"] == 0, leaks.changed_tasks(out, name)
