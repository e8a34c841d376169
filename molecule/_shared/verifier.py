"""What the Molecule verifiers (molecule/*/tests/test_*.py) share: rerunning a playbook the way
Molecule runs it, and reading its PLAY RECAP. A verifier imports it with

    sys.path.insert(0, os.path.join(PROJECT, "molecule", "_shared"))
    import verifier
"""

import os
import re
import subprocess

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def molecule_env() -> dict:
    """The environment of Molecule's own ansible-playbook runs (its ansible.cfg in the
    scenario's ephemeral directory, the checkout's collection link), with plain output."""
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ansible.cfg"),
                ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, ".build", "collections"),
                ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_HOST_KEY_CHECKING="false",
                ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")


def playbook(*args: str, cwd: str, timeout: int = 1200, env: dict | None = None) -> tuple[int, str]:
    """(exit code, stdout + stderr) of ``ansible-playbook -i <scenario inventory> *args``."""
    res = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], *args], cwd=cwd,
                         env=env if env is not None else molecule_env(), capture_output=True, text=True,
                         timeout=timeout, check=False)
    return res.returncode, res.stdout + res.stderr


def recap(out: str) -> dict[str, dict[str, int]]:
    """{host: {ok: n, changed: n, failed: n, ...}} from the last PLAY RECAP of ``out``."""
    rows = {}
    for m in re.finditer(r"^(\S+)\s+:\s+(.*)$", out.rsplit("PLAY RECAP", maxsplit=1)[-1], re.M):
        rows[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return rows


def recap_changed(out: str) -> int:
    """How many tasks changed, over every host of the last PLAY RECAP."""
    return sum(row.get("changed", 0) for row in recap(out).values())
