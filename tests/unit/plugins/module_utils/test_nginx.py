"""nginx site logic (plugins/module_utils/nginx.py): rate syntax, site checks, upstream
servers from the inventory and the port map, headers, normalised sites."""

import pytest
from ansible_collections.hardened.stack.plugins.module_utils import nginx as n

PORT_MAP = {"app_http": {"port": 8000, "protocol": "tcp", "listen": ["app"], "from": ["loadbalancers"]},
            "api": {"port": 9000, "protocol": "tcp", "listen": ["api"], "from": ["loadbalancers"]}}
GROUPS = {"all": ["lb1", "app1", "app2", "v6"], "app": ["app2", "app1"], "loadbalancers": ["lb1"],
          "api": ["v6"], "empty": []}
HOSTVARS = {"app1": {"ansible_host": "10.0.0.21"}, "app2": {"ansible_host": "10.0.0.22"},
            "v6": {"ansible_host": "fd00::5"}, "lb1": {}}
DEFAULTS = {"profile": "intermediate", "pki_dir": "/etc/pki/", "certificate": "lb1", "server_names": ["lb1"],
            "rate": "20r/s", "burst": 40, "nodelay": True, "client_max_body_size": "1m",
            "headers": {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}, "hsts_preload": False}


@pytest.mark.parametrize("rate,expected", [("10r/s", (10, "s")), ("300r/m", (300, "m")), (" 1r/s", (1, "s"))])
def test_parse_rate_accepts_nginx_syntax(rate, expected):
    assert n.parse_rate(rate) == expected


@pytest.mark.parametrize("rate", ["10", "10r/h", "0r/s", "-1r/s", "10 r/s", "ten/s", "1.5r/s", 10, None, ""])
def test_parse_rate_rejects_anything_else(rate):
    with pytest.raises(n.NginxSiteError, match="rate"):
        n.parse_rate(rate)


def test_default_site_has_no_problem():
    assert n.problems([{"name": "app"}], GROUPS, PORT_MAP) == []


@pytest.mark.parametrize("site,fragment", [
    ({"name": "Bad Name"}, "name"),
    ({"name": "a", "rate": "fast"}, "not nginx rate syntax"),
    ({"name": "a", "locations": [{"path": "/x", "rate": "5r/h"}]}, "location #0: rate"),
    ({"name": "a", "upstream_group": "empty"}, "upstream group 'empty' has no hosts"),
    ({"name": "a", "upstream_group": "nosuch"}, "upstream group 'nosuch' has no hosts"),
    ({"name": "a", "upstream_service": "nosuch"}, "not in the port map"),
    ({"name": "a", "upstream_servers": []}, "non-empty list"),
    ({"name": "a", "upstream_servers": ["10.0.0.1"]}, "not address:port"),
    ({"name": "a", "certificate_file": "/x.crt"}, "certificate_key_file"),
    ({"name": "a", "locations": []}, "non-empty list"),
    ({"name": "a", "locations": [{"path": "x"}]}, "must start with '/'"),
    ({"name": "a", "locations": [{"path": "/a"}, {"path": "/a"}]}, "defined twice"),
    ({"name": "a", "locations": [{"path": "/a", "burst": -1}]}, "burst"),
    ({"name": "a", "headers": {"Bad Header": "x"}}, "headers"),
    ({"name": "a", "headers": {"X-A": 'say "hi"'}}, "double quotes"),
    ({"name": "a", "client_max_body_size": "lots"}, "client_max_body_size"),
    ({"name": "a", "typo": 1}, "unknown key(s) typo"),
    ({"name": "a", "server_names": ["a b"]}, "server_names"),
])
def test_problems_name_the_defect(site, fragment):
    found = n.problems([site], GROUPS, PORT_MAP)
    assert any(fragment in p for p in found), found


def test_problems_site_list_and_profile():
    assert n.problems([], GROUPS, PORT_MAP) == ["nginx_sites must be a non-empty list of sites"]
    assert "TLS profile 'old' is unknown" in n.problems([{"name": "a"}], GROUPS, PORT_MAP, "old")[0]
    dup = n.problems([{"name": "a"}, {"name": "a"}], GROUPS, PORT_MAP)
    assert dup == ["site 'a': the name is used by two sites"]
    two = n.problems([{"name": "a", "default_server": True}, {"name": "b", "default_server": True}], GROUPS, PORT_MAP)
    assert two == ["only one site can be default_server, got a, b"]


def test_upstream_servers_from_group_and_port_map():
    assert n.upstream_servers({"name": "a"}, GROUPS, HOSTVARS, PORT_MAP) == ["10.0.0.21:8000", "10.0.0.22:8000"]
    assert n.upstream_servers({"name": "a", "upstream_group": "api", "upstream_service": "api"},
                              GROUPS, HOSTVARS, PORT_MAP) == ["[fd00::5]:9000"]
    # A host without ansible_host is reached by its name.
    assert n.upstream_servers({"name": "a", "upstream_group": "loadbalancers"}, GROUPS, HOSTVARS,
                              PORT_MAP) == ["lb1:8000"]
    assert n.upstream_servers({"name": "a", "upstream_servers": ["x:1"]}, GROUPS, HOSTVARS, PORT_MAP) == ["x:1"]
    with pytest.raises(n.NginxSiteError, match="no hosts"):
        n.upstream_servers({"name": "a", "upstream_group": "empty"}, GROUPS, HOSTVARS, PORT_MAP)


def test_merged_headers_override_and_drop():
    got = n.merged_headers({"A": "1", "B": "2"}, {"B": "3", "A": "", "C": "4"})
    assert got == [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]


def test_normalise_fills_every_field():
    api = {"path": "/api/", "rate": "2r/s", "burst": 3, "nodelay": False}
    sites = [{"name": "shop-1", "locations": [{"path": "/"}, api]},
             {"name": "b", "certificate_file": "/c.crt", "certificate_key_file": "/c.key", "hsts_preload": True,
              "headers": {"Referrer-Policy": None}, "client_max_body_size": "8m"}]
    defaults = dict(DEFAULTS, certs={"b": {"rsa": True, "ocsp": True}})
    a, b = n.normalise(sites, GROUPS, HOSTVARS, PORT_MAP, defaults)
    assert a["upstream"] == "hs_shop_1" and a["default_server"] and not b["default_server"]
    assert (a["certificate"], a["certificate_key"]) == ("/etc/pki/lb1-fullchain.crt", "/etc/pki/lb1.key")
    assert a["locations"] == [
        {"path": "/", "zone": "hs_shop_1_0", "rate": "20r/s", "burst": 40, "nodelay": True, "extra": []},
        {"path": "/api/", "zone": "hs_shop_1_1", "rate": "2r/s", "burst": 3, "nodelay": False, "extra": []}]
    assert a["server_names"] == ["lb1"] and not a["rsa"] and not a["ocsp"] and not a["hsts_preload"]
    assert [h["name"] for h in a["headers"]] == ["Referrer-Policy", "X-Frame-Options"]
    assert (b["certificate"], b["certificate_key"]) == ("/c.crt", "/c.key")
    assert b["rsa"] and b["ocsp"] and b["hsts_preload"] and b["client_max_body_size"] == "8m"
    assert b["headers"] == [{"name": "X-Frame-Options", "value": "DENY"}]


def test_normalise_explicit_default_server_and_errors():
    a, b = n.normalise([{"name": "a"}, {"name": "b", "default_server": True}], GROUPS, HOSTVARS, PORT_MAP, DEFAULTS)
    assert not a["default_server"] and b["default_server"]
    with pytest.raises(n.NginxSiteError, match="upstream group 'empty'"):
        n.normalise([{"name": "a", "upstream_group": "empty"}], GROUPS, HOSTVARS, PORT_MAP, DEFAULTS)


def test_cert_kind():
    assert n.cert_kind({"public_key_type": "RSA", "ocsp_uri": "http://ocsp.example"}) == {"rsa": True, "ocsp": True}
    assert n.cert_kind({"public_key_type": "ECC", "ocsp_uri": None}) == {"rsa": False, "ocsp": False}
    assert n.cert_kind({"skipped": True}) == {"rsa": False, "ocsp": False}
    assert n.cert_kind(None) == {"rsa": False, "ocsp": False}
