"""Monitoring filters: exporters per host, scrape jobs, Alertmanager config, retention strings
(plugins/module_utils/prometheus_config.py, plugins/filter/prometheus.py)."""

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter import prometheus as flt
from ansible_collections.hardened.stack.plugins.module_utils import port_map as pm
from ansible_collections.hardened.stack.plugins.module_utils import prometheus_config as pc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

GROUPS = {
    "all": ["lb1", "pg1", "pg2", "redis1", "mon1", "outsider"],
    "ungrouped": ["outsider"],
    "loadbalancers": ["lb1"],
    "postgres": ["pg1", "pg2"],
    "etcd": ["pg1", "pg2"],
    "redis": ["redis1"],
    "monitoring": ["mon1"],
}
HOSTVARS = {
    "lb1": {"ansible_host": "10.0.0.1"},
    # A public management address for Ansible, the cluster address for the services.
    "pg1": {"ansible_host": "198.51.100.7", "hardened_stack_address": "10.0.0.11",
            "ansible_facts": {"default_ipv4": {"address": "198.51.100.7"}}},
    "pg2": {"ansible_host": "pg2.mgmt.example", "hardened_stack_address": "10.0.1.12"},
    "redis1": {"ansible_host": "10.0.0.21"},
    "mon1": {"ansible_host": "10.0.0.31"},
    "outsider": {"hardened_stack_address": "10.0.9.9"},
}
OPTIONS = {"ca_file": "/ca", "cert_file": "/crt", "key_file": "/key", "username": "prometheus",
           "password_file": "/pw", "cluster": "prod"}


@pytest.fixture(name="port_map")
def fixture_port_map():
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return pm.validate(yaml.safe_load(fh)["_common_port_map_defaults"], GROUPS)


def test_exporters_follow_the_port_map(port_map):
    assert pc.exporters_for(port_map, "pg1", GROUPS) == ["node", "postgres"]
    assert pc.exporters_for(port_map, "redis1", GROUPS) == ["node", "redis"]
    assert pc.exporters_for(port_map, "lb1", GROUPS) == ["nginx", "nginx_log", "node"]
    assert pc.exporters_for(port_map, "outsider", GROUPS) == ["node"]


def test_targets_are_the_cluster_addresses(port_map):
    """The scrape target is the address the exporter binds: the cluster address, not the
    management address Ansible uses nor the default-route address."""
    configs = jobs_by_name(pc.scrape_configs(port_map, GROUPS, HOSTVARS, ["node"], OPTIONS))
    targets = {c["labels"]["instance"]: c["targets"][0] for c in configs["node"]["static_configs"]}
    assert targets["pg1"] == "10.0.0.11:9100"
    assert targets["pg2"] == "10.0.1.12:9100"


def jobs_by_name(configs):
    return {c["job_name"]: c for c in configs}


def test_scrape_jobs_ports_auth_and_labels(port_map):
    jobs = jobs_by_name(pc.scrape_configs(port_map, GROUPS, HOSTVARS, list(pc.JOB_NAMES), OPTIONS))
    # No nginx site here: the blackbox job has nothing to probe (test_prometheus_blackbox.py).
    assert list(jobs) == [j for j in pc.JOB_NAMES if j != "blackbox"]
    node = jobs["node"]
    assert node["scheme"] == "https" and node["basic_auth"] == {"username": "prometheus", "password_file": "/pw"}
    targets = {s["labels"]["instance"]: s["targets"][0] for s in node["static_configs"]}
    assert targets["pg1"] == "10.0.0.11:%d" % port_map["node_exporter"]["port"]
    assert set(targets) == set(GROUPS["all"])
    roles = {s["labels"]["instance"]: s["labels"]["role"] for s in node["static_configs"]}
    assert roles["pg1"] == "etcd,postgres" and roles["outsider"] == "none"
    assert all(s["labels"]["cluster"] == "prod" for s in node["static_configs"])
    # redis exporter 1.45 has no basic auth: client certificate instead.
    assert "basic_auth" not in jobs["redis"] and jobs["redis"]["tls_config"]["cert_file"] == "/crt"
    assert jobs["etcd"]["static_configs"][0]["targets"][0].endswith(":%d" % port_map["etcd_client"]["port"])
    assert jobs["patroni"]["static_configs"][0]["labels"]["role"] == "postgres"
    # mtail on the nginx logs: its own port map entry, TLS + basic auth through nginx.
    log = jobs["nginx_log"]
    assert log["static_configs"][0]["targets"] == ["10.0.0.1:%d" % port_map["nginx_log_exporter"]["port"]]
    assert log["static_configs"][0]["labels"]["role"] == "loadbalancers"
    assert log["basic_auth"]["username"] == "prometheus" and "cert_file" not in log["tls_config"]


def test_redis_role_survives_the_target_role_label(port_map):
    """The exporter's role=master|slave would be renamed exported_role behind the target's
    role label; the redis job keeps it as redis_role, which the Redis alerts read."""
    jobs = jobs_by_name(pc.scrape_configs(port_map, GROUPS, HOSTVARS, list(pc.JOB_NAMES), OPTIONS))
    assert jobs["redis"]["metric_relabel_configs"] == [
        {"source_labels": ["exported_role"], "target_label": "redis_role"},
        {"regex": "exported_role", "action": "labeldrop"}]
    assert all("metric_relabel_configs" not in job for name, job in jobs.items() if name != "redis")
    with open(os.path.join(os.path.dirname(__file__), *[".."] * 4, "roles", "prometheus", "files", "rules",
                           "redis.yml"), encoding="utf-8") as fh:
        rules = fh.read()
    assert 'redis_role="master"' in rules and '{role="master"}' not in rules


def test_port_override_moves_the_target(port_map):
    port_map["postgres_exporter"]["port"] = 19187
    jobs = jobs_by_name(pc.scrape_configs(port_map, GROUPS, HOSTVARS, ["postgres"], OPTIONS))
    assert jobs["postgres"]["static_configs"][0]["targets"] == ["10.0.0.11:19187"]


def test_jobs_without_hosts_are_left_out(port_map):
    groups = dict(GROUPS, redis=[], loadbalancers=[])
    jobs = jobs_by_name(pc.scrape_configs(port_map, groups, HOSTVARS, list(pc.JOB_NAMES), OPTIONS))
    assert "redis" not in jobs and "nginx" not in jobs and "nginx_log" not in jobs and "node" in jobs


def test_unknown_job_and_missing_option_are_refused(port_map):
    with pytest.raises(AnsibleFilterError, match="unknown scrape job"):
        flt.prometheus_scrape_configs(port_map, GROUPS, HOSTVARS, ["node", "mysql"], OPTIONS)
    with pytest.raises(pc.MonitoringConfigError, match="password_file"):
        pc.scrape_configs(port_map, GROUPS, HOSTVARS, ["node"], dict(OPTIONS, password_file=""))


@pytest.mark.parametrize("value", ["15d", "2w", "1y", "12h30m", "90m", "500ms"])
def test_durations_accepted(value):
    assert flt.prometheus_is_duration(value)


@pytest.mark.parametrize("value", ["15x", "", "0", "d", "15 d", "-1d", "1.5d"])
def test_durations_refused(value):
    assert not flt.prometheus_is_duration(value)


@pytest.mark.parametrize("value,ok", [("10GB", True), ("512MB", True), ("", True), ("0", True),
                                      ("10G", False), ("ten GB", False), ("1.5GB", False)])
def test_sizes(value, ok):
    assert flt.prometheus_is_size(value) is ok


def test_alertmanager_config_webhook_and_email():
    cfg = flt.alertmanager_config(
        [{"name": "ops", "type": "webhook", "url": "https://hooks.example/alert"},
         {"name": "mail", "type": "email", "to": "ops@example.org", "send_resolved": False}],
        {"group_wait": "10s"}, {"smarthost": "smtp.example.org:587", "from": "am@example.org"})
    assert cfg["route"]["receiver"] == "ops" and cfg["route"]["group_wait"] == "10s"
    assert cfg["receivers"][0]["webhook_configs"][0]["url"] == "https://hooks.example/alert"
    assert cfg["receivers"][1]["email_configs"][0] == {"to": "ops@example.org", "send_resolved": False}
    assert cfg["global"]["smtp_smarthost"] == "smtp.example.org:587"


def test_alertmanager_without_receivers_keeps_alerts():
    cfg = flt.alertmanager_config([])
    assert cfg["receivers"] == [{"name": "none"}] and cfg["route"]["receiver"] == "none"


@pytest.mark.parametrize("receivers,route,smtp,message", [
    ([{"name": "hook", "type": "webhook"}], {}, None, "needs a url"),
    ([{"name": "hook", "type": "webhook", "url": "ftp://x"}], {}, None, "needs a url"),
    ([{"name": "mail", "type": "email", "to": "nobody"}], {}, None, "e-mail address"),
    ([{"name": "mail", "type": "email", "to": "a@b.c"}], {}, None, "smarthost"),
    ([{"name": "x", "type": "slack", "url": "https://x"}], {}, None, "type"),
    ([{"name": "x", "type": "webhook", "url": "https://x"}] * 2, {}, None, "unique"),
    ([{"name": "x", "type": "webhook", "url": "https://x"}], {"receiver": "y"}, None, "not one of"),
    ([{"name": "x", "type": "webhook", "url": "https://x"}], {"group_wait": "soon"}, None, "duration"),
])
def test_alertmanager_bad_receivers(receivers, route, smtp, message):
    with pytest.raises(AnsibleFilterError, match=message):
        flt.alertmanager_config(receivers, route, smtp)


def test_every_shipped_alert_has_a_firing_and_a_quiet_promtool_test():
    rules_dir = os.path.join(ROOT, "roles", "prometheus", "files", "rules")
    alerts = set()
    for name in os.listdir(rules_dir):
        with open(os.path.join(rules_dir, name), encoding="utf-8") as fh:
            for group in yaml.safe_load(fh)["groups"]:
                alerts.update(r["alert"] for r in group["rules"] if "alert" in r)
    fires, quiet = set(), set()
    tests_dir = os.path.join(ROOT, "tests", "promtool")
    for name in os.listdir(tests_dir):
        with open(os.path.join(tests_dir, name), encoding="utf-8") as fh:
            for test in yaml.safe_load(fh)["tests"]:
                for case in test.get("alert_rule_test", []):
                    (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert alerts, "no alert rules found"
    assert not alerts - fires, f"alerts without a firing test: {sorted(alerts - fires)}"
    assert not alerts - quiet, f"alerts without a quiet test: {sorted(alerts - quiet)}"
