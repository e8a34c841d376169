"""nginx filters (plugins/filter/nginx.py): errors become AnsibleFilterError, checks pass through."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter import nginx as f

PORT_MAP = {"app_http": {"port": 8000, "protocol": "tcp", "listen": ["app"], "from": ["loadbalancers"]}}
GROUPS = {"app": ["app1"], "none": []}
HOSTVARS = {"app1": {"ansible_host": "10.1.1.1"}}
DEFAULTS = {"pki_dir": "/p", "certificate": "lb", "server_names": ["lb"], "rate": "1r/s", "burst": 1,
            "client_max_body_size": "1m", "headers": {}}


def test_filters_registered():
    assert set(f.FilterModule().filters()) == {"nginx_site_problems", "nginx_sites", "nginx_upstream_servers",
                                               "nginx_drained_problems", "nginx_rate_valid", "nginx_cert_kind",
                                               "nginx_duration_valid"}


def test_sites_and_upstreams():
    assert f.nginx_sites([{"name": "a"}], GROUPS, HOSTVARS, PORT_MAP, DEFAULTS)[0]["servers"] == ["10.1.1.1:8000"]
    assert f.nginx_upstream_servers({"name": "a"}, GROUPS, HOSTVARS, PORT_MAP) == ["10.1.1.1:8000"]
    with pytest.raises(AnsibleFilterError, match="upstream group 'none' has no hosts"):
        f.nginx_sites([{"name": "a", "upstream_group": "none"}], GROUPS, HOSTVARS, PORT_MAP, DEFAULTS)
    with pytest.raises(AnsibleFilterError, match="no hosts"):
        f.nginx_upstream_servers({"name": "a", "upstream_group": "none"}, GROUPS, HOSTVARS, PORT_MAP)


def test_checks():
    assert f.nginx_rate_valid("5r/m") and not f.nginx_rate_valid("5/m")
    assert f.nginx_site_problems([{"name": "a"}], GROUPS, PORT_MAP) == []
    assert f.nginx_site_problems([{"name": "a"}], GROUPS, PORT_MAP, "legacy")
    assert f.nginx_cert_kind({"public_key_type": "RSA"}) == {"rsa": True, "ocsp": False}


def test_drained_problems_filter():
    assert f.nginx_drained_problems([], [{"name": "a"}], GROUPS, HOSTVARS, PORT_MAP) == []
    assert f.nginx_drained_problems(["app1"], [{"name": "a"}], GROUPS, HOSTVARS, PORT_MAP) == []
    got = f.nginx_drained_problems(["10.1.1.1"], [{"name": "a"}], GROUPS, HOSTVARS, PORT_MAP)
    assert got == ["nginx_drained_hosts: '10.1.1.1' is not in the inventory (give inventory host names, not addresses)"]
    site, = f.nginx_sites([{"name": "a"}], GROUPS, HOSTVARS, PORT_MAP, dict(DEFAULTS, drained_hosts=["app1"]))
    assert site["drained"] == ["app1"] and site["peers"] == [{"server": "10.1.1.1:8000", "host": "app1", "down": True}]
    with pytest.raises(AnsibleFilterError, match="nginx_drained_hosts: 'nosuch' is not in the inventory"):
        f.nginx_sites([{"name": "a"}], GROUPS, HOSTVARS, PORT_MAP, dict(DEFAULTS, drained_hosts=["nosuch"]))
