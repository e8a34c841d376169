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
# DNS names the tests resolve (socket.getaddrinfo is replaced): lb1 has no ansible_host.
NAMES = {"lb1": ["10.0.0.5"], "app3.example.net": ["10.0.0.23", "fd00::23"]}


@pytest.fixture(autouse=True)
def zone(dns):
    """The names these tests resolve (tests/unit/conftest.py's fake resolver)."""
    dns.update(NAMES)


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
    # A host without ansible_host is reached by its name, resolved on the controller.
    assert n.upstream_servers({"name": "a", "upstream_group": "loadbalancers"}, GROUPS, HOSTVARS,
                              PORT_MAP) == ["10.0.0.5:8000"]
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
        {"path": "/", "zone": "hs_shop_1_0", "rate": "20r/s", "burst": 40, "nodelay": True, "extra": [],
         "websocket": False, "streaming": False, "read_timeout": None, "send_timeout": None},
        {"path": "/api/", "zone": "hs_shop_1_1", "rate": "2r/s", "burst": 3, "nodelay": False, "extra": [],
         "websocket": False, "streaming": False, "read_timeout": None, "send_timeout": None}]
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


# Drained hosts: an IPv4 host, an IPv6 host (bracketed in the upstream) and a DNS-named host
# (resolved by the address model); keyed by inventory host name, never by address.
D_GROUPS = {"all": ["lb1", "web4", "web6", "webdns", "db1"], "app": ["web6", "webdns", "web4"],
            "loadbalancers": ["lb1"], "postgres": ["db1"]}
D_HOSTVARS = {"web4": {"ansible_host": "192.0.2.14"},
              "web6": {"ansible_host": "mgmt-web6.example.net", "hardened_stack_address": "fd00::21"},
              "webdns": {"ansible_host": "app3.example.net"}, "db1": {"ansible_host": "10.0.0.9"}, "lb1": {}}


@pytest.mark.parametrize("host,server", [("web4", "192.0.2.14:8000"), ("web6", "[fd00::21]:8000"),
                                         ("webdns", "10.0.0.23:8000")])
def test_upstream_peers_drain_by_host_name(host, server):
    peers = n.upstream_peers({"name": "a"}, D_GROUPS, D_HOSTVARS, PORT_MAP, [host])
    assert [p["host"] for p in peers] == ["web4", "web6", "webdns"]
    assert [p for p in peers if p["down"]] == [{"server": server, "host": host, "down": True}]
    assert n.upstream_servers({"name": "a"}, D_GROUPS, D_HOSTVARS, PORT_MAP) == [
        "192.0.2.14:8000", "[fd00::21]:8000", "10.0.0.23:8000"]


@pytest.mark.parametrize("host,server", [("web4", "192.0.2.14:8000"), ("web6", "[fd00::21]:8000"),
                                         ("webdns", "10.0.0.23:8000")])
def test_normalise_renders_drained_hosts_down(host, server):
    site, = n.normalise([{"name": "a"}], D_GROUPS, D_HOSTVARS, PORT_MAP, dict(DEFAULTS, drained_hosts=[host]))
    assert site["drained"] == [host]
    assert [p["server"] for p in site["peers"] if p["down"]] == [server]
    assert site["servers"] == ["192.0.2.14:8000", "[fd00::21]:8000", "10.0.0.23:8000"]
    # Nothing drained: the same servers, none down (what site.yml renders).
    plain, = n.normalise([{"name": "a"}], D_GROUPS, D_HOSTVARS, PORT_MAP, DEFAULTS)
    assert plain["drained"] == [] and not any(p["down"] for p in plain["peers"])
    assert plain["servers"] == site["servers"]


def test_drained_host_down_in_every_site_that_uses_it():
    sites = [{"name": "a"}, {"name": "b", "upstream_group": "app"}, {"name": "c", "upstream_group": "postgres"}]
    got = n.normalise(sites, D_GROUPS, D_HOSTVARS, PORT_MAP, dict(DEFAULTS, drained_hosts=["web6", "db1"]))
    assert [s["drained"] for s in got] == [["web6"], ["web6"], ["db1"]]


def test_explicit_upstream_servers_drained_by_address_or_name():
    servers = ["[fd00:0::21]:8000", "10.0.0.23:9000", "web4:8000", "203.0.113.9:8000"]
    site = {"name": "x", "upstream_servers": servers}
    peers = n.upstream_peers(site, D_GROUPS, D_HOSTVARS, PORT_MAP, ["web6", "webdns", "web4"])
    assert [(p["server"], p["host"], p["down"]) for p in peers] == [
        ("[fd00:0::21]:8000", "web6", True), ("10.0.0.23:9000", "webdns", True), ("web4:8000", "web4", True),
        ("203.0.113.9:8000", None, False)]
    # Without drained hosts, explicit entries get no host (nothing is resolved).
    assert [p["host"] for p in n.upstream_peers(site, D_GROUPS, D_HOSTVARS, PORT_MAP)] == [None] * 4


@pytest.mark.parametrize("drained,fragment", [
    (["nosuch"], "nginx_drained_hosts: 'nosuch' is not in the inventory"),
    (["web4", "192.0.2.14", "x"], "'192.0.2.14', 'x' are not in the inventory (give inventory host names"),
    ("web4", "must be a list of inventory host names"),
    ([1], "must be a list of inventory host names"),
    (["db1"], "nginx_drained_hosts: 'db1' is an upstream server of no site (sites: a)"),
])
def test_drained_problems_name_the_variable(drained, fragment):
    found = n.drained_problems(drained, [{"name": "a"}], D_GROUPS, D_HOSTVARS, PORT_MAP)
    assert len(found) == 1 and fragment in found[0], found
    with pytest.raises(n.NginxSiteError, match="nginx_drained_hosts"):
        n.normalise([{"name": "a"}], D_GROUPS, D_HOSTVARS, PORT_MAP, dict(DEFAULTS, drained_hosts=drained))


def test_drained_problems_none_when_fine():
    assert n.drained_problems([], [{"name": "a"}], D_GROUPS, D_HOSTVARS, PORT_MAP) == []
    assert n.drained_problems(None, [{"name": "a"}], D_GROUPS, D_HOSTVARS, PORT_MAP) == []
    assert n.drained_problems(["webdns", "web6"], [{"name": "a"}], D_GROUPS, D_HOSTVARS, PORT_MAP) == []


def test_site_template_marks_drained_server_down_and_names_the_host():
    jinja2 = pytest.importorskip("jinja2")
    import os
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "nginx", "templates")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(root), trim_blocks=True)
    env.filters["bool"] = bool
    site, = n.normalise([{"name": "a"}], D_GROUPS, D_HOSTVARS, PORT_MAP, dict(DEFAULTS, drained_hosts=["web6"]))
    text = env.get_template("site.conf.j2").render(site=site, nginx_upstream_max_fails=3,
                                                   nginx_upstream_fail_timeout="10s", nginx_upstream_keepalive=32)
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("server ") and "max_fails" in line]
    assert lines == ["server 192.0.2.14:8000 max_fails=3 fail_timeout=10s; # web4",
                     "server [fd00::21]:8000 max_fails=3 fail_timeout=10s down; # web6 drained",
                     "server 10.0.0.23:8000 max_fails=3 fail_timeout=10s; # webdns"]
    assert "# Drained (nginx_drained_hosts, marked down): web6." in text
