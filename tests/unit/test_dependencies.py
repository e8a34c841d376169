"""Every collection whose content the shipped collection uses is declared (issue 20).

The scan covers what the tarball ships and Ansible resolves at run time: roles/, playbooks/,
site.yml, plugins/ (DOCUMENTATION and sidecar docs included), meta/ and inventories/example/.
It finds every fully qualified name in
- a task's module/action key (plays, blocks, handlers), ``action:``/``local_action:``,
  ``module_defaults`` keys, ``include_role``/``import_role`` and play ``roles:`` names,
  ``import_playbook: ns.coll.playbook``, ``collections:`` keywords, role ``dependencies``;
- Jinja in every YAML value and template: ``lookup('ns.coll.x'``/``query``/``q``, filters
  ``| ns.coll.x``, tests ``is [not] ns.coll.x``;
- Python plugins: ``extends_documentation_fragment``, ``ansible_collections.ns.coll`` imports,
  ``_execute_module(module_name='ns.coll.x')`` and plugin loader look-ups;
- meta/runtime.yml redirects and action groups.

Its collection must be this one, ansible.builtin/ansible.legacy, or in galaxy.yml's
``dependencies``, which must each have a lower bound, an upper bound only with a comment giving
the reason, be used somewhere, and equal collections/requirements.yml (AWX project sync and the
execution environment read that file). Molecule's collections are out of scope (test-only).
README.md's "Requirements" and "Tested with" must name the same bounds, requires_ansible, pinned
ansible-core/ansible (requirements.txt, tests/core_matrix.py's NEWEST) and collection versions.
"""

import ast
import json
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SELF = "hardened.stack"
ALWAYS = {SELF, "ansible.builtin", "ansible.legacy"}

NAME = r"[a-z_][a-z0-9_]*"
FQCN = rf"{NAME}\.{NAME}\.{NAME}(?:\.{NAME})*"
FQCN_RE = re.compile(rf"^{FQCN}$")
JINJA_RES = (
    re.compile(rf"""\b(?:lookup|query|q)\(\s*['"]({FQCN})['"]"""),  # lookup('ns.coll.x', ...)
    re.compile(rf"\|\s*({FQCN})\b"),  # a filter
    re.compile(rf"\bis\s+(?:not\s+)?({FQCN})\b"),  # a test
)
# A play's and a block's task lists; play keys that name content.
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers", "block", "rescue", "always")
INCLUDE_ROLE = {f"{p}{k}" for p in ("", "ansible.builtin.", "ansible.legacy.") for k in ("include_role", "import_role")}
IMPORT_PLAYBOOK = {f"{p}import_playbook" for p in ("", "ansible.builtin.", "ansible.legacy.")}
ACTION_KEYS = ("action", "local_action")
LOADER_CALLS = {"_execute_module", "get", "has_plugin", "find_plugin", "find_plugin_with_context"}

SHIPPED_DIRS = ("roles", "playbooks", "plugins", "meta", os.path.join("inventories", "example"))
SHIPPED_FILES = ("site.yml",)
YAML_EXT = (".yml", ".yaml")


class _Loader(yaml.SafeLoader):
    """Safe YAML that reads Ansible's tags (!unsafe, !vault) as the plain value under them."""


def _untagged(loader, _suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


_Loader.add_multi_constructor("!", _untagged)


def collection_of(fqcn):
    return ".".join(fqcn.split(".")[:2])


def is_fqcn(value):
    return isinstance(value, str) and bool(FQCN_RE.match(value.strip()))


def _role_name(value):
    if isinstance(value, dict):
        value = value.get("role", value.get("name"))
    return value.strip() if is_fqcn(value) else None


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def jinja_names(text):
    for regex in JINJA_RES:
        for match in regex.finditer(text):
            yield match.group(1)


def _task_names(task):
    """The FQCNs one task (or block) names itself; its nested task lists come back too."""
    found, nested = [], []
    for key, value in task.items():
        if key in TASK_LISTS and isinstance(value, list):
            nested.append(value)
        elif key in ACTION_KEYS:
            name = value.get("module") if isinstance(value, dict) else str(value).split()[0] if value else ""
            if is_fqcn(name):
                found.append(name)
        elif key == "module_defaults" and isinstance(value, dict):
            found.extend(k.removeprefix("group/") for k in value if is_fqcn(k.removeprefix("group/")))
        elif key == "collections" and isinstance(value, list):
            found.extend(c for c in value if isinstance(c, str))
        elif is_fqcn(key):
            found.append(key)
            if key in INCLUDE_ROLE and _role_name(value):
                found.append(_role_name(value))
            if key in IMPORT_PLAYBOOK and is_fqcn(value) and "/" not in value and not value.endswith(YAML_EXT):
                found.append(value.strip())
    return found, nested


def task_list_names(tasks):
    out = []
    stack = [tasks]
    while stack:
        for task in stack.pop():
            if isinstance(task, dict):
                found, nested = _task_names(task)
                out.extend(found)
                stack.extend(nested)
    return out


def play_names(plays):
    out = []
    for play in plays or []:
        if not isinstance(play, dict):
            continue
        if "hosts" not in play:  # import_playbook at play level, or a task list
            out.extend(task_list_names([play]))
            continue
        out.extend(task_list_names([play]))
        out.extend(r for r in map(_role_name, play.get("roles") or []) if r)
    return out


def yaml_file_names(rel, data):
    """FQCNs of one YAML file by where it sits: plays, task lists, role meta, runtime, vars."""
    parts = rel.split(os.sep)
    out = []
    if isinstance(data, list) and (rel == "site.yml" or (parts[0] == "playbooks" and len(parts) == 2)):
        out.extend(play_names(data))
    elif isinstance(data, list) and (
        (parts[0] == "roles" and len(parts) > 3 and parts[2] in ("tasks", "handlers"))
        or (parts[0] == "playbooks" and len(parts) > 2 and parts[1] == "tasks")
    ):
        out.extend(task_list_names(data))
    elif parts[0] == "roles" and parts[2:] == ["meta", "main.yml"] and isinstance(data, dict):
        out.extend(r for r in map(_role_name, data.get("dependencies") or []) if r)
        out.extend(c for c in data.get("collections") or [] if isinstance(c, str))
    elif rel == os.path.join("meta", "runtime.yml") and isinstance(data, dict):
        for routing in (data.get("plugin_routing") or {}).values():
            for entry in (routing or {}).values():
                for key in ("redirect",):
                    if is_fqcn((entry or {}).get(key)):
                        out.append(entry[key])
        for members in (data.get("action_groups") or {}).values():
            out.extend(m for m in members or [] if is_fqcn(m))
    for text in _strings(data):
        out.extend(jinja_names(text))
    return out


def doc_fragments(doc):
    """The fragments a DOCUMENTATION (a string, or a sidecar's parsed mapping) extends."""
    try:
        data = yaml.load(doc, Loader=_Loader) if isinstance(doc, str) else doc  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError:
        return []  # ansible-test sanity and the galaxy-importer test report unparseable docs
    frags = (data or {}).get("extends_documentation_fragment") if isinstance(data, dict) else None
    frags = [frags] if isinstance(frags, str) else frags or []
    return [f for f in frags if is_fqcn(f)]


def python_names(source):
    out = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                out.extend(doc_fragments(node.value.value))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for module in modules:
                parts = module.split(".")
                if parts[0] == "ansible_collections" and len(parts) >= 3:
                    out.append(".".join(parts[1:]))
        elif isinstance(node, ast.Call):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            args = list(node.args) + [k.value for k in node.keywords if k.arg in ("module_name", "name")]
            if func in LOADER_CALLS:
                out.extend(a.value for a in args if isinstance(a, ast.Constant) and is_fqcn(a.value))
    return out


def shipped_files(root):
    for rel in SHIPPED_FILES:
        if os.path.isfile(os.path.join(root, rel)):
            yield rel
    for top in SHIPPED_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                yield os.path.relpath(os.path.join(dirpath, name), root)


def used_names(root):
    """{fqcn: sorted files using it} for the shipped content under ``root``."""
    used = {}
    for rel in shipped_files(root):
        path = os.path.join(root, rel)
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        if rel.endswith(YAML_EXT):
            try:
                docs = list(yaml.load_all(text, Loader=_Loader))  # noqa: S506 (a SafeLoader subclass)
            except yaml.YAMLError as exc:
                raise AssertionError(f"{rel}: not YAML: {exc}") from exc
            names = [n for data in docs for n in yaml_file_names(rel, data)]
            if rel.startswith("plugins" + os.sep):  # sidecar documentation (plugins/filter/x.yml)
                names += [
                    f for data in docs if isinstance(data, dict) for f in doc_fragments(data.get("DOCUMENTATION"))
                ]
        elif rel.endswith(".py"):
            names = python_names(text)
        elif rel.endswith(".j2"):
            names = list(jinja_names(text))
        else:
            continue
        for name in names:
            used.setdefault(name, set()).add(rel)
    return {name: sorted(files) for name, files in used.items()}


def undeclared(used, declared):
    """'file: fqcn' for every use whose collection is neither ours, builtin nor declared."""
    allowed = ALWAYS | set(declared)
    return sorted(
        f"{f}: {name} (collection {collection_of(name)})"
        for name, files in used.items()
        if collection_of(name) not in allowed
        for f in files
    )


def galaxy():
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as fh:
        text = fh.read()
    return text, yaml.safe_load(text)


def requirements():
    with open(os.path.join(ROOT, "collections", "requirements.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module", name="used")
def fixture_used():
    return used_names(ROOT)


def test_every_used_collection_is_declared(used):
    declared = galaxy()[1]["dependencies"] or {}
    problems = undeclared(used, declared)
    assert not problems, "used but not in galaxy.yml dependencies:\n  " + "\n  ".join(problems)


def test_every_declared_collection_is_used(used):
    declared = galaxy()[1]["dependencies"] or {}
    collections = {collection_of(n) for n in used}
    assert sorted(set(declared) - collections) == [], "declared in galaxy.yml but used nowhere"


def test_the_missing_community_postgresql_would_have_failed(used):
    """What issue 20 found: the roles call community.postgresql.* and galaxy.yml did not say so."""
    declared = dict(galaxy()[1]["dependencies"])
    del declared["community.postgresql"]
    problems = undeclared(used, declared)
    assert (
        "roles/postgresql/tasks/passwords.yml: community.postgresql.postgresql_user (collection community.postgresql)"
        in problems
    )
    assert any(p.startswith("roles/backup/tasks/") for p in problems)
    assert all("community.postgresql" in p for p in problems)


def test_bounds():
    text, data = galaxy()
    lines = text.splitlines()
    for name, spec in data["dependencies"].items():
        clauses = [c.strip() for c in str(spec).split(",")]
        assert any(c.startswith(">=") for c in clauses), f"galaxy.yml: {name} {spec!r} has no lower bound"
        assert "*" not in clauses, f"galaxy.yml: {name}: '*' is no lower bound"
        if any(c.startswith(("<", "!=")) for c in clauses):
            line = next(i for i, row in enumerate(lines) if row.strip().startswith(f"{name}:"))
            comment = lines[line].partition("#")[2].strip() or (lines[line - 1].strip().startswith("#"))
            assert comment, f"galaxy.yml: {name} {spec!r} caps the version without a comment giving the reason"


def test_requirements_file_matches_galaxy():
    declared = galaxy()[1]["dependencies"]
    req = requirements()
    entries = {c["name"]: str(c.get("version", "*")) for c in req["collections"]}
    assert entries == {k: str(v) for k, v in declared.items()}, (
        "collections/requirements.yml != galaxy.yml dependencies"
    )
    assert set(req) == {"collections"}, "collections/requirements.yml: only collections (roles come with this one)"


# The scanner itself, on small trees: every kind of use it promises to find.
SAMPLES = {
    "roles/r/tasks/main.yml": """---
- name: A module
  community.postgresql.postgresql_user: {name: x}
- name: A block
  block:
    - name: Nested
      ansible.posix.sysctl: {name: a.b.c, value: "1"}
  rescue:
    - name: A lookup, a filter and a test
      ansible.builtin.debug:
        msg: "{{ lookup('community.hashi_vault.hashi_vault', 'x') | community.general.counter }}"
      when: x is not ansible.utils.ipaddr
- name: A role
  ansible.builtin.include_role:
    name: geerlingguy.docker.docker
- name: The old action form
  local_action: kubernetes.core.k8s state=present
""",
    "roles/r/templates/x.j2": "{{ y | netbox.netbox.nb_lookup }}\nnet.ipv4.ip_forward = 1\n",
    "roles/r/meta/main.yml": "---\ndependencies:\n  - role: devsec.hardening.os_hardening\n",
    "roles/r/defaults/main.yml": "---\nr_x: \"{{ query('amazon.aws.aws_ssm', 'y') }}\"\nnet.core.somaxconn: 1\n",
    "playbooks/p.yml": """---
- name: Imported
  ansible.builtin.import_playbook: containers.podman.site
- name: Local
  ansible.builtin.import_playbook: other.yml
- name: A play
  hosts: all
  module_defaults:
    group/community.mysql.mysql: {login_user: x}
  roles:
    - prometheus.prometheus.node_exporter
""",
    "plugins/modules/m.py": '''DOCUMENTATION = r"""
module: m
extends_documentation_fragment:
  - community.docker.docker
  - hardened.stack.redis_login
"""
from ansible_collections.community.crypto.plugins.module_utils.version import LooseVersion
''',
    "plugins/action/a.py": """class A:
    def run(self):
        self._execute_module(module_name="cisco.ios.ios_config")
""",
}


def test_scanner_finds_every_kind_of_use(tmp_path):
    for rel, text in SAMPLES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    used = used_names(str(tmp_path))
    problems = undeclared(used, {"community.general": ">=1.0.0"})
    tasks, play = "roles/r/tasks/main.yml", "playbooks/p.yml"
    assert problems == sorted(
        [
            f"{tasks}: community.postgresql.postgresql_user (collection community.postgresql)",
            f"{tasks}: ansible.posix.sysctl (collection ansible.posix)",
            f"{tasks}: community.hashi_vault.hashi_vault (collection community.hashi_vault)",
            f"{tasks}: ansible.utils.ipaddr (collection ansible.utils)",
            f"{tasks}: geerlingguy.docker.docker (collection geerlingguy.docker)",
            f"{tasks}: kubernetes.core.k8s (collection kubernetes.core)",
            "roles/r/templates/x.j2: netbox.netbox.nb_lookup (collection netbox.netbox)",
            "roles/r/meta/main.yml: devsec.hardening.os_hardening (collection devsec.hardening)",
            "roles/r/defaults/main.yml: amazon.aws.aws_ssm (collection amazon.aws)",
            f"{play}: containers.podman.site (collection containers.podman)",
            f"{play}: community.mysql.mysql (collection community.mysql)",
            f"{play}: prometheus.prometheus.node_exporter (collection prometheus.prometheus)",
            "plugins/modules/m.py: community.docker.docker (collection community.docker)",
            "plugins/modules/m.py: community.crypto.plugins.module_utils.version (collection community.crypto)",
            "plugins/action/a.py: cisco.ios.ios_config (collection cisco.ios)",
        ]
    )
    # Declared and builtin names pass; sysctl keys, file names and prose are no FQCNs.
    assert "community.general.counter" in used and "hardened.stack.redis_login" in used
    assert not any(n.startswith(("net.", "other.")) for n in used)


# README.md's "Requirements" and "Tested with" say what the code and the pins say.
def readme_section(title, raw=False):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1) if raw else " ".join(match.group(1).split())


def pins(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
        return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", fh.read(), re.M))


def installed_collection_version(name):
    import ansible_collections

    namespace, collection = name.split(".")
    for base in ansible_collections.__path__:
        manifest = os.path.join(base, namespace, collection, "MANIFEST.json")
        if os.path.exists(manifest):
            with open(manifest, encoding="utf-8") as fh:
                return json.load(fh)["collection_info"]["version"]
    raise AssertionError(f"{name} is not installed next to ansible-core (requirements.txt: ansible)")


def test_readme_requirements_match_the_metadata():
    section = readme_section("Requirements")
    with open(os.path.join(ROOT, "meta", "runtime.yml"), encoding="utf-8") as fh:
        requires = yaml.safe_load(fh)["requires_ansible"]
    assert f"`requires_ansible: {requires}`" in section
    for name, spec in galaxy()[1]["dependencies"].items():
        assert f"{name} {spec.replace('>=', '>= ')}" in section, f"README Requirements: {name} {spec}"


def test_readme_tested_with_matches_the_pins():
    """A line per tested ansible-core (requirements.txt's, tests/core_matrix.py's NEWEST) with its
    `ansible` package; the line of the ansible-core running this test names the collection
    versions it runs with (the 2.19 venv here, the 2.21 controller image in core-newest)."""
    from importlib.metadata import version

    from ansible.release import __version__ as core

    bullets = [" ".join(b.split()) for b in re.split(r"^- ", readme_section("Tested with", raw=True), flags=re.M)]
    with open(os.path.join(ROOT, "tests", "core_matrix.py"), encoding="utf-8") as fh:
        newest = ast.literal_eval(re.search(r"^NEWEST = (\{.*\})$", fh.read(), re.M).group(1))
    for pinned in (pins("requirements.txt"), newest):
        wanted = f"ansible-core {pinned['ansible-core']}", f"`ansible` {pinned['ansible']}"
        assert any(all(w in b for w in wanted) for b in bullets), f"README Tested with: no line {wanted}"
    line = next((b for b in bullets if f"ansible-core {core} " in b), None)
    assert line, f"README Tested with: no line for ansible-core {core}, which runs this test"
    assert f"`ansible` {version('ansible')}" in line, f"README Tested with: ansible {version('ansible')} runs here"
    for name in galaxy()[1]["dependencies"]:
        found = installed_collection_version(name)
        assert f"{name} {found}" in line, f"README Tested with: {name} {found} runs with ansible-core {core}"
