#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: iptables_apply
short_description: Apply the complete ruleset of the iptables chains you own, atomically, with rollback
version_added: "0.1.0"
description:
  - Takes the complete desired content of the C(filter) table chains this module owns (for IPv4
    and IPv6), the policies of the built-in chains and the jumps from built-in chains into the
    owned chains.
  - Compares it with the live ruleset (C(iptables-save) parsed and normalised) and does nothing
    when nothing differs. Otherwise it renders one C(iptables-restore --noflush) transaction per
    family, validates it with C(iptables-restore --test) and applies it in one commit.
  - Chains it does not own (C(DOCKER*), C(f2b-*), C(KUBE-*), ...), foreign rules in the
    built-in chains and every other table are never touched. Owned chains are the ones given
    plus any live chain whose name starts with O(chain_prefix) (those that are no longer
    wanted are deleted).
  - B(Rollback.) With O(rollback_timeout) > 0 the host arms a timer (a transient systemd timer,
    or a detached process without systemd) that restores the previous state of the owned
    chains after O(rollback_timeout) seconds. The action plugin then opens a B(new) connection
    to the host and confirms, which disarms the timer. A ruleset that cuts the management
    connection therefore heals itself and the task fails with the reason.
  - B(Persistence.) After a confirmed apply the ruleset is written to O(persist_dir)
    (C(rules.v4), C(rules.v6)) in C(iptables-restore --noflush) format, for a boot-time unit
    such as the C(hardened.stack.firewall) role's C(hardened-stack-firewall.service).
author:
  - hardened.stack contributors (@hardened-stack)
options:
  ipv4:
    description:
      - Desired IPv4 state. Omit to leave IPv4 alone.
    type: dict
    suboptions:
      chains:
        description:
          - Owned chain name -> list of rules, each rule as the part of an C(iptables-save) line
            after C(-A CHAIN) (for example C(-s 10.0.0.1/32 -p tcp -m tcp --dport 22 -j ACCEPT)).
        type: dict
        default: {}
      policies:
        description: Built-in chain -> V(ACCEPT) or V(DROP).
        type: dict
        default: {}
      jumps:
        description:
          - Built-in chain -> list of owned chains it jumps to. A missing jump is inserted
            right below the last foreign-first rule of the chain (see O(foreign_first)), at the
            top when there is none; an existing one keeps its position unless a foreign-first
            rule sits below it (then it is moved below, in the same transaction); duplicates
            are removed.
        type: dict
        default: {}
  ipv6:
    description:
      - Desired IPv6 state, same structure as O(ipv4). Omit to leave IPv6 alone. Skipped with a
        warning when the host has no IPv6 stack.
    type: dict
    suboptions:
      chains:
        description: Owned chain name -> list of rules.
        type: dict
        default: {}
      policies:
        description: Built-in chain -> V(ACCEPT) or V(DROP).
        type: dict
        default: {}
      jumps:
        description: Built-in chain -> list of owned chains it jumps to.
        type: dict
        default: {}
  foreign_first:
    description:
      - Patterns (shell-style C(*) and C(?), case-sensitive) of foreign chains and C(ipset) sets
        whose rules in a built-in chain must stay B(above) the jumps into the owned chains (ban
        lists that drop an address before the owned chain accepts it). A rule counts when its
        C(-j)/C(-g) target or its C(--match-set) set name matches.
      - The default covers fail2ban (C(f2b-*) chains and sets of its iptables and ipset
        actions, C(fail2ban-*) before 0.9), CrowdSec's iptables bouncer (C(CROWDSEC_CHAIN),
        C(crowdsec-*) sets), sshguard (C(sshguard)) and Docker's C(DOCKER-USER) (the chain
        Docker documents for the administrator's rules and keeps first in C(FORWARD)).
      - fail2ban's nftables actions use their own nftables table and hook, which runs before
        the iptables C(filter) table in any case.
      - When such a tool inserts its jump at the top after this module ran (a restart), the next
        run reports a change and moves the jump below it. An empty list restores the plain
        behaviour (a missing jump goes to the top).
    type: list
    elements: str
    default: [f2b-*, fail2ban-*, CROWDSEC_CHAIN, crowdsec-*, sshguard, DOCKER-USER]
  chain_prefix:
    description:
      - Every owned chain's name starts with this prefix; a live chain with the prefix that is
        not in the desired state is deleted. Empty string = own only the chains given.
    type: str
    default: HS-
  rollback_timeout:
    description:
      - Seconds after which the host restores the previous ruleset unless the controller
        reconnected and confirmed. V(0) applies without a safety net.
    type: int
    default: 30
  persist:
    description: Write the applied ruleset to O(persist_dir) once it is confirmed.
    type: bool
    default: true
  persist_dir:
    description: Directory of the persisted C(rules.v4) and C(rules.v6).
    type: path
    default: /etc/hardened-stack/firewall
  state_dir:
    description: Runtime directory of the rollback scripts and cookies (a tmpfs).
    type: path
    default: /run/hardened-stack-firewall
  phase:
    description:
      - Internal, set by the action plugin. V(apply) applies (and arms the rollback),
        V(confirm) disarms the rollback named by O(rollback_id) and persists.
    type: str
    choices: [apply, confirm]
    default: apply
  rollback_id:
    description: Internal, set by the action plugin for O(phase=confirm).
    type: str
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
    details: The action plugin confirms the new ruleset over a new connection.
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: One diff per family, one line per rule, policy and jump of the owned state.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Needs C(iptables) (nf_tables or legacy backend). Only the C(filter) table is managed.
  - The confirmation needs a new connection; with C(ControlPersist) the action plugin resets
    the connection first, so the check covers what the next run would meet.
seealso:
  - module: community.general.iptables_state
  - module: ansible.builtin.iptables
"""

EXAMPLES = r"""
- name: Own HS-INPUT, default-drop INPUT, SSH from the management network only
  hardened.stack.iptables_apply:
    ipv4:
      chains:
        HS-INPUT:
          - -i lo -j ACCEPT
          - -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
          - -s 192.0.2.0/24 -p tcp -m tcp --dport 22 -j ACCEPT
          - -j DROP
      policies: {INPUT: DROP}
      jumps: {INPUT: [HS-INPUT]}
    rollback_timeout: 30

- name: Rules computed from the port map and the inventory (what the firewall role does)
  hardened.stack.iptables_apply: "{{ _common_port_map | hardened.stack.firewall_ruleset(inventory_hostname, groups, hostvars) }}"
"""

RETURN = r"""
changed_families:
  description: Families whose live owned state differed and was (or in check mode would be) applied.
  returned: always
  type: list
  elements: str
  sample: [ipv4]
transaction:
  description: The C(iptables-restore --noflush) input per family that was (or would be) applied.
  returned: always
  type: dict
  sample: {ipv4: "*filter\n:HS-INPUT - [0:0]\n-A HS-INPUT -i lo -j ACCEPT\nCOMMIT\n"}
added:
  description: Rule, policy and jump lines added, per family.
  returned: always
  type: dict
  sample: {ipv4: ["-A HS-INPUT -s 10.0.0.5/32 -p tcp -m tcp --dport 5432 -j ACCEPT"]}
removed:
  description: Rule, policy and jump lines removed, per family.
  returned: always
  type: dict
  sample: {ipv4: []}
persisted:
  description: Whether the persisted files were (or would be) rewritten.
  returned: always
  type: bool
rollback_id:
  description: Name of the armed rollback (the action plugin confirms it).
  returned: when a rollback was armed
  type: str
  sample: "1795459200-4242"
confirmed:
  description: The new ruleset was confirmed over a new connection and the rollback disarmed.
  returned: when a rollback was armed
  type: bool
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hardened.stack.plugins.module_utils import iptables as ipt

BINARIES = {"ipv4": ("iptables-save", "iptables-restore", "rules.v4"),
            "ipv6": ("ip6tables-save", "ip6tables-restore", "rules.v6")}


def _run(module, args, data=None, what=""):
    rc, out, err = module.run_command(args, data=data, binary_data=True)
    if rc != 0:
        module.fail_json(msg="%s failed (rc=%d): %s" % (what or " ".join(args), rc, (err or out).strip()),
                         stdin=data)
    return out


def _write_atomic(path, content, mode=0o600):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as fh:
        fh.write(content)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except (IOError, OSError):
        return None


def _make_dirs(path, mode):
    """Create ``path`` with ``mode``; missing parents get 0755 whatever the umask (a hardened
    027 umask would otherwise close e.g. /etc/hardened-stack to the services that read their
    certificates below it)."""
    parent = os.path.dirname(path.rstrip("/"))
    if parent and not os.path.isdir(parent):
        _make_dirs(parent, 0o755)
    os.mkdir(path)
    os.chmod(path, mode)


def _arm(module, state_dir, rid, timeout, scripts):
    """Write the rollback script and its cookie, start a timer that runs it."""
    if not os.path.isdir(state_dir):
        _make_dirs(state_dir, 0o700)
    base = os.path.join(state_dir, rid)
    lines = ["#!/bin/sh",
             "# hardened.stack firewall rollback %s: restores the owned chains as they were" % rid,
             "# before the apply, unless the controller confirmed (renamed the cookie) in time.",
             "mv -f %s.cookie %s.fired 2>/dev/null || exit 0" % (base, base)]
    for family, (restore, rollback, full) in sorted(scripts.items()):
        _write_atomic("%s.rollback.%s" % (base, family), rollback)
        _write_atomic("%s.full.%s" % (base, family), full)
        # The --noflush transition is exact; if something else changed the chains meanwhile
        # it fails, and the full pre-apply ruleset is restored instead.
        lines.append("%s -w --noflush < %s.rollback.%s || %s -w < %s.full.%s"
                     % (restore, base, family, restore, base, family))
    lines.append("logger -t hardened-stack-firewall 'not confirmed within %ds: previous ruleset "
                 "restored (%s)' 2>/dev/null || true" % (timeout, rid))
    _write_atomic(base + ".sh", "\n".join(lines) + "\n", 0o700)
    _write_atomic(base + ".cookie", "%d\n" % time.time())
    systemd_run = module.get_bin_path("systemd-run")
    if systemd_run and os.path.isdir("/run/systemd/system"):
        _run(module, [systemd_run, "--unit", "hs-firewall-rollback-%s" % rid,
                      "--description", "hardened.stack firewall rollback %s" % rid,
                      "--on-active=%ds" % timeout, "--timer-property=AccuracySec=100ms",
                      "/bin/sh", base + ".sh"], what="arming the rollback timer")
    else:
        # No systemd: a detached process in its own session (setsid -f) outlives the connection.
        setsid = module.get_bin_path("setsid", required=True)
        # The shell lets go of the module's stdio first, so run_command returns at once.
        _run(module, [setsid, "-f", "/bin/sh", "-c",
                      "exec </dev/null >/dev/null 2>&1; sleep %d; exec /bin/sh %s.sh" % (timeout, base)],
             what="arming the rollback timer")


def _cleanup(module, state_dir, rid):
    systemctl = module.get_bin_path("systemctl")
    if systemctl and os.path.isdir("/run/systemd/system"):
        module.run_command([systemctl, "stop", "hs-firewall-rollback-%s.timer" % rid])
    for name in os.listdir(state_dir):
        if name.startswith(rid + "."):
            os.unlink(os.path.join(state_dir, name))


def main():
    family_spec = dict(type="dict", options=dict(
        chains=dict(type="dict", default={}),
        policies=dict(type="dict", default={}),
        jumps=dict(type="dict", default={})))
    module = AnsibleModule(
        argument_spec=dict(
            ipv4=family_spec,
            ipv6=dict(family_spec),
            foreign_first=dict(type="list", elements="str", default=list(ipt.FOREIGN_FIRST)),
            chain_prefix=dict(type="str", default="HS-"),
            rollback_timeout=dict(type="int", default=30),
            persist=dict(type="bool", default=True),
            persist_dir=dict(type="path", default="/etc/hardened-stack/firewall"),
            state_dir=dict(type="path", default="/run/hardened-stack-firewall"),
            phase=dict(type="str", choices=["apply", "confirm"], default="apply"),
            rollback_id=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    prefix = p["chain_prefix"]
    if p["rollback_timeout"] < 0:
        module.fail_json(msg="rollback_timeout must be >= 0, got %d" % p["rollback_timeout"])

    desired = {}
    try:
        patterns = ipt.check_patterns(p["foreign_first"])
        for family in ipt.FAMILIES:
            if p[family] is not None:
                desired[family] = ipt.check_desired(p[family], family, prefix)
    except ipt.IptablesError as exc:
        module.fail_json(msg=str(exc))
    if not desired:
        module.fail_json(msg="give at least one of ipv4, ipv6")
    if "ipv6" in desired and not os.path.exists("/proc/net/if_inet6"):
        module.warn("the host has no IPv6 stack: the ipv6 ruleset is skipped")
        del desired["ipv6"]

    bins = {}
    for family in desired:
        save, restore, persist_name = BINARIES[family]
        bins[family] = (module.get_bin_path(save, required=True),
                        module.get_bin_path(restore, required=True), persist_name)

    boot = dict((f, ipt.render_boot(d)) for f, d in desired.items())

    def persist_differs():
        if not p["persist"]:
            return False
        return any(_read(os.path.join(p["persist_dir"], bins[f][2])) != boot[f] for f in desired)

    def write_persist():
        if not os.path.isdir(p["persist_dir"]):
            _make_dirs(p["persist_dir"], 0o700)
        for family in desired:
            _write_atomic(os.path.join(p["persist_dir"], bins[family][2]), boot[family])

    if p["phase"] == "confirm":
        rid = p["rollback_id"] or ""
        base = os.path.join(p["state_dir"], rid)
        try:
            os.rename(base + ".cookie", base + ".confirmed")
        except OSError:
            fired = os.path.exists(base + ".fired")
            module.fail_json(
                msg="the rollback %s already ran: the previous ruleset is live again (the new one "
                    "was not confirmed within the timeout)" % rid if fired else
                    "no armed rollback named %r on this host" % rid,
                rolled_back=fired, confirmed=False, changed=fired)
        _cleanup(module, p["state_dir"], rid)
        persisted = persist_differs()
        if persisted:
            write_persist()
        module.exit_json(changed=True, confirmed=True, persisted=persisted, rollback_id=rid)

    result = dict(changed=False, changed_families=[], transaction={}, added={}, removed={},
                  persisted=False)
    diffs = []
    owned_before = {}
    full_before = {}
    try:
        for family, want in sorted(desired.items()):
            save_bin = bins[family][0]
            full = _run(module, [save_bin], what=save_bin)
            full_before[family] = full
            parsed = ipt.parse_save(full, "filter")
            owned = ipt.owned_live(parsed, want, prefix, family)
            owned_before[family] = owned
            before = ipt.view(owned, family, patterns=patterns)
            after = ipt.view(ipt.expected_after(want, owned, family, patterns), family, patterns=patterns)
            if ipt.differs(want, owned, family, patterns):
                result["changed_families"].append(family)
                result["transaction"][family] = ipt.render_transition(want, owned, family, patterns=patterns)
                removed, added = ipt.changed_lines(before, after)
                result["removed"][family], result["added"][family] = removed, added
                diffs.append(dict(before_header="%s filter (live)" % family,
                                  after_header="%s filter (desired)" % family,
                                  before=before, after=after))
    except ipt.IptablesError as exc:
        module.fail_json(msg=str(exc))

    result["persisted"] = persist_differs()
    result["changed"] = bool(result["changed_families"]) or result["persisted"]
    if module._diff and diffs:
        result["diff"] = diffs
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    families = result["changed_families"]
    for family in families:
        _run(module, [bins[family][1], "--test", "--noflush"], data=result["transaction"][family],
             what="%s --test (validation, nothing applied)" % bins[family][1])

    rid = None
    if families and p["rollback_timeout"] > 0:
        rid = "%d-%d" % (time.time(), os.getpid())
        scripts = {}
        for family in families:
            scripts[family] = (bins[family][1],
                               ipt.render_rollback(owned_before[family], desired[family], family,
                                                   patterns=patterns),
                               full_before[family])
        _arm(module, p["state_dir"], rid, p["rollback_timeout"], scripts)

    applied = []
    for family in families:
        rc, out, err = module.run_command([bins[family][1], "-w", "--noflush"],
                                          data=result["transaction"][family], binary_data=True)
        if rc != 0:
            if applied:
                # undo the families already applied, right now
                for done in applied:
                    module.run_command([bins[done][1], "-w", "--noflush"],
                                       data=ipt.render_rollback(owned_before[done], desired[done], done,
                                                                patterns=patterns),
                                       binary_data=True)
            if rid:
                _cleanup(module, p["state_dir"], rid)
            module.fail_json(msg="%s failed (rc=%d): %s; the previous ruleset is live"
                             % (bins[family][1], rc, (err or out).strip()), **result)
        applied.append(family)

    if rid:
        result["rollback_id"] = rid
        result["rollback_timeout"] = p["rollback_timeout"]
    elif result["persisted"]:
        write_persist()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
