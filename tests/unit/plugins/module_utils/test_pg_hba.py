"""pg_hba order and shadowing (plugins/module_utils/pg_hba.py): addresses from the address
model, restricting extras before the generated lines, PostgreSQL's first-match semantics."""

import os

import pytest
import yaml
from ansible_collections.hardened.stack.plugins.module_utils import pg_hba
from conftest import FakeDNS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

GROUPS = {"app": ["app1", "app2"], "loadbalancers": [], "postgres": ["pg1", "pg2"], "monitoring": []}
HOSTVARS = {
    "app1": {"ansible_host": "10.0.0.21"},
    "app2": {"ansible_host": "app2.mgmt.example.net"},
    "pg1": {"ansible_host": "pg1.mgmt.example.net", "hardened_stack_address": "2001:db8:10::11"},
    "pg2": {"hardened_stack_address": ["10.0.0.12", "2001:db8:10::12"]},
}
APP = [{"name": "app", "databases": ["appdb"]}]
ZONE = {"app2.mgmt.example.net": ["10.0.0.22", "2001:db8:10::22"]}


def resolver(name, port, family=0, kind=0, *args):
    """An explicit resolver (pg_hba passes it through to the address model)."""
    fake = FakeDNS(ZONE)
    return fake.getaddrinfo(name, port, family, kind, *args)


@pytest.fixture(name="port_map")
def fixture_port_map():
    with open(os.path.join(ROOT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["_common_port_map_defaults"]


def ordered(port_map, extra=None, hostvars=None):
    return pg_hba.ordered(port_map, GROUPS, hostvars or HOSTVARS, "replicator", rewind_user="rewind",
                          app_roles=APP, extra=extra, resolver=resolver)


def text(pairs):
    return [" ".join(line.split()) for line in pg_hba.render([r for r, _o in pairs])]


def rule(kind="hostssl", database="all", user="all", address="10.0.0.0/24", method="scram-sha-256"):
    return {"type": kind, "database": database, "user": user, "address": address, "method": method}


def test_addresses_come_from_the_address_model(port_map):
    out = text(ordered(port_map))
    assert "hostssl replication replicator 2001:db8:10::11/128 scram-sha-256" in out
    assert "hostssl replication replicator 10.0.0.12/32 scram-sha-256" in out
    assert "hostssl replication replicator 2001:db8:10::12/128 scram-sha-256" in out
    app = [ln.split()[3] for ln in out if ln.split()[2] == "app"]
    assert app == ["10.0.0.21/32", "10.0.0.22/32", "2001:db8:10::22/128"]
    assert not any("example.net" in ln for ln in out)


def test_unresolvable_name_names_the_host(port_map):
    hv = dict(HOSTVARS, app1={"ansible_host": "gone.example.net"})
    with pytest.raises(pg_hba.PgHbaError,
                       match="host 'app1': 'gone.example.net' \\(from ansible_host\\) does not resolve"):
        ordered(port_map, hostvars=hv)


def test_reject_extra_precedes_the_generated_allow_for_the_same_host(port_map):
    extra = [rule(database="appdb", address="10.0.0.22/32", method="reject")]
    out = text(ordered(port_map, extra))
    rej = out.index("hostssl appdb all 10.0.0.22/32 reject")
    allow = out.index("hostssl appdb app 10.0.0.22/32 scram-sha-256")
    assert 3 == rej < allow
    assert pg_hba.shadowed(ordered(port_map, extra)) == []


def test_reject_extra_with_position_last_is_shadowed_by_the_generated_allow(port_map):
    extra = [dict(rule(database="appdb", user="app", address="10.0.0.22/32", method="reject"), position="last")]
    found = pg_hba.shadowed_messages(ordered(port_map, extra))
    assert found == [
        "postgresql_pg_hba_extra[0] 'hostssl appdb app 10.0.0.22/32 reject' can never match: the generated line "
        "'hostssl appdb app 10.0.0.22/32 scram-sha-256' comes before it and matches every connection it would "
        "(PostgreSQL uses the first matching pg_hba line). Remove it, narrow the earlier line, or order them: "
        "extras with method reject or position: first go before the generated lines, the others after them, "
        "each group in list order."]


def test_origin_indexes_follow_the_extra_list(port_map):
    extra = [rule(user="a"), rule(user="b", method="reject"), dict(rule(user="c", method="cert"), position="first")]
    origins = [o for _r, o in ordered(port_map, extra) if o is not None]
    assert origins == [1, 2, 0]


def test_local_superuser_line_shadows_a_local_reject_for_it(port_map):
    extra = [rule(kind="local", user="postgres", address="", method="reject")]
    found = pg_hba.shadowed(ordered(port_map, extra))
    assert [(i, e["method"]) for i, _r, e, _o in found] == [(0, "peer")]


@pytest.mark.parametrize("earlier, later, result", [
    # type classes: host covers hostssl; hostssl covers neither host nor hostnossl
    (rule(kind="host"), rule(kind="hostssl"), True),
    (rule(kind="hostssl"), rule(kind="host"), False),
    (rule(kind="hostssl"), rule(kind="hostnossl"), False),
    (rule(kind="hostnossl"), rule(kind="hostssl"), False),
    (rule(kind="host"), rule(kind="hostgssenc"), True),
    (rule(kind="hostnogssenc"), rule(kind="hostssl"), True),
    (rule(kind="local", address=""), rule(kind="hostssl"), False),
    (rule(kind="hostssl"), rule(kind="local", address=""), False),
    (rule(kind="local", address=""), rule(kind="local", user="bob", address=""), True),
    # databases: all covers names but not physical replication
    (rule(), rule(database="appdb,otherdb"), True),
    (rule(), rule(database="replication"), False),
    (rule(), rule(database="appdb,replication"), False),
    (rule(database="replication"), rule(database="replication"), True),
    (rule(database="appdb"), rule(database="appdb,otherdb"), False),
    (rule(database="appdb,otherdb"), rule(database="otherdb"), True),
    (rule(database="appdb"), rule(), False),
    (rule(database='"all"'), rule(), False),
    (rule(), rule(database="sameuser"), True),
    (rule(), rule(database="@dbs"), False),
    # users: all covers every role
    (rule(), rule(user="bob,+admins"), True),
    (rule(user="bob"), rule(user="bob,alice"), False),
    (rule(user="+admins"), rule(user="bob"), False),
    (rule(user="bob"), rule(), False),
    # addresses: network containment, one IP version, keywords and names as written
    (rule(address="10.0.0.0/16"), rule(address="10.0.5.7/32"), True),
    (rule(address="10.0.5.7/32"), rule(address="10.0.0.0/16"), False),
    (rule(address="10.0.0.0/24"), rule(address="10.0.1.0/24"), False),
    (rule(address="0.0.0.0/0"), rule(address="2001:db8::1/128"), False),
    (rule(address="::/0"), rule(address="2001:db8::1/128"), True),
    (rule(address="::ffff:0:0/96"), rule(address="10.0.0.1/32"), False),
    (rule(address="all"), rule(address="2001:db8::1/128"), True),
    (rule(address="0.0.0.0/0"), rule(address="all"), False),
    (rule(address="samenet"), rule(address="samenet"), True),
    (rule(address="samenet"), rule(address="10.0.0.1/32"), False),
    (rule(address=".example.net"), rule(address="app1.example.net"), True),
    (rule(address="app1.example.net"), rule(address=".example.net"), False),
])
def test_covers_follows_postgresql_first_match(earlier, later, result):
    assert pg_hba.covers(earlier, later) is result


def test_method_does_not_matter_for_matching():
    assert pg_hba.covers(rule(method="reject"), rule(method="scram-sha-256"))
    assert pg_hba.covers(rule(method="cert clientcert=verify-full"), rule(method="reject"))


def test_backup_host_lines_use_every_address_of_the_host():
    from ansible_collections.hardened.stack.plugins.module_utils import backup
    groups = {"backup": ["app2"]}
    assert [r["address"] for r in backup.pg_hba_lines(groups, HOSTVARS, "pgdump", resolver=resolver)] == [
        "10.0.0.22/32", "2001:db8:10::22/128"]
    ipv6_only = backup.pg_hba_lines({"backup": ["pg1"]}, HOSTVARS, "pgdump")
    assert [r["address"] for r in ipv6_only] == ["2001:db8:10::11/128"]
    with pytest.raises(pg_hba.PgHbaError, match="backup host: host 'x': 'x.example.net'"):
        backup.pg_hba_lines({"backup": ["x"]}, {"x": {"ansible_host": "x.example.net"}}, "pgdump", resolver=resolver)
