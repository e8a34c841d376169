"""docs/awx-survey.json asks only for variables a playbook reads: each one appears in the
playbook of its job template (rotate_secrets.yml) outside comments, and each choice, alone and
all together (AWX passes a multiselect answer as a list), passes the playbook's own check while
a wrong one is refused. No question may try to stand in for check mode, limit or tags."""

import json
import os
import re
import subprocess
import sys

import pytest
from lab import collection

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
# .build/collections, where the checkout is linked as hardened.stack (lab/collection.py)
COLLECTIONS = collection.importable()
PLAYBOOK = "rotate_secrets.yml"  # the job template the survey belongs to (docs/awx.md)

with open(os.path.join(ROOT, "docs", "awx-survey.json"), encoding="utf-8") as _fh:
    SURVEY = json.load(_fh)


def code_lines(path):
    with open(path, encoding="utf-8") as fh:
        return [line.split("#", 1)[0] for line in fh]


def test_every_survey_variable_is_read_by_the_playbook():
    lines = code_lines(os.path.join(ROOT, "playbooks", PLAYBOOK))
    assert SURVEY["spec"], "an empty survey: remove it instead"
    for question in SURVEY["spec"]:
        variable = question["variable"]
        # AWX takes check mode, limit and tags from the job's fields only (docs/awx.md)
        assert not re.search(r"(^|_)(check|dry_run|limit|tags|job_type)($|_)", variable), variable
        assert any(re.search(r"\b%s\b" % re.escape(variable), line) for line in lines), (
            "%s is asked by the survey but not read by playbooks/%s" % (variable, PLAYBOOK))


def run_with(tmp_path, extravars):
    """rc and output of the playbook with AWX's extra-vars file (-e @env/extravars), no hosts:
    only its first play (the tier check, on localhost) has something to run."""
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    extra = tmp_path / "extravars"
    extra.write_text(json.dumps(extravars))
    env = dict(os.environ, HOME=str(tmp_path), ANSIBLE_CONFIG=str(cfg), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1", PYTHONWARNINGS="ignore")
    res = subprocess.run([os.path.join(BIN, "ansible-playbook"), "hardened.stack.rotate_secrets", "-e",
                          "@%s" % extra], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=180,
                         check=False)
    return res.returncode, res.stdout + res.stderr


@pytest.mark.parametrize("question", [q for q in SURVEY["spec"] if q["type"] == "multiselect"],
                         ids=lambda q: q["variable"])
def test_every_choice_passes_the_playbooks_check_and_a_wrong_one_does_not(tmp_path, question):
    variable = question["variable"]
    for answer in [[choice] for choice in question["choices"]] + [question["choices"]]:
        rc, out = run_with(tmp_path, {variable: answer})
        assert rc == 0 and "Refuse unknown or no tiers" in out, out
    assert question["default"].split("\n") == question["choices"]
    rc, out = run_with(tmp_path, {variable: ["nosuchtier"]})
    assert rc != 0 and '"nosuchtier" unknown' in out
