"""Issue 19: the firewall coexists with a live fail2ban ban (firewall-app, molecule.yml host_vars).

converge.yml installs fail2ban on firewall-app (the baseline role's optional part, iptables
actions, DROP) and bans the outsider's management address (and an IPv6 address) BEFORE the
firewall's first apply. firewall_ssh_allow admits the outsider's address on that host, so only
the ban keeps it out: it works only if fail2ban's jump runs before the jump into HS-INPUT
(which ends in DROP after its ACCEPTs). Checked after the converge and idempotence runs, after
a firewall rerun, after `systemctl restart fail2ban` + rerun, and after the firewall's jump
was put back on top by hand (the order the old code left). The other hosts have no fail2ban.

This file runs before test_firewall.py (file order), which later restarts firewall-app: there
the boot order (hardened-stack-firewall.service before fail2ban.service) is checked.
"""

import os
import re
import sys

import pytest
import testinfra
import yaml

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
sys.path.insert(0, os.path.join(PROJECT, "molecule", "_shared"))
import verifier  # noqa: E402  (molecule/_shared/verifier.py)

NAME = "firewall-app"
OUTSIDER = "firewall-outsider"
with open(os.path.join(SCENARIO, "molecule.yml"), encoding="utf-8") as _fh:
    HOST_VARS = yaml.safe_load(_fh)["provisioner"]["inventory"]["host_vars"][NAME]
BANNED4, BANNED6 = HOST_VARS["fwtest_banned"]
OTHERS = sorted(n for n, p in verifier.platforms(SCENARIO).items() if p.get("groups") and n != NAME)


def host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


def firewall(*args):
    """firewall.yml on the fail2ban host; (rc, output, changed)."""
    rc, out = verifier.playbook("--limit", NAME, *args, "firewall.yml", cwd=SCENARIO)
    return rc, out, verifier.recap(out).get(NAME, {}).get("changed")


def input_rules(name=NAME, binary="iptables"):
    return host(name).check_output(f"{binary} -S INPUT").splitlines()


def position(rules, suffix):
    found = [i for i, rule in enumerate(rules) if rule.endswith(suffix)]
    assert len(found) == 1, (suffix, rules)
    return found[0]


def assert_order(binary="iptables"):
    """fail2ban's jump above ours, our jump exactly once."""
    rules = input_rules(binary=binary)
    assert position(rules, "-j f2b-sshd") < position(rules, "-j HS-INPUT"), rules


def assert_banned():
    """The ban is live in fail2ban's chain, and a new TCP connection from the banned outsider
    to SSH gets no answer (DROP): no SSH banner within the timeout."""
    h = host(NAME)
    assert f"-A f2b-sshd -s {BANNED4}/32 -j DROP" in h.check_output("iptables -S f2b-sshd")
    assert banner() == "", "the banned outsider opened a new SSH connection"


def banner():
    """What a new TCP connection from the outsider's management address to the fail2ban host's
    management address reads from port 22 within 5 s ('SSH-2.0' if it got through)."""
    target = verifier.management_address(NAME, SCENARIO)
    out = host(OUTSIDER).run(f"nc -w 5 {target} 22 </dev/null | head -c 7")
    return out.stdout.strip()


def test_the_ban_was_live_before_the_first_apply_and_stays_above_our_jump():
    # fail2ban started (and inserted its jump) before the firewall's first apply
    rules = input_rules()
    assert_order()
    assert f"-A f2b-sshd -s {BANNED4}/32 -j DROP" in host(NAME).check_output("iptables -S f2b-sshd")
    assert BANNED4 in host(NAME).check_output("fail2ban-client status sshd")
    assert rules.count("-A INPUT -j HS-INPUT") == 1


def test_banned_outsider_cannot_open_a_new_ssh_connection():
    assert_banned()


def test_without_the_ban_the_outsider_would_get_in():
    """The control: the same connection gets sshd's banner once the address is unbanned, so
    the test above proves the ban (not HS-INPUT) keeps it out."""
    h = host(NAME)
    try:
        h.check_output(f"fail2ban-client set sshd unbanip {BANNED4}")
        assert banner() == "SSH-2.0"
    finally:
        h.check_output(f"fail2ban-client set sshd banip {BANNED4}")
    assert_banned()


def test_ipv6_ban_stays_above_our_jump():
    assert f"-A f2b-sshd -s {BANNED6}/128 -j DROP" in host(NAME).check_output("ip6tables -S f2b-sshd")
    assert_order("ip6tables")


def test_firewall_rerun_changes_nothing_and_the_ban_holds():
    rc, out, changed = firewall()
    assert rc == 0 and changed == 0, out
    assert_order()
    assert_order("ip6tables")
    assert_banned()


def test_fail2ban_restart_then_firewall_rerun():
    h = host(NAME)
    h.check_output("systemctl restart fail2ban")
    # fail2ban restores its bans from its database once its jails are up again
    assert verifier.wait(lambda: BANNED4 in h.run("iptables -S f2b-sshd").stdout, timeout=60), h.run(
        "iptables -S INPUT; journalctl -u fail2ban --no-pager -n 30"
    ).stdout
    assert_order()
    rc, out, changed = firewall()
    assert rc == 0 and changed == 0, out
    assert_order()
    assert_order("ip6tables")
    assert_banned()


def test_jump_left_on_top_is_moved_below_the_ban_list():
    """The order an earlier firewall release left (its jump inserted at the top after fail2ban
    started): the outsider gets in; check mode reports it; the rerun moves the jump below
    fail2ban's in one transaction; the next rerun changes nothing."""
    h = host(NAME)
    for binary in ("iptables", "ip6tables"):
        h.check_output(f"{binary} -w -D INPUT -j HS-INPUT && {binary} -w -I INPUT 1 -j HS-INPUT")
    assert position(input_rules(), "-j HS-INPUT") == 1  # after "-P INPUT DROP"
    assert banner() == "SSH-2.0"
    rc, out, changed = firewall("--check", "--diff")
    assert rc == 0 and changed >= 1, out
    # the IPv4 diff: HS-INPUT's jump above f2b-sshd's before, below it after
    ipv4 = out.split("--- before: ipv4 filter (live)")[1].split("--- before:")[0]
    diff = [line for line in ipv4.splitlines() if re.match(r"^[-+ ]-A INPUT ", line)]
    before = [line[1:] for line in diff if line[0] in " -"]
    after = [line[1:] for line in diff if line[0] in " +"]
    assert position(before, "-j HS-INPUT") < position(before, "-j f2b-sshd"), out
    assert position(after, "-j HS-INPUT") > position(after, "-j f2b-sshd"), out
    assert position(input_rules(), "-j HS-INPUT") == 1
    rc, out, changed = firewall()
    assert rc == 0 and changed >= 1, out
    assert_order()
    assert_order("ip6tables")
    assert_banned()
    rc, out, changed = firewall()
    assert rc == 0 and changed == 0, out


def test_sshd_jail_bans_failed_logins_read_from_the_journal():
    """A real ban: failed logins (an unknown user) from a member that may reach SSH are read
    from the journal (ssh.service) and banned above HS-INPUT. Unbanned afterwards: the scans
    of test_firewall.py expect the member to reach SSH."""
    src = "firewall-mon"
    addr = verifier.cluster_address(src, SCENARIO)
    target = verifier.cluster_address(NAME, SCENARIO)
    h = host(NAME)
    try:
        for _n in range(6):  # maxretry 5
            host(src).run(
                "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                f"-o ConnectTimeout=5 hs-no-such-user@{target} true; echo ssh-rc=$?"
            )  # ssh exits 255 (refused); the echo keeps testinfra from taking that for its own failure
        assert verifier.wait(lambda: addr in h.run("fail2ban-client status sshd").stdout, timeout=60), h.run(
            "fail2ban-client status sshd; journalctl -u ssh -u fail2ban --no-pager -n 30"
        ).stdout
        assert f"-A f2b-sshd -s {addr}/32 -j DROP" in h.check_output("iptables -S f2b-sshd")
        assert_order()
    finally:
        h.run(f"fail2ban-client set sshd unbanip {addr}")
    assert addr not in h.check_output("iptables -S f2b-sshd")


def test_nginx_jails_run_with_debians_filters():
    status = host(NAME).check_output("fail2ban-client status")
    for jail in ("sshd", "nginx-http-auth", "nginx-limit-req"):
        assert jail in status, status


@pytest.mark.parametrize(
    "jail, line",
    [
        # limit_req refusing a request (429 with nginx_limit_status), as nginx's error log has it
        (
            "nginx-limit-req",
            "2026/12/07 21:00:00 [error] 812#812: *4021 limiting requests, excess: 20.040 by zone "
            '"hs_site_0", client: 192.0.2.45, server: shop.example.org, request: "GET / HTTP/1.1", '
            'host: "shop.example.org"',
        ),
        # basic auth failures (401)
        (
            "nginx-http-auth",
            '2026/12/07 21:00:00 [error] 812#812: *4022 user "admin": password mismatch, client: '
            '192.0.2.45, server: shop.example.org, request: "GET /metrics HTTP/1.1", '
            'host: "shop.example.org"',
        ),
        (
            "nginx-http-auth",
            '2026/12/07 21:00:00 [error] 812#812: *4023 user "root" was not found in '
            '"/etc/nginx/htpasswd", client: 192.0.2.45, server: shop.example.org, request: '
            '"GET /metrics HTTP/1.1", host: "shop.example.org"',
        ),
    ],
)
def test_nginx_filters_match_nginx_error_log_lines(jail, line):
    h = host(NAME)
    h.check_output(f"printf '%s\\n' {_sh(line)} > /tmp/hs-fwtest-{jail}.log")
    out = h.check_output(f"fail2ban-regex /tmp/hs-fwtest-{jail}.log /etc/fail2ban/filter.d/{jail}.conf")
    # every failregex of fail2ban captures the client's address (<HOST>): a match is a ban count
    assert re.search(r"Lines: 1 lines, 0 ignored, 1 matched", out), out


def _sh(value):
    return "'" + value.replace("'", "'\\''") + "'"


@pytest.mark.parametrize("name", OTHERS)
def test_hosts_without_fail2ban_keep_their_behaviour(name):
    h = host(name)
    assert not h.exists("fail2ban-client")
    rules = input_rules(name)
    # no ban list: the jump went to the top as before
    assert rules[1] == "-A INPUT -j HS-INPUT", rules
