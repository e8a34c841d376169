"""pg_hba from the inventory and the port map, tuning and preflight filters
(plugins/filter/postgresql.py and module_utils/pg_hba.py, pg_tune.py, pg_params.py)."""

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.stack.plugins.filter import postgresql as flt
from ansible_collections.hardened.stack.plugins.module_utils import pg_hba, pg_params, pg_tune

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

GROUPS = {
    "all": ["lb", "app1", "pg1", "pg2", "pg3", "mon1", "outsider"],
    "loadbalancers": ["lb"],
    "app": ["app1"],
    "postgres": ["pg1", "pg2", "pg3"],
    "etcd": ["pg1", "pg2", "pg3"],
    "monitoring": ["mon1"],
    "backup": [],
}
HOSTVARS = {
    "lb": {"ansible_host": "10.0.0.10"},
    "app1": {"ansible_host": "10.0.0.21"},
    "pg1": {"ansible_host": "10.0.0.11"},
    "pg2": {"ansible_host": "10.0.0.12"},
    "pg3": {"ansible_host": "pg3.example.net"},
    "mon1": {"ansible_host": "10.0.0.30"},
    "outsider": {"ansible_host": "10.0.0.99"},
}


DNS = {"pg3.example.net": ["10.0.0.13"]}


@pytest.fixture(autouse=True)
def zone(dns):
    """The names these tests resolve (tests/unit/conftest.py's fake resolver)."""
    dns.update(DNS)


@pytest.fixture(name="port_map")
def fixture_port_map():
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["_common_port_map_defaults"]


def lines(port_map, **kw):
    kw.setdefault("rewind_user", "rewind")
    kw.setdefault("app_roles", [{"name": "app", "databases": ["appdb"]}])
    kw.setdefault("monitoring_roles", [{"name": "monitor"}])
    return flt.pg_hba_rules(port_map, GROUPS, HOSTVARS, "replicator", **kw)


def test_replication_only_between_members_plus_loopback(port_map):
    out = lines(port_map)
    repl = [ln.split() for ln in out if ln.split()[1] == "replication"]
    assert ["host", "replication", "replicator", "127.0.0.1/32", "scram-sha-256"] in repl
    remote = sorted(r[3] for r in repl if r[0] == "hostssl")
    assert remote == ["10.0.0.11/32", "10.0.0.12/32", "10.0.0.13/32"]


def test_app_roles_only_from_app_and_loadbalancers(port_map):
    app = [ln.split() for ln in lines(port_map) if ln.split()[2] == "app"]
    assert sorted(a[3] for a in app) == ["10.0.0.10/32", "10.0.0.21/32"]
    assert all(a[0] == "hostssl" and a[1] == "appdb" and a[4] == "scram-sha-256" for a in app)


def test_monitoring_only_from_monitoring(port_map):
    mon = [ln.split() for ln in lines(port_map) if ln.split()[2] == "monitor"]
    assert [m[3] for m in mon] == ["10.0.0.30/32"]


def test_no_weak_methods_and_remote_lines_are_hostssl(port_map):
    for ln in lines(port_map):
        fields = ln.split()
        assert fields[-1] not in ("trust", "md5", "password")
        if fields[0] == "host":
            assert fields[3].startswith("127.")
    assert not any("10.0.0.99" in ln for ln in lines(port_map))


def test_a_group_removed_from_the_port_map_loses_access(port_map):
    port_map["postgresql"]["from"] = ["postgres", "app"]
    out = lines(port_map)
    assert not any("10.0.0.10/32" in ln for ln in out)
    assert not any("10.0.0.30/32" in ln for ln in out)


@pytest.mark.parametrize("rule", [
    {"type": "hostssl", "database": "all", "user": "all", "address": "0.0.0.0/0", "method": "trust"},
    {"type": "hostssl", "database": "all", "user": "x", "address": "10.0.0.5/32", "method": "md5"},
    {"type": "host", "database": "all", "user": "x", "address": "10.0.0.5/32", "method": "scram-sha-256"},
    {"type": "hostssl", "database": "all", "user": "x", "address": "10.0.0.5/32", "method": "password"},
])
def test_unsafe_extra_rules_are_refused(port_map, rule):
    with pytest.raises(AnsibleFilterError):
        lines(port_map, extra=[rule])


def test_host_whose_name_does_not_resolve_is_a_clear_error(port_map):
    hv = dict(HOSTVARS)
    hv["pg2"] = {"ansible_host": "pg2.example.net"}
    with pytest.raises(AnsibleFilterError,
                       match="host 'pg2': 'pg2.example.net' \\(from ansible_host\\) does not resolve"):
        flt.pg_hba_rules(port_map, GROUPS, hv, "replicator")


def test_dns_named_member_gets_the_address_it_resolves_to(port_map):
    out = lines(port_map)
    repl = [ln.split()[3] for ln in out if ln.startswith("hostssl") and ln.split()[1] == "replication"]
    assert "10.0.0.13/32" in repl
    assert not any("example.net" in ln for ln in out)


def test_ipv6_and_dual_stack_hosts(port_map):
    hv = dict(HOSTVARS)
    hv["app1"] = {"ansible_host": "2001:db8:10::21"}
    hv["pg1"] = {"hardened_stack_address": ["10.0.0.11", "2001:db8:10::11"], "ansible_host": "pg1.mgmt.example.net"}
    out = flt.pg_hba_rules(port_map, GROUPS, hv, "replicator", app_roles=[{"name": "app", "databases": ["appdb"]}])
    app = sorted(ln.split()[3] for ln in out if ln.split()[2] == "app")
    assert app == ["10.0.0.10/32", "2001:db8:10::21/128"]
    repl = [ln.split()[3] for ln in out if ln.startswith("hostssl") and ln.split()[1] == "replication"]
    assert repl[:2] == ["10.0.0.11/32", "2001:db8:10::11/128"]


def test_dns_name_with_two_addresses_gets_both(port_map, dns):
    dns["app1.example.net"] = ["10.0.0.21", "2001:db8:10::21"]
    hv = dict(HOSTVARS, app1={"ansible_host": "app1.example.net"})
    out = flt.pg_hba_rules(port_map, GROUPS, hv, "replicator", app_roles=[{"name": "app"}])
    assert [ln.split()[3] for ln in out if ln.split()[2] == "app" and "10.0.0.10" not in ln] == [
        "10.0.0.21/32", "2001:db8:10::21/128"]


def test_cluster_host_ip_filter_is_gone():
    assert "cluster_host_ip" not in flt.FilterModule().filters()
    assert not hasattr(pg_hba, "host_cidr")


def test_reject_extra_comes_before_the_generated_allow(port_map):
    reject = {"type": "hostssl", "database": "appdb", "user": "all", "address": "10.0.0.21/32", "method": "reject"}
    out = lines(port_map, extra=[reject])
    allow = out.index(next(ln for ln in out if ln.split()[2] == "app" and "10.0.0.21/32" in ln))
    rej = out.index(next(ln for ln in out if ln.endswith("reject")))
    assert rej < allow
    # after the role's own local and loopback lines
    assert [ln.split()[0] for ln in out[:3]] == ["local", "local", "host"] and rej == 3
    assert flt.pg_hba_shadowed(port_map, GROUPS, HOSTVARS, "replicator",
                               app_roles=[{"name": "app", "databases": ["appdb"]}], extra=[reject]) == []


def test_extra_order_first_generated_last(port_map):
    extra = [
        {"database": "appdb", "user": "report", "address": "10.0.1.0/24"},
        {"database": "appdb", "user": "app", "address": "10.0.0.21/32", "method": "cert", "position": "first"},
        {"type": "host", "database": "all", "user": "all", "address": "10.0.0.99/32", "method": "reject"},
        {"database": "appdb", "user": "late", "address": "10.0.0.21/32", "method": "reject", "position": "last"},
    ]
    out = lines(port_map, extra=extra)
    users = [ln.split()[2] for ln in out]
    # local lines, then the first/reject extras in list order, the generated lines, the others
    assert out[3].split()[2:] == ["app", "10.0.0.21/32", "cert"]
    assert out[4].split() == ["host", "all", "all", "10.0.0.99/32", "reject"]
    assert users[5] == "replicator" and users[-3] == "monitor"
    assert users[-2:] == ["report", "late"]


def test_shadowed_allow_extra_is_reported_with_the_shadowing_line(port_map):
    extra = [{"type": "hostssl", "database": "appdb", "user": "app", "address": "10.0.0.21/32", "method": "cert"}]
    found = flt.pg_hba_shadowed(port_map, GROUPS, HOSTVARS, "replicator",
                                app_roles=[{"name": "app", "databases": ["appdb"]}], extra=extra)
    assert len(found) == 1
    assert found[0].startswith("postgresql_pg_hba_extra[0] 'hostssl appdb app 10.0.0.21/32 cert' can never match: ")
    assert "the generated line 'hostssl appdb app 10.0.0.21/32 scram-sha-256' comes before it" in found[0]
    # position: first puts it before the generated allow: no longer shadowed
    extra[0]["position"] = "first"
    assert flt.pg_hba_shadowed(port_map, GROUPS, HOSTVARS, "replicator",
                               app_roles=[{"name": "app", "databases": ["appdb"]}], extra=extra) == []


def test_non_shadowed_allow_extra_is_not_reported(port_map):
    extra = [{"type": "hostssl", "database": "appdb", "user": "report", "address": "10.0.0.21/32"},
             {"type": "hostssl", "database": "otherdb", "user": "app", "address": "10.0.0.21/32"},
             {"type": "hostssl", "database": "appdb", "user": "app", "address": "10.0.0.0/24"}]
    assert flt.pg_hba_shadowed(port_map, GROUPS, HOSTVARS, "replicator",
                               app_roles=[{"name": "app", "databases": ["appdb"]}], extra=extra) == []


def test_extra_shadowed_by_an_earlier_extra_names_both(port_map):
    extra = [{"type": "hostssl", "database": "all", "user": "all", "address": "10.9.0.0/16", "method": "reject"},
             {"type": "hostssl", "database": "appdb", "user": "bob", "address": "10.9.1.5/32"}]
    found = flt.pg_hba_shadowed(port_map, GROUPS, HOSTVARS, "replicator", extra=extra)
    assert len(found) == 1
    assert found[0].startswith("postgresql_pg_hba_extra[1] 'hostssl appdb bob 10.9.1.5/32 scram-sha-256'")
    assert "postgresql_pg_hba_extra[0] 'hostssl all all 10.9.0.0/16 reject'" in found[0]


def test_extra_with_bare_ip_or_bad_address_is_refused(port_map):
    with pytest.raises(AnsibleFilterError, match="write 10.0.0.5/32"):
        lines(port_map, extra=[{"database": "all", "user": "x", "address": "10.0.0.5"}])
    with pytest.raises(AnsibleFilterError, match="needs one address"):
        lines(port_map, extra=[{"database": "all", "user": "x"}])
    with pytest.raises(AnsibleFilterError, match="position must be first or last"):
        lines(port_map, extra=[{"database": "all", "user": "x", "address": "all", "position": "top"}])


def test_render_keeps_local_lines_without_address():
    out = pg_hba.render([{"type": "local", "database": "all", "user": "postgres", "address": "", "method": "peer"}])
    assert out[0].split() == ["local", "all", "postgres", "peer"]


def test_tune_small_host():
    p = pg_tune.tune(1024, 2)
    assert p["shared_buffers"] == "256MB"
    assert p["effective_cache_size"] == "768MB"
    assert p["maintenance_work_mem"] == "64MB"
    assert p["work_mem"] == "4MB"
    assert p["max_connections"] == 100


def test_tune_big_host_and_overrides():
    p = pg_tune.tune(131072, 32, 400, {"work_mem": "64MB"})
    assert p["shared_buffers"] == "16GB"
    assert p["maintenance_work_mem"] == "2GB"
    assert p["work_mem"] == "64MB"
    assert p["max_parallel_workers_per_gather"] == 4
    assert p["max_worker_processes"] == 32


def test_tune_refuses_nonsense():
    with pytest.raises(AnsibleFilterError, match="too small"):
        flt.pg_tune_parameters(100, 1)
    with pytest.raises(AnsibleFilterError, match="integers"):
        flt.pg_tune_parameters("lots", 1)


def test_unknown_parameters():
    assert flt.pg_unknown_parameters({"shared_buffers": "1GB", "shared_bufers": "1GB"}, 15) == ["shared_bufers"]
    assert flt.pg_unknown_parameters(["pg_stat_statements.max", "Work_Mem"], 17) == []
    # summarize_wal exists in 17 only
    assert pg_params.unknown_parameters(["summarize_wal"], 15) == ["summarize_wal"]
    assert pg_params.unknown_parameters(["summarize_wal"], 17) == []
    assert pg_params.unknown_parameters(["anything"], 99) == []


@pytest.mark.parametrize("ttl, loop_wait, retry, ok", [
    (30, 10, 10, True), (20, 5, 5, True), (10, 2, 4, True), (20, 10, 6, False), (10, 0, 3, False), (20, 5, 2, False),
])
def test_timings(ttl, loop_wait, retry, ok):
    assert (flt.patroni_timings_problems(ttl, loop_wait, retry) == []) is ok


def test_members_group_other_than_postgres(port_map):
    groups = dict(GROUPS, pg13=["pg1"])
    out = flt.pg_hba_rules(port_map, groups, HOSTVARS, "replicator", members_group="pg13")
    remote = [ln.split()[3] for ln in out if ln.split()[1] == "replication" and ln.startswith("hostssl")]
    assert remote == ["10.0.0.11/32"]
