"""Connection facts computed from the inventory and the port map."""

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter.stack import stack_connection_facts, stack_endpoints

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
GROUPS = {"all": ["lb1", "lb2", "app1", "r1", "r2", "r3"], "loadbalancers": ["lb1", "lb2"], "app": ["app1"],
          "redis": ["r1", "r2", "r3"], "postgres": [], "etcd": [], "monitoring": [], "backup": []}
HOSTVARS = {"lb1": {"ansible_host": "10.0.0.10"}, "lb2": {"ansible_host": "2001:db8::2"},
            "app1": {}, "r1": {"ansible_host": "10.0.1.1"}, "r2": {"ansible_host": "10.0.1.2"},
            "r3": {"ansible_host": "10.0.1.3"}}


@pytest.fixture(name="pmap")
def fixture_pmap():
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["_common_port_map_defaults"]


def test_write_endpoint_and_sentinels(pmap, dns):
    dns["app1"] = ["10.0.2.21"]
    facts = stack_connection_facts(pmap, GROUPS, HOSTVARS)
    assert facts["pg_write_hosts"] == "10.0.0.10,2001:db8::2"
    assert facts["pg_write_port"] == 5000
    assert facts["sentinels"] == ["10.0.1.1:26379", "10.0.1.2:26379", "10.0.1.3:26379"]
    assert [e["endpoint"] for e in facts["pg_write"]] == ["10.0.0.10:5000", "[2001:db8::2]:5000"]


def test_host_without_ansible_host_uses_its_name_resolved(pmap, dns):
    dns["app1"] = ["10.0.2.21"]
    assert stack_endpoints(pmap, GROUPS, HOSTVARS, "app_http")[0]["endpoint"] == "10.0.2.21:8000"


def test_unresolvable_name_is_named(pmap):
    with pytest.raises(AnsibleFilterError, match="host 'app1': 'app1' .from the inventory name. does not resolve"):
        stack_endpoints(pmap, GROUPS, HOSTVARS, "app_http")


def test_port_override_follows(pmap, dns):
    dns["app1"] = ["10.0.2.21"]
    pmap["redis_sentinel"]["port"] = 26380
    assert stack_connection_facts(pmap, GROUPS, HOSTVARS)["sentinels"][0] == "10.0.1.1:26380"


def test_unknown_service_is_named(pmap):
    with pytest.raises(AnsibleFilterError, match="service 'memcached' is not in the port map"):
        stack_endpoints(pmap, GROUPS, HOSTVARS, "memcached")
