"""Every awx.awx task of docs/awx.md calls a module of the awx.awx collection installed beside
ansible-core here, with options that module has (``ansible-doc --json``): the docs' calls are
real calls, not invented names."""

import json
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def awx_tasks():
    with open(os.path.join(ROOT, "docs", "awx.md"), encoding="utf-8") as fh:
        text = fh.read()
    tasks = []
    for body in re.findall(r"^```yaml\n(.*?)^```$", text, re.M | re.S):
        if "awx.awx." not in body:
            continue
        data = yaml.safe_load(body)
        for task in data if isinstance(data, list) else []:
            tasks.extend((key, args) for key, args in task.items() if key.startswith("awx.awx."))
    return tasks


def test_docs_awx_tasks_use_real_modules_and_options(tmp_path):
    tasks = awx_tasks()
    modules = sorted({name for name, _args in tasks})
    assert {"awx.awx.job_template", "awx.awx.job_launch", "awx.awx.credential", "awx.awx.credential_type",
            "awx.awx.inventory_source"} <= set(modules)
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    env = dict(os.environ, HOME=str(tmp_path), ANSIBLE_CONFIG=str(cfg), ANSIBLE_NOCOLOR="1", PYTHONWARNINGS="ignore")
    res = subprocess.run([os.path.join(BIN, "ansible-doc"), "--json", "-t", "module"] + modules, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    docs = json.loads(res.stdout)
    for name, args in tasks:
        options = docs[name]["doc"]["options"]
        known = set(options) | {alias for spec in options.values() for alias in spec.get("aliases", [])}
        unknown = sorted(set(args) - known)
        assert not unknown, "docs/awx.md: %s has no option %s" % (name, ", ".join(unknown))
        for option, value in args.items():
            spec = options.get(option) or next(s for s in options.values() if option in s.get("aliases", []))
            if "choices" in spec and isinstance(value, str) and "{{" not in value:
                assert value in spec["choices"], (name, option, value, spec["choices"])
