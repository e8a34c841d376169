"""nginx long-lived routes (issue 19): WebSocket and streaming locations, their timeouts, and
the graceful drain bound, from the site checks to the configuration the role's templates render
(the real templates, rendered with jinja2 and Ansible's own filters)."""

import os

import pytest
from ansible.plugins.filter.core import FilterModule as CoreFilters
from ansible_collections.hardened.stack.plugins.filter import nginx as nginx_filters
from ansible_collections.hardened.stack.plugins.module_utils import nginx as n

jinja2 = pytest.importorskip("jinja2")

TEMPLATES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "nginx", "templates")
PORT_MAP = {"app_http": {"port": 8000}}
GROUPS = {"all": ["app1"], "app": ["app1"]}
HOSTVARS = {"app1": {"ansible_host": "10.0.0.21"}}
DEFAULTS = {
    "profile": "intermediate",
    "pki_dir": "/etc/pki",
    "certificate": "lb1",
    "server_names": ["lb1"],
    "rate": "20r/s",
    "burst": 40,
    "nodelay": True,
    "client_max_body_size": "1m",
    "headers": {},
    "hsts_preload": False,
}
FORWARDING = [
    "proxy_set_header Host $host;",
    "proxy_set_header X-Real-IP $remote_addr;",
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
]


def env():
    e = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, undefined=jinja2.StrictUndefined
    )
    e.filters.update(CoreFilters().filters())
    e.filters["bool"] = bool
    return e


def sites(*defs):
    return n.normalise(list(defs), GROUPS, HOSTVARS, PORT_MAP, DEFAULTS)


def render_site(site):
    text = (
        env()
        .get_template("site.conf.j2")
        .render(
            site=site,
            ansible_managed="managed",
            nginx_upstream_max_fails=3,
            nginx_upstream_fail_timeout="10s",
            nginx_upstream_keepalive=32,
            _nginx_http2_directive=True,
            _nginx_https_port=443,
            nginx_listen_ipv6=False,
            nginx_tls_profile="intermediate",
            nginx_hsts_max_age=1,
            nginx_hsts_include_subdomains=False,
            nginx_limit_conn=100,
            nginx_health_path="/health",
        )
    )
    return [line.strip() for line in text.splitlines()]


def blocks(lines):
    """{location path: [its directive lines]}; key None holds the server-level lines."""
    out, current = {None: []}, None
    for line in lines:
        if line.startswith("location ") and line.endswith("{"):
            current = line.split()[-2]
            out[current] = []
        elif line == "}" and current is not None:
            current = None
        else:
            out[current].append(line)
    return out


def render_http(rendered_sites):
    values = dict(
        ansible_managed="managed",
        nginx_tls_profile="intermediate",
        nginx_ssl_session_cache_size="10m",
        nginx_ssl_session_timeout="1d",
        nginx_client_max_body_size="1m",
        nginx_client_body_buffer_size="16k",
        nginx_client_header_buffer_size="1k",
        nginx_large_client_header_buffers="4 8k",
        nginx_client_header_timeout="10s",
        nginx_client_body_timeout="10s",
        nginx_send_timeout="10s",
        nginx_keepalive_timeout="30s",
        nginx_limit_status=429,
        nginx_rate_limit_zone_size="10m",
        nginx_metrics_log="",
        nginx_proxy_connect_timeout="3s",
        nginx_proxy_read_timeout="60s",
        nginx_proxy_next_upstream="error",
        nginx_gzip_types=["text/plain"],
        _nginx_http_port=80,
        _nginx_https_port=443,
        nginx_listen_ipv6=False,
        nginx_stub_status_listen="127.0.0.1:80",
        nginx_stub_status_path="/stub_status",
        _nginx_sites=rendered_sites,
    )
    return env().get_template("http.conf.j2").render(**values)


@pytest.mark.parametrize(
    "value,ok",
    [
        ("90s", True),
        ("500ms", True),
        ("10m", True),
        ("1h", True),
        ("2d", True),
        ("90", True),
        (90, True),
        # several units written together, and weeks (the new-user tryout's 1m30s and 1w)
        ("1m30s", True),
        ("1h30m", True),
        ("1w", True),
        ("0s", False),
        ("0", False),
        (0, False),
        ("1.5m", False),
        ("90 s", False),
        ("1h 30m", False),
        ("-5s", False),
        ("10y", False),
        ("", False),
        (None, False),
        (True, False),
        ("90s;", False),
        ([], False),
    ],
)
def test_duration_syntax(value, ok):
    assert n.valid_duration(value) is ok
    assert nginx_filters.nginx_duration_valid(value) is ok


@pytest.mark.parametrize(
    "site,fragment",
    [
        (
            {"name": "a", "locations": [{"path": "/ws/", "websocket": "yes"}]},
            "site 'a' location #0: websocket must be true or false, got 'yes'",
        ),
        ({"name": "a", "locations": [{"path": "/s/", "streaming": 1}]}, "location #0: streaming must be true or false"),
        (
            {"name": "a", "locations": [{"path": "/s/", "read_timeout": "1.5m"}]},
            "location #0: read_timeout '1.5m' must be an nginx duration",
        ),
        (
            {"name": "a", "locations": [{"path": "/s/", "send_timeout": "10s; return 200"}]},
            "location #0: send_timeout '10s; return 200' must be an nginx duration",
        ),
        ({"name": "a", "read_timeout": "forever"}, "site 'a': read_timeout 'forever' must be an nginx duration"),
        ({"name": "a", "websocket": "true"}, "site 'a': websocket must be true or false"),
        ({"name": "a", "locations": [{"path": "/", "upgrade": True}]}, "unknown key(s) upgrade"),
    ],
)
def test_long_lived_options_are_checked_and_named(site, fragment):
    found = n.problems([site], GROUPS, PORT_MAP)
    assert any(fragment in p for p in found), found
    with pytest.raises(n.NginxSiteError, match="must be|unknown key"):
        n.normalise([site], GROUPS, HOSTVARS, PORT_MAP, DEFAULTS)


def test_locations_inherit_the_site_options_and_override_them():
    (site,) = sites(
        {
            "name": "live",
            "websocket": True,
            "read_timeout": "90s",
            "locations": [
                {"path": "/"},
                {"path": "/plain/", "websocket": False, "read_timeout": 30},
                {"path": "/feed/", "streaming": True, "send_timeout": "2m"},
            ],
        }
    )
    got = [
        (loc["path"], loc["websocket"], loc["streaming"], loc["read_timeout"], loc["send_timeout"])
        for loc in site["locations"]
    ]
    assert got == [
        ("/", True, False, "90s", None),
        ("/plain/", False, False, "30", None),
        ("/feed/", True, True, "90s", "2m"),
    ]


def test_websocket_location_passes_upgrade_and_the_others_keep_keepalive():
    (site,) = sites(
        {"name": "live", "locations": [{"path": "/"}, {"path": "/ws/", "websocket": True, "read_timeout": "45s"}]}
    )
    b = blocks(render_site(site))
    # Server level: the forwarding headers and Connection "" (upstream keepalive), no Upgrade.
    for line in FORWARDING + ['proxy_set_header Connection "";']:
        assert line in b[None]
    assert not [line for line in b[None] + b["/"] if "Upgrade" in line or "upgrade" in line]
    # The plain location sets no proxy_set_header of its own, so it inherits the server's set.
    assert not [line for line in b["/"] if line.startswith("proxy_set_header")]
    # The WebSocket location: its own proxy_set_header replaces the inherited set in nginx, so
    # every forwarding header is repeated next to Upgrade / Connection.
    ws = b["/ws/"]
    assert [line for line in ws if line.startswith("proxy_set_header")] == FORWARDING + [
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $hs_connection_upgrade;",
    ]
    assert "proxy_http_version 1.1;" in ws and "proxy_read_timeout 45s;" in ws
    assert not [line for line in ws if "proxy_buffering" in line or "proxy_send_timeout" in line]


def test_streaming_location_turns_buffering_cache_and_gzip_off():
    (site,) = sites(
        {
            "name": "shop",
            "locations": [
                {"path": "/"},
                {"path": "/stream/", "streaming": True, "read_timeout": "1h", "send_timeout": "5m"},
            ],
        }
    )
    b = blocks(render_site(site))
    assert set(b["/stream/"]) >= {
        "proxy_buffering off;",
        "proxy_request_buffering off;",
        "proxy_cache off;",
        "chunked_transfer_encoding on;",
        "gzip off;",
        "proxy_read_timeout 1h;",
        "proxy_send_timeout 5m;",
    }
    assert not [line for line in b["/"] + b[None] if line.startswith(("proxy_buffering", "gzip", "proxy_read"))]
    assert not [line for line in b["/stream/"] if "Upgrade" in line]


def test_connection_map_rendered_once_and_only_with_a_websocket_location():
    plain = sites({"name": "a"})
    assert "$hs_connection_upgrade" not in render_http(plain)
    two = sites(
        {"name": "a", "locations": [{"path": "/ws/", "websocket": True}]},
        {"name": "b", "server_names": ["b"], "websocket": True},
    )
    text = render_http(two)
    assert text.count("map $http_upgrade $hs_connection_upgrade {") == 1
    body = text.split("map $http_upgrade $hs_connection_upgrade {", 1)[1].split("}", 1)[0]
    # Empty (not "close") without an Upgrade: plain requests keep the upstream keepalive.
    assert [line.strip() for line in body.strip().splitlines()] == ["default upgrade;", "'' '';"]


@pytest.mark.parametrize("bound,line", [("60s", "worker_shutdown_timeout 60s;"), ("", None)])
def test_graceful_drain_bound_in_the_main_context(bound, line):
    text = (
        env()
        .get_template("nginx.conf.j2")
        .render(
            ansible_managed="managed",
            nginx_worker_processes="auto",
            nginx_error_log_level="warn",
            nginx_worker_connections=512,
            nginx_worker_shutdown_timeout=bound,
        )
    )
    main = text.split("events {", 1)[0]
    lines = [x.strip() for x in main.splitlines() if x.strip().startswith("worker_shutdown_timeout")]
    assert lines == ([line] if line else [])
