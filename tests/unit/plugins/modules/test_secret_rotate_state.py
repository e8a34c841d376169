"""hardened.stack.secret_rotate (the action plugin, run by ansible-playbook on localhost) with
the controller state external: no value is generated, a given one is written."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
BIN = os.path.dirname(sys.executable)

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - hardened.stack.secret_rotate:
        kind: redis
        cluster: cache
        user: app
        value: "{{ new_value | default(omit) }}"
        secrets_dir: "{{ secrets }}"
      no_log: true
"""


def rotate(tmp_path, *extra):
    (tmp_path / "play.yml").write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"), ANSIBLE_NOCOLOR="1")
    res = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          str(tmp_path / "play.yml"), "-e", "secrets=%s" % (tmp_path / "secrets"), *extra],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    return res.returncode, res.stdout + res.stderr


@pytest.mark.parametrize("state", ["external", "EXTERNAL"])
def test_external_state_refuses_to_generate(tmp_path, state):
    rc, out = rotate(tmp_path, "-e", "hardened_stack_controller_state=" + state)
    assert rc != 0
    assert "hardened_stack_controller_state is external" in out
    assert "redis_app_password" in out, out[-2000:]
    assert not (tmp_path / "secrets" / "redis" / "cache" / "app").exists()


def test_external_state_writes_a_given_value(tmp_path):
    rc, out = rotate(tmp_path, "-e", "hardened_stack_controller_state=external",
                     "-e", "new_value=given-value-0123456789")
    assert rc == 0, out[-2000:]
    assert (tmp_path / "secrets" / "redis" / "cache" / "app").read_text() == "given-value-0123456789\n"


def test_local_state_generates(tmp_path):
    rc, out = rotate(tmp_path)
    assert rc == 0, out[-2000:]
    value = (tmp_path / "secrets" / "redis" / "cache" / "app").read_text()
    assert len(value.strip()) == 32 and value.strip().isalnum()
