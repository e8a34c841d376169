"""What an AWX launch turns into, run here (there is no AWX on this machine, so this is not AWX
itself): the job's fields go through a transcription of AWX's ``RunJob.build_args`` into
``env/cmdline`` (``ansible_runner.utils.args2cmdline``, as ``write_args_file`` does), survey
answers into ``env/extravars``, and ``ansible-runner run`` runs the private data directory the
way AWX's receptor job does. A dry-run launch (job_type check) changes nothing, a limit limits,
while the answers of the old survey (hs_check, hs_limit as extra variables) converge every
host for real. docs/awx.md cites the AWX source."""

import json
import os
import re
import subprocess
import sys

import yaml
from ansible_runner.utils import args2cmdline
from lab import collection

BIN = os.path.dirname(sys.executable)
# .build/collections, where the checkout is linked as hardened.stack (lab/collection.py)
COLLECTIONS = collection.importable()


def awx_build_args(job):
    """``RunJob.build_args`` (awx/main/tasks/jobs.py, ansible/awx e21dd0a0933f) for a job without
    passwords to prompt for: the options in AWX's order, each from a field of the job."""
    args = []
    if job.get("job_type") == "check":
        args.append("--check")
    args.extend(["-u", job.get("ssh_username") or "root"])
    if job.get("become_enabled"):
        args.append("--become")
    if job.get("diff_mode"):
        args.append("--diff")
    if job.get("forks"):
        args.append("--forks=%d" % job["forks"])
    if job.get("limit"):
        args.extend(["-l", job["limit"]])
    if job.get("verbosity"):
        args.append("-%s" % ("v" * min(5, job["verbosity"])))
    if job.get("job_tags"):
        args.extend(["-t", job["job_tags"]])
    if job.get("skip_tags"):
        args.append("--skip-tags=%s" % job["skip_tags"])
    return args


PLAYBOOK = """
- name: Converge
  hosts: all
  gather_facts: false
  tasks:
    - name: Write the host's file
      ansible.builtin.copy:
        content: "converged\\n"
        dest: "{{ marker_dir }}/{{ inventory_hostname }}"
        mode: "0644"
"""


def env(home):
    cfg = home / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    return dict(os.environ, HOME=str(home), ANSIBLE_CONFIG=str(cfg), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
                PATH=BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_LOCALHOST_WARNING="false",
                ANSIBLE_NOCOLOR="1", PYTHONWARNINGS="ignore")


def launch(tmp_path, name, job, extra_vars=None):
    """The recap ({host: {ok, changed, ...}}) and the markers written by one launch."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    markers = tmp_path / ("markers-" + name)
    markers.mkdir()
    pdd = tmp_path / ("job-" + name)
    for sub in ("env", "inventory", "project"):
        (pdd / sub).mkdir(parents=True)
    (pdd / "project" / "site.yml").write_text(PLAYBOOK)
    (pdd / "inventory" / "hosts").write_text("".join(
        "%s ansible_connection=local ansible_python_interpreter=%s marker_dir=%s\n" % (h, sys.executable, markers)
        for h in ("web1", "web2")))
    (pdd / "env" / "cmdline").write_text(args2cmdline(*awx_build_args(job)))
    (pdd / "env" / "extravars").write_text(yaml.safe_dump(extra_vars or {}))
    res = subprocess.run([os.path.join(BIN, "ansible-runner"), "run", str(pdd), "-p", "site.yml"], env=env(home),
                         capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    recap = {m.group(1): dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2)))
             for m in re.finditer(r"^(web\d)\s+:\s+(.*)$", res.stdout, re.M)}
    return recap, sorted(os.listdir(markers)), (pdd / "env" / "cmdline").read_text()


def test_a_dry_run_launch_is_a_check_mode_run_and_a_limit_limits(tmp_path):
    recap, written, cmdline = launch(tmp_path, "check", {"job_type": "check", "limit": "web1", "become_enabled": False})
    assert cmdline == "--check -u root -l web1"
    assert list(recap) == ["web1"] and recap["web1"]["changed"] == 1  # would change, in check mode
    assert written == []  # nothing written
    recap, written, _cmdline = launch(tmp_path, "run", {"job_type": "run", "limit": "web2"})
    assert list(recap) == ["web2"] and written == ["web2"]


def test_the_old_survey_answers_were_only_extra_variables(tmp_path):
    recap, written, cmdline = launch(tmp_path, "survey", {"job_type": "run"},
                                     {"hs_check": "yes", "hs_limit": "web1", "hs_tags": ["pki"]})
    assert cmdline == "-u root"
    assert sorted(recap) == ["web1", "web2"] and written == ["web1", "web2"]  # "Dry run = yes" converged


def test_the_same_command_line_limits_the_site_playbook(tmp_path):
    """hardened.stack.site with a dry-run launch's options: only the limited host is in any play."""
    home = tmp_path / "home"
    home.mkdir()
    inv = tmp_path / "hosts.yml"
    inv.write_text(json.dumps({"all": {"children": {"postgres": {"hosts": {"pg1": {}, "pg2": {}}},
                                                    "etcd": {"hosts": {"pg1": {}, "pg2": {}}}}}}))
    args = awx_build_args({"job_type": "check", "limit": "pg2", "job_tags": "postgresql", "become_enabled": True})
    res = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", str(inv), "hardened.stack.site", "--list-hosts"]
                         + args, env=env(home), cwd=str(home), capture_output=True, text=True, timeout=120, check=True)
    counts = re.findall(r"pattern: \[[^\]]*\]\s+hosts \((\d+)\):\n((?:\s+\S+\n)*)", res.stdout)
    assert counts, res.stdout
    hosts = {h.strip() for _n, block in counts for h in block.split()}
    assert hosts == {"pg2"}, res.stdout
