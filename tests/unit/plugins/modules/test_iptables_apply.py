"""iptables_apply's foreign-first list: one list (module_utils), the same default everywhere it
is documented (the module's option, the firewall role's defaults and argument specs)."""

import os

import yaml

from ansible_collections.hardened.stack.plugins.module_utils import iptables as ipt
from ansible_collections.hardened.stack.plugins.modules import iptables_apply

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ROLE = os.path.join(ROOT, "roles", "firewall")


def _yaml(*parts):
    with open(os.path.join(ROLE, *parts), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def test_module_documents_the_list_of_module_utils():
    option = yaml.safe_load(iptables_apply.DOCUMENTATION)["options"]["foreign_first"]
    assert option["type"] == "list" and option["elements"] == "str"
    assert tuple(option["default"]) == ipt.FOREIGN_FIRST


def test_role_default_and_argument_spec_are_the_same_list():
    assert tuple(_yaml("defaults", "main.yml")["firewall_foreign_first_chains"]) == ipt.FOREIGN_FIRST
    spec = _yaml("meta", "argument_specs.yml")["argument_specs"]["main"]["options"]["firewall_foreign_first_chains"]
    assert tuple(spec["default"]) == ipt.FOREIGN_FIRST


def test_every_default_pattern_passes_the_checks_of_the_module_and_the_role():
    assert ipt.check_patterns(list(ipt.FOREIGN_FIRST)) == ipt.FOREIGN_FIRST
    for pattern in ipt.FOREIGN_FIRST:
        assert ipt.PATTERN_RE.match(pattern), pattern
