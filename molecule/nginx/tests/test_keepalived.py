"""The load balancers' virtual address (hardened.stack.keepalived, issue 19): exactly one load
balancer holds it, the client reaches the site on it (the certificate names it), nginx stopped
on the holder moves it to the other (the tracked check, not the process), nginx back does not
move it back (nopreempt), a rerun changes nothing and a reload keeps it where it is. VRRP from a
host that is no peer: keepalived is told to ignore it (check_unicast_src, checked in the
configuration) and the firewall admits it from the other load balancer only (a unit test,
tests/unit/plugins/module_utils/test_front_door.py: this scenario applies no firewall).

Tests run in file order and share the hosts; each leaves both load balancers serving, keepalived
running on both and exactly one of them holding the address.
"""

import functools
import os
import sys

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
sys.path.insert(0, os.path.join(PROJECT, "molecule", "_shared"))
import verifier  # noqa: E402  (molecule/_shared/verifier.py)

LBS = verifier.group("loadbalancers", SCENARIO)
CLIENT = "nginx-client"
CA = "/etc/hardened-stack/pki/ca.crt"
CONF = "/etc/keepalived/keepalived.conf"
CHECK = "/etc/keepalived/hardened-stack-check"
# The collection's answers, as Ansible renders them for the first load balancer.
ANSWERS = verifier.rendered(LBS[0], {
    "vip": "{{ groups | hardened.stack.virtual_addresses(hostvars) }}",
    "front": "{{ groups | hardened.stack.front_door(hostvars) }}",
    "vrid": "{{ keepalived_virtual_router_id | default(51) }}",
    "script_user": "{{ keepalived_script_user | default('keepalived_script') }}",
}, SCENARIO)
VIP = ANSWERS["vip"][0]
playbook = functools.partial(verifier.playbook, cwd=SCENARIO, timeout=900)


def host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


def holders():
    """The load balancers that have the virtual address on an interface."""
    return [lb for lb in LBS if host(lb).run(f"ip -o addr show to {VIP}").stdout.strip()]


def one_holder():
    found = holders()
    return found[0] if len(found) == 1 else None


def journal_lines(lb, since_cursor):
    """keepalived's journal lines on ``lb`` after ``since_cursor``."""
    return host(lb).run(f"journalctl -u keepalived.service --no-pager -o cat --after-cursor='{since_cursor}'").stdout


def cursor(lb):
    return host(lb).check_output(
        "journalctl -u keepalived.service -n 1 --show-cursor -o cat | sed -n 's/^-- cursor: //p'")


def healthy(lb):
    """The tracked check as keepalived runs it: the script, as the unprivileged script user."""
    return host(lb).run(f"runuser -u {ANSWERS['script_user']} -- {CHECK}").rc == 0


def https_status(address, path="/health"):
    """The status of ``https://address/path`` from the client, certificate verified against the CA."""
    res = host(CLIENT).run(f"curl -sS -o /dev/null -w '%{{http_code}}' --max-time 5 --cacert {CA} "
                           f"{verifier.url('https', address, None, path)}")
    assert res.rc == 0, res.stderr
    return int(res.stdout)


@pytest.fixture(autouse=True)
def serving_pair():
    """Before and after each test: nginx and keepalived up on both, one holder of the address."""
    for lb in LBS:
        host(lb).run("systemctl start nginx.service keepalived.service")
    assert verifier.wait(lambda: all(healthy(lb) for lb in LBS), timeout=60)
    assert verifier.wait(one_holder, timeout=60), holders()
    yield
    for lb in LBS:
        host(lb).run("systemctl start nginx.service keepalived.service")
    assert verifier.wait(lambda: all(healthy(lb) for lb in LBS), timeout=60)
    assert verifier.wait(one_holder, timeout=60), holders()


def test_the_front_door_is_the_virtual_address():
    # one answer: the VIP is what the stack gives clients, and no host's own address
    assert ANSWERS["front"] == ANSWERS["vip"] == ["172.30.34.100"]
    assert VIP not in verifier.cluster_addresses_of(verifier.platforms(SCENARIO), SCENARIO).values()


def test_exactly_one_load_balancer_holds_the_address_and_serves_on_it():
    assert len(holders()) == 1
    assert https_status(VIP) == 200
    # the holder's certificate names the virtual address (curl above verified it; the SAN itself)
    for lb in LBS:
        text = host(lb).check_output("openssl x509 -noout -ext subjectAltName -in /etc/hardened-stack/pki/%s.crt", lb)
        assert f"IP Address:{VIP}" in text


def test_unicast_peers_from_the_address_model_and_no_preemption():
    addresses = verifier.cluster_addresses_of(LBS, SCENARIO)
    for lb in LBS:
        conf = host(lb).file(CONF).content_string
        assert f"unicast_src_ip {addresses[lb]}\n" in conf
        others = [addresses[o] for o in LBS if o != lb]
        assert all(f"        {peer}\n" in conf for peer in others)
        assert "state BACKUP\n" in conf and "    nopreempt\n" in conf and "check_unicast_src" in conf
        assert f"virtual_ipaddress {{\n        {VIP}/32 dev " in conf
        # the check runs as a locked system user without a shell
        user = host(lb).user(ANSWERS["script_user"])
        assert user.exists and user.shell == "/usr/sbin/nologin" and user.uid < 1000


def test_nginx_down_on_the_holder_moves_the_address_and_back_up_does_not_take_it_back():
    holder = one_holder()
    other = [lb for lb in LBS if lb != holder][0]
    mark = cursor(holder)
    host(holder).run("systemctl stop nginx.service")
    try:
        # the process check would pass (keepalived runs); the TLS check fails and the holder steps down
        assert not healthy(holder)
        assert verifier.wait(lambda: holders() == [other], timeout=30), holders()
        assert "FAULT" in journal_lines(holder, mark)
        assert https_status(VIP) == 200
        mark = cursor(holder)
    finally:
        host(holder).run("systemctl start nginx.service")
    # the recovered node leaves FAULT for BACKUP (its check passes again) and stays there
    assert verifier.wait(lambda: "Entering BACKUP STATE" in journal_lines(holder, mark), timeout=30)
    assert holders() == [other]
    assert https_status(VIP) == 200


def main_pid(lb):
    return host(lb).check_output("systemctl show -p MainPID --value keepalived.service")


def test_a_rerun_changes_nothing_and_a_reload_keeps_the_address():
    holder = one_holder()
    pids = {lb: main_pid(lb) for lb in LBS}
    play = os.path.join(verifier.ephemeral_directory(SCENARIO), "keepalived_only.yml")
    with open(play, "w", encoding="utf-8") as fh:
        fh.write("- hosts: loadbalancers\n  become: true\n  roles:\n    - role: hardened.stack.keepalived\n")
    marks = {lb: cursor(lb) for lb in LBS}
    rc, out = playbook(play)
    assert rc == 0, out
    assert verifier.recap_changed(out) == 0, out
    # nothing restarted or reloaded, and the address stayed
    assert {lb: main_pid(lb) for lb in LBS} == pids
    assert not any("Reloading" in journal_lines(lb, marks[lb]) for lb in LBS)
    assert one_holder() == holder
    # a changed setting is written, checked and reloaded (SIGHUP, same process): the holder keeps the address
    mark = cursor(holder)
    try:
        rc, out = playbook(play, "-e", "keepalived_check_rise=3")
        assert rc == 0, out
        assert "rise 3" in host(holder).file(CONF).content_string
        assert verifier.wait(lambda: "Reloading" in journal_lines(holder, mark), timeout=30)
        assert main_pid(holder) == pids[holder]
        assert one_holder() == holder
    finally:
        rc, out = playbook(play)
        assert rc == 0, out
    assert one_holder() == holder
