"""Behaviour of the firewall scenario: who reaches which port, foreign chains, check/diff,
bad input, lockout drills over SSH, persistence across a restart.

Every host sits on two networks (molecule.yml: `address` on the management network,
`cluster_address` on the cluster network). The firewall admits the port map's flows from
cluster addresses only; on the management network only SSH from firewall_ssh_allow (the
controller, i.e. the management bridge's gateway) and the public ports (nginx 80/443) answer.

Tests run in file order and share the hosts; the drills and the restart come last.
"""

import functools
import os
import re
import subprocess
import sys
import time

import pytest
import testinfra
import yaml

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
sys.path.insert(0, os.path.join(PROJECT, "molecule", "_shared"))
import verifier  # noqa: E402  (molecule/_shared/verifier.py)
SSH_KEY = os.path.join(os.environ.get("HSLAB_CACHE", os.path.expanduser("~/.cache/hardened-stack")),
                       "ssh", "id_ed25519")
SSH_OPTS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=5", "-o", "ControlMaster=no", "-o", "ControlPath=none"]

PLATFORMS = verifier.platforms(SCENARIO)
with open(os.path.join(PROJECT, "roles", "_common", "defaults", "main.yml"), encoding="utf-8") as _fh:
    # the TCP entries: what the connect scans can see (vrrp, an IP protocol, has no port)
    PORT_MAP = {k: e for k, e in yaml.safe_load(_fh)["_common_port_map_defaults"].items()
                if e.get("protocol", "tcp") == "tcp"}
MEMBERS = sorted(n for n, p in PLATFORMS.items() if p.get("groups"))
OUTSIDER = "firewall-outsider"
ALL_PORTS = sorted({e["port"] for e in PORT_MAP.values()})


def host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


def in_groups(name, groups):
    """Independent reading of the map: 'all' = every member (a host in some group)."""
    mine = set(PLATFORMS[name].get("groups", []))
    if "all" in groups:
        return bool(mine)
    return bool(mine & set(groups))


def expected_open(src, dst):
    """Ports of dst's cluster address that src (from its cluster address) may open: a service
    listening on dst and admitting src."""
    ports = set()
    for entry in PORT_MAP.values():
        if not in_groups(dst, entry["listen"]):
            continue
        if "any" in entry["from"] or in_groups(src, entry["from"]):
            ports.add(entry["port"])
    return ports


def expected_public(dst):
    """Ports of dst open to any source (nginx 80/443 on a load balancer): all that answers a
    host on the management network, where no source but firewall_ssh_allow is trusted."""
    return {e["port"] for e in PORT_MAP.values() if in_groups(dst, e["listen"]) and "any" in e["from"]}


@functools.cache
def scan_once(src, dst, network="cluster"):
    """Cached scan: the tests before the drills and the restart do not change any ruleset."""
    return scan(src, dst, network)


def scan(src, dst, network="cluster"):
    """{port: state} from an nmap connect scan run on src against dst's cluster address (or its
    management address): src's packets leave from its own address on that network."""
    target = verifier.cluster_address(dst, SCENARIO) if network == "cluster" else \
        verifier.management_address(dst, SCENARIO)
    out = host(src).check_output(
        "nmap -Pn -sT -n --max-retries 1 --host-timeout 60s --max-rtt-timeout 500ms -p %s %s -oG -",
        ",".join(str(p) for p in ALL_PORTS), target)
    ports = re.search(r"Ports: (.*)", out).group(1)
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"(\d+)/(\w+)/tcp", ports)}


def playbook(*args, playbook_file="firewall.yml"):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(EPHEMERAL, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, ".build", "collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_HOST_KEY_CHECKING="false",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
    # stderr merged into stdout: a failed task's error stays next to the task (bad input cases)
    res = subprocess.run(["ansible-playbook", "-i", INVENTORY, playbook_file, *args], cwd=SCENARIO,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=900, check=False)
    return res.returncode, res.stdout


def recap(out):
    rows = {}
    for m in re.finditer(r"^(\S+)\s+:\s+(.*)$", out.split("PLAY RECAP")[-1], re.M):
        rows[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return rows


def ssh_from_controller(name, command="true", address=None):
    """SSH as Ansible does: to the management address (from the management bridge's gateway)."""
    target = address or verifier.management_address(name, SCENARIO)
    res = subprocess.run(["ssh", *SSH_OPTS, "-i", SSH_KEY, f"hslab@{target}", command],
                         capture_output=True, text=True, timeout=60, check=False)
    return res.returncode


def owned(name):
    """The firewall's own state as iptables-save prints it (chains, policies, jumps)."""
    save = host(name).check_output("iptables-save -t filter")
    keep = [line for line in save.splitlines()
            if line.startswith((":INPUT", ":FORWARD", ":HS-", "-A HS-", "-A INPUT -j HS-"))]
    return [re.sub(r" \[\d+:\d+\]$", "", line) for line in keep]


def foreign(name):
    h = host(name)
    return (h.check_output("iptables -S DOCKER-USER"), h.check_output("iptables -S FORWARD"),
            [line for line in h.check_output("iptables -S INPUT").splitlines() if "HS-INPUT" not in line])


@pytest.mark.parametrize("dst", MEMBERS)
def test_outsider_reaches_only_public_ports(dst):
    states = scan_once(OUTSIDER, dst)
    opened = {p for p, s in states.items() if s == "open"}
    assert opened == expected_open(OUTSIDER, dst)
    # everything else is dropped, not refused: the host gives nothing away
    assert all(s == "filtered" for p, s in states.items() if p not in opened), states


@pytest.mark.parametrize("dst", MEMBERS)
def test_outsider_on_the_management_network_reaches_only_public_ports(dst):
    states = scan_once(OUTSIDER, dst, "management")
    opened = {p for p, s in states.items() if s == "open"}
    assert opened == expected_public(dst)
    assert all(s == "filtered" for p, s in states.items() if p not in opened), states


def test_outsider_cannot_ssh_but_the_loadbalancer_serves_the_world():
    assert 22 not in expected_open(OUTSIDER, "firewall-lb")
    assert {80, 443} <= expected_open(OUTSIDER, "firewall-lb")
    assert scan_once(OUTSIDER, "firewall-db")[22] == "filtered"
    assert scan_once(OUTSIDER, "firewall-db", "management")[22] == "filtered"
    # The front door answers on the management side too, as a real one would.
    assert {p for p, s in scan_once(OUTSIDER, "firewall-lb", "management").items() if s == "open"} >= {80, 443}


@pytest.mark.parametrize("src, dst", [(s, d) for s in ("firewall-app", "firewall-mon") for d in MEMBERS if s != d])
def test_member_reaches_what_the_map_allows(src, dst):
    states = scan_once(src, dst)
    opened = {p for p, s in states.items() if s == "open"}
    assert opened == expected_open(src, dst)
    assert all(s == "filtered" for p, s in states.items() if p not in opened), states


@pytest.mark.parametrize("src, dst", [(s, d) for s in ("firewall-app", "firewall-mon") for d in MEMBERS if s != d])
def test_member_is_not_trusted_from_its_management_address(src, dst):
    """A member's management address is no cluster address: over the management network it
    gets what anybody gets (the public ports), not the map's flows."""
    states = scan_once(src, dst, "management")
    opened = {p for p, s in states.items() if s == "open"}
    assert opened == expected_public(dst)
    assert all(s == "filtered" for p, s in states.items() if p not in opened), states


def test_examples_of_the_map():
    """A few readings of the map spelled out (app: Postgres yes, Patroni REST/etcd no)."""
    from_app = {p for p, s in scan_once("firewall-app", "firewall-db").items() if s == "open"}
    from_mon = {p for p, s in scan_once("firewall-mon", "firewall-db").items() if s == "open"}
    assert {5432, 6432, 22} <= from_app and not {8008, 2379, 9100, 9187} & from_app
    assert {5432, 8008, 2379, 9100, 9187} <= from_mon and 6432 not in from_mon


@pytest.mark.parametrize("name", MEMBERS)
def test_controller_reaches_ssh_from_firewall_ssh_allow(name):
    assert ssh_from_controller(name) == 0
    # firewall_ssh_allow is the management gateway: from the cluster bridge's gateway (the
    # same machine on the other network) SSH is dropped.
    assert ssh_from_controller(name, address=verifier.cluster_address(name, SCENARIO)) != 0


@pytest.mark.parametrize("name", MEMBERS)
def test_policies_jump_and_ipv6(name):
    h = host(name)
    v4 = h.check_output("iptables -S")
    assert "-P INPUT DROP" in v4 and "-P FORWARD DROP" in v4 and "-P OUTPUT ACCEPT" in v4
    assert v4.count("-A INPUT -j HS-INPUT") == 1
    v6 = h.check_output("ip6tables -S")
    assert "-P INPUT DROP" in v6
    assert "--icmpv6-type 135 -m hl --hl-eq 255 -j ACCEPT" in v6


@pytest.mark.parametrize("name", MEMBERS)
def test_foreign_chains_untouched(name):
    h = host(name)
    assert h.check_output("iptables -S DOCKER-USER").splitlines() == [
        "-N DOCKER-USER", "-A DOCKER-USER -s 192.0.2.66/32 -j DROP", "-A DOCKER-USER -j RETURN"]
    assert "-A FORWARD -j DOCKER-USER" in h.check_output("iptables -S FORWARD")
    assert "-A INPUT -s 198.51.100.7/32 -p tcp -m tcp --dport 22 -j DROP" in h.check_output("iptables -S INPUT")
    # Docker's embedded DNS (nat table) survives: its rules are not ours
    assert "127.0.0.11" in h.check_output("iptables-save -t nat")


def test_check_diff_on_converged_hosts_changes_nothing():
    rc, out = playbook("--check", "--diff")
    assert rc == 0, out
    rows = recap(out)
    assert all(rows[m]["changed"] == 0 for m in MEMBERS), rows


def test_check_diff_shows_rule_lines_and_applies_nothing():
    before = owned("firewall-db")
    rc, out = playbook("--check", "--diff", "--limit", "firewall-db", "-e",
                       '{"firewall_extra_rules": [{"name": "syslog", "port": 6514, "from": ["monitoring"]}]}')
    assert rc == 0, out
    assert recap(out)["firewall-db"]["changed"] >= 1
    # The source is the monitoring host's cluster address (never its management address).
    mon = re.escape(verifier.cluster_address("firewall-mon", SCENARIO))
    assert re.search(rf'^\+-A HS-INPUT -s {mon}/32 -p tcp -m tcp --dport 6514 -m comment --comment '
                     r'"hs:syslog" -j ACCEPT$', out, re.M), out
    mgmt = verifier.management_address("firewall-mon", SCENARIO)
    assert not [x for x in out.splitlines() if re.match(r"^[+-]?-A ", x) and f"-s {mgmt}/" in x], out
    assert owned("firewall-db") == before


BAD_INPUT = {
    "invalid-cidr": "10.0.0.300/24",
    "unknown-group": "no_such_group",
    "port-range": "port 70000 is not in 1..65535",
    "conflict": "conflicts with port map entry 'postgresql'",
    "duplicate": "duplicate name 'a'",
    "protocol": "unsupported protocol 'sctp'",
}


@pytest.fixture(scope="module", name="bad_input")
def fixture_bad_input():
    """One run of bad_input.yml: the role's preflight once per bad value, on firewall-db."""
    before = owned("firewall-db")
    rc, out = playbook(playbook_file="bad_input.yml")
    # YAML-formatted results double the quotes inside quoted scalars
    flat = " ".join(out.split()).replace("''", "'")
    # {case: "REFUSED <output of the case's run>"}: the failure text precedes its marker
    parts = re.split(r"BADINPUT (\S+) (REFUSED|ACCEPTED)", flat)
    found = {parts[i]: "%s %s" % (parts[i + 1], parts[i - 1]) for i in range(1, len(parts) - 1, 3)}
    return rc, out, found, before


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_refused_naming_the_value(bad_input, case):
    rc, out, found = bad_input[:3]
    assert rc == 0, out
    assert found.get(case, "").startswith("REFUSED"), out
    assert BAD_INPUT[case] in found[case], found[case]


def test_bad_input_changed_nothing(bad_input):
    out, before = bad_input[1], bad_input[3]
    assert recap(out)["firewall-db"]["changed"] == 0
    assert owned("firewall-db") == before


def test_bad_input_stops_the_whole_role_before_any_change():
    before = owned("firewall-db")
    rc, out = playbook("--limit", "firewall-db", "-e", '{"firewall_ssh_allow": ["10.0.0.300/24"]}')
    flat = " ".join(out.split())
    assert rc != 0
    assert "'10.0.0.300/24' is not a valid address or CIDR" in flat, out
    assert recap(out)["firewall-db"]["changed"] == 0
    assert owned("firewall-db") == before


def test_lockout_drill_new_connections_cut_rolls_back():
    """firewall_ssh_allow without the controller: new SSH connections would be refused."""
    name = "firewall-lb"
    before = owned(name)
    persisted = host(name).check_output("cat /etc/hardened-stack/firewall/rules.v4")
    rc, out = playbook("--limit", name, "-e",
                       '{"firewall_ssh_allow": ["192.0.2.0/24"], "firewall_lockout_check": false}')
    flat = " ".join(out.split())
    assert rc != 0
    assert "cut the management connection" in flat and "restored the previous ruleset" in flat, out
    assert "the host is reachable again" in flat, out
    # the host's own record: the rollback timer fired and restored the previous ruleset
    assert "not confirmed within 15s: previous ruleset restored" in host(name).check_output(
        "journalctl -t hardened-stack-firewall --no-pager -n 20")
    assert ssh_from_controller(name) == 0
    assert owned(name) == before
    assert host(name).check_output("cat /etc/hardened-stack/firewall/rules.v4") == persisted


def test_lockout_preflight_refuses_before_any_change():
    name = "firewall-lb"
    before = owned(name)
    rc, out = playbook("--limit", name, "-e", '{"firewall_ssh_allow": ["192.0.2.0/24"]}')
    flat = " ".join(out.split())
    # The controller's SSH connection comes from the management bridge's gateway.
    gateway = verifier.gateway(verifier.management_address(name, SCENARIO))
    assert rc != 0 and f"would not admit new SSH connections from {gateway}" in flat, out
    assert recap(out)[name]["changed"] == 0
    assert owned(name) == before


def test_lockout_drill_established_connection_dropped_rolls_back():
    """A ruleset that drops everything, the live SSH connection included."""
    name = "firewall-mon"
    before = owned(name)
    rc, out = playbook("--limit", name, playbook_file="drill.yml")
    flat = " ".join(out.split())
    assert rc != 0
    assert "previous ruleset" in flat, out
    assert ssh_from_controller(name) == 0
    assert owned(name) == before


def test_ruleset_is_back_after_a_restart():
    name = "firewall-app"
    before = owned(name)
    subprocess.run(["docker", "restart", "--time", "20", name], check=True, capture_output=True, timeout=120)
    deadline = time.time() + 240
    while ssh_from_controller(name, "systemctl is-system-running --wait >/dev/null; true") != 0:
        assert time.time() < deadline, "host not reachable over SSH after the restart"
        time.sleep(2)
    assert owned(name) == before
    assert host(name).service("hardened-stack-firewall").is_enabled
    assert host(name).service("hardened-stack-firewall").is_running or \
        host(name).run("systemctl is-active hardened-stack-firewall").stdout.strip() == "active"
    assert scan(OUTSIDER, name)[22] == "filtered"
    assert scan(OUTSIDER, name, "management")[22] == "filtered"
    # firewall-app runs fail2ban (tests/test_fail2ban.py): at boot hardened-stack-firewall.service
    # starts before fail2ban.service, whose jump lands above ours; the ban is restored
    h = host(name)
    assert verifier.wait(lambda: "-j f2b-sshd" in h.run("iptables -S INPUT").stdout, timeout=90)
    rules = h.check_output("iptables -S INPUT").splitlines()
    f2b = [i for i, r in enumerate(rules) if r.endswith("-j f2b-sshd")]
    assert len(f2b) == 1 and f2b[0] < rules.index("-A INPUT -j HS-INPUT"), rules
    assert verifier.wait(lambda: "-j DROP" in h.run("iptables -S f2b-sshd").stdout, timeout=60)
    assert scan(OUTSIDER, name, "management")[22] == "filtered"
