"""hardened.stack.packages_pending: which packages of an apt task still need apt.

The filter itself, then every apt task of the roles: each one installing or removing packages
runs only when the filter names one of them (the same condition everywhere), and that
condition, evaluated by Ansible as the task file holds it, skips the task exactly when the
package facts say there is nothing to do.
"""

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter.packages import packages_pending

from lab import collection

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def facts(*installed):
    """ansible_facts with package facts listing ``installed`` (as package_facts shapes them)."""
    return {"distribution": "Debian",
            "packages": {name: [{"name": name, "version": "1.0", "arch": "amd64", "source": "apt"}]
                         for name in installed}}


# --- the filter -------------------------------------------------------------------------------

def test_present_names_what_is_not_installed_in_the_given_order():
    assert packages_pending(["openssl", "ca-certificates", "python3-cryptography"],
                            facts("ca-certificates", "libc6")) == ["openssl", "python3-cryptography"]
    assert packages_pending(["openssl", "ca-certificates"], facts("ca-certificates", "openssl")) == []


def test_absent_names_what_is_installed():
    assert packages_pending(["telnetd", "nis", "xinetd"], facts("nis", "libc6"), "absent") == ["nis"]
    assert packages_pending(["telnetd", "nis"], facts("libc6"), "absent") == []


@pytest.mark.parametrize("no_packages", [{}, {"distribution": "Debian"}, {"packages": None}, None])
@pytest.mark.parametrize("state", ["present", "absent"])
def test_without_package_facts_every_name_is_pending(no_packages, state):
    # _common did not run (a sub-part's --tags): apt decides, as it did without the check.
    assert packages_pending(["iptables", "nginx"], no_packages, state) == ["iptables", "nginx"]


@pytest.mark.parametrize("name", ["nginx=1.22.1-9", "nginx>=1.22", "libc6:i386", "nginx*", "./local.deb",
                                  "Nginx", "x"])
def test_what_is_not_a_plain_package_name_is_left_to_apt(name):
    installed = facts("nginx", "libc6", "x", name)
    assert packages_pending([name], installed) == [name]
    assert packages_pending([name], installed, "absent") == [name]


def test_plain_names_as_debian_policy_allows_them():
    names = ["g++", "libstdc++6", "python3.11", "postgresql-15", "0ad"]
    assert packages_pending(names, facts(*names)) == []


def test_a_comma_separated_string_is_split_like_apt_splits_it():
    assert packages_pending("sysstat, acct", facts("sysstat")) == ["acct"]
    assert packages_pending("nginx", facts()) == ["nginx"]


def test_nothing_to_install_is_nothing_pending():
    assert packages_pending([], facts()) == []
    assert packages_pending(None, None) == []
    assert packages_pending(["", " "], facts()) == []


def test_a_wrong_state_or_type_is_refused():
    with pytest.raises(AnsibleFilterError, match="state must be one of present, absent, not 'latest'"):
        packages_pending(["nginx"], facts(), "latest")
    with pytest.raises(AnsibleFilterError, match="expected a list of package names, got dict"):
        packages_pending({"name": "nginx"}, facts())


# --- the roles' apt tasks ------------------------------------------------------------------------

def _walk(tasks):
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _walk(task.get(key))


def apt_tasks():
    """(file, task) for every ansible.builtin.apt task of the roles that names packages."""
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "roles", "*", "tasks", "*.yml"))):
        with open(path, encoding="utf-8") as fh:
            tasks = yaml.safe_load(fh)
        for task in _walk(tasks):
            if "name" in (task.get("ansible.builtin.apt") or {}):
                out.append((os.path.relpath(path, ROOT), task))
    return out


APT_TASKS = apt_tasks()
CONDITION = re.compile(r"^(\w+) \| hardened\.stack\.packages_pending\(ansible_facts(, 'absent')?\) \| length > 0$")


def _condition(task):
    """The task's packages_pending condition: (variable, state)."""
    when = task.get("when")
    found = [CONDITION.match(w) for w in (when if isinstance(when, list) else [when]) if isinstance(w, str)]
    found = [m for m in found if m]
    assert len(found) == 1, f"{task['name']!r}: no single packages_pending condition in its when: {when!r}"
    return found[0].group(1), "absent" if found[0].group(2) else "present"


def test_every_role_installs_something():
    # The walk finds the tasks (a changed layout would make the next test pass on nothing).
    assert len(APT_TASKS) >= 24
    assert {path.split(os.sep)[1] for path, _task in APT_TASKS} >= {
        "alertmanager", "app", "backup", "baseline", "etcd", "exporters", "firewall", "haproxy", "nginx",
        "pki", "postgresql", "prometheus", "redis"}


@pytest.mark.parametrize(("path", "task"), APT_TASKS, ids=[f"{p}: {t['name']}" for p, t in APT_TASKS])
def test_every_apt_task_runs_only_when_a_package_is_pending(path, task):
    apt = task["ansible.builtin.apt"]
    variable, state = _condition(task)
    # The condition checks the very list apt gets.
    assert apt["name"] == "{{ %s }}" % variable, path
    assert apt.get("state", "present") == state, path
    if state == "present":
        role = path.split(os.sep)[1]
        assert variable == f"_{role}_apt_packages", path
        assert variable in task.get("vars", {}), path


# Ansible resolves hardened.stack.packages_pending through its collection loader, which this
# pytest process does not install (the tests import the checkout directly): the conditions are
# evaluated in a child process that does, as ansible-playbook would.
_EVALUATE = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template
init_plugin_loader([sys.argv[1]])
out = []
for when, variables, task_vars in json.load(sys.stdin):
    variables.update({k: trust_as_template(v) if isinstance(v, str) else v for k, v in task_vars.items()})
    templar = Templar(loader=DataLoader(), variables=variables)
    out.append(all(templar.evaluate_conditional(trust_as_template(w)) for w in when))
json.dump(out, sys.stdout)
"""


def _evaluate(cases):
    """[(task, ansible_facts, other variables)] -> each task's when, evaluated by Ansible with
    its task vars and those variables."""
    data = [(t["when"] if isinstance(t["when"], list) else [t["when"]], {"ansible_facts": f, **(extra or {})},
             t.get("vars") or {}) for t, f, extra in cases]
    res = subprocess.run([sys.executable, "-c", _EVALUATE, collection.importable()], input=json.dumps(data),
                         capture_output=True, text=True, check=False, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _literal(task):
    variable, _state = _condition(task)
    value = task.get("vars", {}).get(variable)
    return value if isinstance(value, list) and not any("{{" in v for v in value) else None


LITERAL = [(p, t) for p, t in APT_TASKS if _literal(t)]
# The other conditions of these tasks, as on a host where the task applies.
HOST = {"baseline_in_container": False, "baseline_accounting": True, "baseline_audit_tools": True,
        "_exporters_bcrypt_installed": False, "inventory_hostname": "backup1", "groups": {"backup": ["backup1"]},
        "backup_group": "backup"}


def test_ansible_skips_a_task_only_when_every_package_is_installed():
    cases, want = [], []
    for path, task in LITERAL:
        names = _literal(task)
        cases += [(task, facts(*names, "libc6"), HOST), (task, facts(*names[1:]), HOST),
                  (task, {"distribution": "Debian"}, HOST)]
        # all installed: skipped; the first one missing: runs; no package facts: runs
        want += [(path, task["name"], False), (path, task["name"], True), (path, task["name"], True)]
    assert len(LITERAL) >= 15
    got = [(path, name, run) for (path, name, _want), run in zip(want, _evaluate(cases), strict=True)]
    assert got == want


def test_the_legacy_purge_runs_only_when_one_is_installed():
    with open(os.path.join(ROOT, "roles", "baseline", "defaults", "main.yml"), encoding="utf-8") as fh:
        legacy = yaml.safe_load(fh)["baseline_legacy_packages"]
    (task,) = [t for p, t in APT_TASKS if t["ansible.builtin.apt"].get("state") == "absent"]
    extra = {"baseline_legacy_packages": legacy}
    assert _evaluate([(task, facts("libc6", "openssh-server"), extra), (task, facts("libc6", legacy[-1]), extra),
                      (task, {"distribution": "Debian"}, extra)]) == [False, True, True]
