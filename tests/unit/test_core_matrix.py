"""tests/core_matrix.py leaves out exactly the unit test modules that run Debian 12's servers,
and tests the range meta/runtime.yml claims."""

import importlib.util
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# an import of the helpers, or a test/fixture taking the server fixtures of conftest.py
USES_SERVERS = re.compile(r"^\s*(import (debian|loopback)\b|from (debian|loopback) import)"
                          r"|^\s*def \w+\([^)]*\b(procs|module_procs)\b", re.MULTILINE)


def matrix():
    spec = importlib.util.spec_from_file_location("core_matrix", os.path.join(ROOT, "tests", "core_matrix.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def server_test_modules():
    found = []
    for folder, _dirs, files in os.walk(os.path.join(ROOT, "tests", "unit")):
        for name in files:
            if name.startswith("test_") and name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as fh:
                    if USES_SERVERS.search(fh.read()):
                        found.append(os.path.relpath(path, ROOT))
    return sorted(found)


def test_server_tests_are_exactly_those_using_debian_servers():
    listed = sorted(matrix().SERVER_TESTS)
    found = [p for p in server_test_modules() if p != "tests/unit/test_core_matrix.py"]
    assert listed == found


def test_newest_core_is_the_top_of_requires_ansible():
    with open(os.path.join(ROOT, "meta", "runtime.yml"), encoding="utf-8") as fh:
        spec = yaml.safe_load(fh)["requires_ansible"]
    newest = matrix().NEWEST["ansible-core"]
    major_minor = tuple(int(x) for x in newest.split(".")[:2])
    upper = re.search(r"<\s*(\d+)\.(\d+)", spec)
    assert upper, spec
    assert (int(upper.group(1)), int(upper.group(2)) - 1) == major_minor, (spec, newest)


def test_oldest_core_is_the_venvs():
    with open(os.path.join(ROOT, "meta", "runtime.yml"), encoding="utf-8") as fh:
        spec = yaml.safe_load(fh)["requires_ansible"]
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as fh:
        pinned = re.search(r"^ansible-core==(\d+)\.(\d+)", fh.read(), re.MULTILINE)
    lower = re.search(r">=\s*(\d+)\.(\d+)", spec)
    assert pinned and lower
    assert pinned.groups() == lower.groups(), (spec, pinned.group(0))


def test_tooling_tests_exist():
    for path in matrix().TOOLING_TESTS:
        assert os.path.isfile(os.path.join(ROOT, path)), path
