"""Blackbox probes of the public entry (plugins/module_utils/prometheus_config.py
blackbox_targets and the scrape job "blackbox"): every nginx site's server name through the
front door and each load balancer, Host/SNI through the probe's hostname parameter, given URLs,
and the errors that name the bad value."""

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter import prometheus as flt
from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm
from ansible_collections.hardened.stack.plugins.module_utils import prometheus_config as pc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

GROUPS = {
    "all": ["lb1", "lb2", "mon1", "mon2", "app1"],
    "loadbalancers": ["lb1", "lb2"],
    "monitoring": ["mon1", "mon2"],
    "app": ["app1"],
}
SITES = [
    {"name": "shop", "server_names": ["shop.example", "www.shop.example", "*.shop.example", "_"]},
    {"name": "api", "server_names": ["api.example", "~^v[0-9]+\\.api\\.example$"]},
]
HOSTVARS = {
    "lb1": {"ansible_host": "10.0.0.1", "nginx_sites": SITES},
    "lb2": {"ansible_host": "10.0.0.2", "nginx_sites": SITES + [{"name": "lb2", "server_names": ["lb2.example"]}]},
    "mon1": {"ansible_host": "10.0.0.31"},
    "mon2": {"hardened_stack_address": "fd00::32"},
    "app1": {"ansible_host": "10.0.0.41"},
}
OPTIONS = {
    "ca_file": "/ca",
    "cert_file": "/crt",
    "key_file": "/key",
    "username": "prometheus",
    "password_file": "/pw",
    "cluster": "prod",
}


@pytest.fixture(name="port_map")
def fixture_port_map():
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return pm.validate(yaml.safe_load(fh)["_common_port_map_defaults"], GROUPS)


def test_blackbox_runs_on_the_monitoring_hosts(port_map):
    assert "blackbox" in pc.exporters_for(port_map, "mon1", GROUPS)
    assert "blackbox" not in pc.exporters_for(port_map, "lb1", GROUPS)


def test_every_server_name_at_every_load_balancer_over_https_and_http(port_map):
    probes = pc.blackbox_targets(port_map, GROUPS, HOSTVARS, "/health")
    https = [(p["url"], p["target"], p["hostname"], p["via"]) for p in probes if p["scheme"] == "https"]
    # Wildcards and regexes name no URL; each load balancer with its own sites; Host/SNI = the name.
    assert https == [
        ("https://shop.example/health", "https://10.0.0.1:443/health", "shop.example", "lb1"),
        ("https://www.shop.example/health", "https://10.0.0.1:443/health", "www.shop.example", "lb1"),
        ("https://api.example/health", "https://10.0.0.1:443/health", "api.example", "lb1"),
        ("https://shop.example/health", "https://10.0.0.2:443/health", "shop.example", "lb2"),
        ("https://www.shop.example/health", "https://10.0.0.2:443/health", "www.shop.example", "lb2"),
        ("https://api.example/health", "https://10.0.0.2:443/health", "api.example", "lb2"),
        ("https://lb2.example/health", "https://10.0.0.2:443/health", "lb2.example", "lb2"),
    ]
    http = [p for p in probes if p["scheme"] == "http"]
    assert len(http) == len(https)
    assert http[0]["target"] == "http://10.0.0.1:80/health" and http[0]["module"] == "hardened_http_redirect"
    assert {p["module"] for p in probes if p["scheme"] == "https"} == {"hardened_https_2xx"}


def test_ports_from_the_port_map(port_map):
    port_map = dict(port_map, https=dict(port_map["https"], port=8443))
    probes = pc.blackbox_targets(port_map, GROUPS, HOSTVARS, "/health")
    first = [p for p in probes if p["scheme"] == "https"][0]
    assert first["url"] == "https://shop.example:8443/health"
    assert first["target"] == "https://10.0.0.1:8443/health"


def test_given_urls_are_probed_as_they_resolve(port_map):
    probes = pc.blackbox_targets(
        port_map,
        GROUPS,
        HOSTVARS,
        "/health",
        sites=False,
        urls=["https://status.example/", "http://status.example:8080/x?y=1", "https://[2001:db8::1]/"],
    )
    assert [(p["url"], p["target"], p["hostname"], p["module"], p["via"]) for p in probes] == [
        ("https://status.example/", "https://status.example/", "", "hardened_https_2xx", "dns"),
        ("http://status.example:8080/x?y=1", "http://status.example:8080/x?y=1", "", "hardened_http_redirect", "dns"),
        ("https://[2001:db8::1]/", "https://[2001:db8::1]/", "", "hardened_https_2xx", "dns"),
    ]


@pytest.mark.parametrize("url", ["ftp://x/", "shop.example", "https://", "https://a b/", 5])
def test_a_bad_url_is_refused_naming_it(port_map, url):
    with pytest.raises(AnsibleFilterError, match="blackbox URL #0"):
        flt.prometheus_scrape_configs(
            port_map, GROUPS, HOSTVARS, ["blackbox"], dict(OPTIONS, host="mon1", blackbox_urls=[url])
        )


def test_a_bad_health_path_is_refused(port_map):
    with pytest.raises(pc.MonitoringConfigError, match="health path"):
        pc.blackbox_targets(port_map, GROUPS, HOSTVARS, "health")


def test_scrape_job_relabels_target_and_keeps_the_public_url_as_instance(port_map):
    options = dict(OPTIONS, host="mon2", blackbox_scrape_interval="5s")
    job = {c["job_name"]: c for c in pc.scrape_configs(port_map, GROUPS, HOSTVARS, ["blackbox"], options)}["blackbox"]
    assert job["metrics_path"] == "/probe" and job["scheme"] == "https" and job["scrape_interval"] == "5s"
    assert job["basic_auth"] == {"username": "prometheus", "password_file": "/pw"}
    first = job["static_configs"][0]
    assert first["targets"] == ["https://10.0.0.1:443/health"]
    assert first["labels"]["instance"] == "https://shop.example/health"
    assert first["labels"]["__param_hostname"] == "shop.example"
    assert first["labels"]["__param_module"] == "hardened_https_2xx"
    assert first["labels"]["address"] == "10.0.0.1" and first["labels"]["via"] == "lb1"
    relabel = job["relabel_configs"]
    assert relabel[0] == {"source_labels": ["__address__"], "target_label": "__param_target"}
    # This Prometheus host's own blackbox exporter probes (from where this host stands).
    assert relabel[1] == {
        "target_label": "__address__",
        "replacement": "[fd00::32]:%d" % port_map["blackbox_exporter"]["port"],
    }
    other = {
        c["job_name"]: c
        for c in pc.scrape_configs(port_map, GROUPS, HOSTVARS, ["blackbox"], dict(OPTIONS, host="mon1"))
    }
    assert (
        other["blackbox"]["relabel_configs"][1]["replacement"] == "10.0.0.31:%d" % port_map["blackbox_exporter"]["port"]
    )


def test_nothing_to_probe_leaves_the_job_out(port_map):
    hostvars = {h: {k: v for k, v in hv.items() if k != "nginx_sites"} for h, hv in HOSTVARS.items()}
    assert pc.scrape_configs(port_map, GROUPS, hostvars, ["blackbox"], dict(OPTIONS, host="mon1")) == []
    assert (
        pc.scrape_configs(port_map, GROUPS, HOSTVARS, ["blackbox"], dict(OPTIONS, host="mon1", blackbox_sites=False))
        == []
    )


def test_a_virtual_address_is_probed_for_the_names_every_load_balancer_serves(port_map):
    """With a VIP the stack endpoints give it (host None): it may sit on either load balancer, so
    only the names both serve are probed there; each load balancer is still probed directly."""
    hostvars = {
        h: dict(hv, hardened_stack_virtual_address="10.0.0.100") if h in GROUPS["loadbalancers"] else hv
        for h, hv in HOSTVARS.items()
    }
    probes = [p for p in pc.blackbox_targets(port_map, GROUPS, hostvars, "/health") if p["scheme"] == "https"]
    front = [(p["url"], p["target"], p["via"]) for p in probes if p["address"] == "10.0.0.100"]
    assert front == [
        ("https://shop.example/health", "https://10.0.0.100:443/health", "front_door"),
        ("https://www.shop.example/health", "https://10.0.0.100:443/health", "front_door"),
        ("https://api.example/health", "https://10.0.0.100:443/health", "front_door"),
    ]
    assert {p["via"] for p in probes} == {"front_door", "lb1", "lb2"}
    assert "https://lb2.example/health" in [p["url"] for p in probes if p["via"] == "lb2"]


def test_default_sites_answer_the_host_name_and_the_vip_is_probed_by_its_address(port_map):
    """The nginx role's default site has no server_names: it answers nginx_default_server_names
    (the host's name) -- each host is probed by its name; a virtual address the hosts share no
    name for is probed by the address itself (the certificates carry it as an IP SAN)."""
    default_site = [{"name": "app", "upstream_group": "app"}]
    hostvars = {
        h: dict(hv, nginx_sites=default_site) if h in GROUPS["loadbalancers"] else hv for h, hv in HOSTVARS.items()
    }
    probes = [p for p in pc.blackbox_targets(port_map, GROUPS, hostvars, "/health") if p["scheme"] == "https"]
    assert [(p["url"], p["target"], p["hostname"]) for p in probes] == [
        ("https://lb1/health", "https://10.0.0.1:443/health", "lb1"),
        ("https://lb2/health", "https://10.0.0.2:443/health", "lb2"),
    ]
    vip = {h: dict(hv, hardened_stack_virtual_address="fd00::100") for h, hv in hostvars.items()}
    probes = [p for p in pc.blackbox_targets(port_map, GROUPS, vip, "/health") if p["scheme"] == "https"]
    assert ("https://[fd00::100]/health", "https://[fd00::100]:443/health", "", "front_door") in [
        (p["url"], p["target"], p["hostname"], p["via"]) for p in probes
    ]
    # An inventory's own default names are what nginx answers.
    named = {h: dict(hv, nginx_default_server_names=["www.example"]) for h, hv in hostvars.items()}
    probes = [p for p in pc.blackbox_targets(port_map, GROUPS, named, "/health") if p["scheme"] == "https"]
    assert {p["url"] for p in probes} == {"https://www.example/health"}
