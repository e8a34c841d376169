"""subjectAltName computation for host certificates."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter.pki import pki_host_sans
from ansible_collections.hardened.stack.plugins.module_utils import pki

FACTS = {
    "hostname": "pg1",
    "fqdn": "pg1.lab.example",
    "nodename": "pg1",
    "all_ipv4_addresses": ["172.30.10.31", "10.0.0.5"],
    "all_ipv6_addresses": ["fe80::1%eth0", "2001:db8::31"],
}


def test_names_addresses_and_loopback():
    sans = pki.host_sans("pg1", FACTS, "172.30.10.31", ["DNS:db.example.net"])
    assert sans == ["DNS:db.example.net", "DNS:localhost", "DNS:pg1", "DNS:pg1.lab.example",
                    "IP:10.0.0.5", "IP:127.0.0.1", "IP:172.30.10.31", "IP:::1", "IP:2001:db8::31"]


def test_link_local_is_left_out_and_duplicates_collapse():
    sans = pki.host_sans("PG1", FACTS, "pg1.lab.example", ["IP:172.30.10.31"], loopback=False)
    assert "IP:fe80::1" not in sans
    assert sans.count("DNS:pg1") == 1
    assert sans.count("IP:172.30.10.31") == 1
    assert "DNS:localhost" not in sans


def test_ipv6_is_compressed():
    assert pki.normalise_san("IP:2001:0db8:0000::0031") == "IP:2001:db8::31"


@pytest.mark.parametrize("san, message", [
    ("db.example.net", "must look like DNS:name or IP:address"),
    ("IP:300.1.1.1", "'300.1.1.1' is not an IP address"),
    ("URI:https://x", "type 'URI' is not DNS or IP"),
    ("DNS:", "is not a DNS name"),
])
def test_bad_sans_name_the_value(san, message):
    with pytest.raises(pki.SanError, match=message.replace(".", r"\.").replace("(", r"\(")):
        pki.normalise_san(san)


def test_filter_raises_ansible_error_naming_the_san():
    with pytest.raises(AnsibleFilterError, match="bogus"):
        pki_host_sans("h", {}, None, ["bogus"])


def test_endpoint_sans_give_backends_the_endpoint_names(dns):
    from ansible_collections.hardened.stack.plugins.module_utils import pki as pki_utils  # noqa: PLC0415
    groups = {"postgres": ["pg1", "pg2"], "loadbalancers": ["lb1", "lb2"], "app": ["app1"]}
    hostvars = {"lb1": {"ansible_host": "10.0.0.10"}, "lb2": {"ansible_host": "lb2.example.net"}, "pg1": {}}
    dns["lb2.example.net"] = ["10.0.0.11"]
    sans = pki_utils.endpoint_sans("pg1", groups, hostvars, {"postgres": "loadbalancers"})
    # The endpoint's name, its configured address and the cluster address it resolves to.
    assert sans == ["DNS:lb1", "IP:10.0.0.10", "DNS:lb2", "DNS:lb2.example.net", "IP:10.0.0.11"]
    # Hosts outside the backend group get nothing extra; a host never lists itself.
    assert pki_utils.endpoint_sans("app1", groups, hostvars, {"postgres": "loadbalancers"}) == []
    both = {"postgres": ["pg1"], "loadbalancers": ["pg1"]}
    assert pki_utils.endpoint_sans("pg1", both, {}, {"postgres": "loadbalancers"}) == []
    assert pki_utils.endpoint_sans("pg1", groups, hostvars, {}) == []
