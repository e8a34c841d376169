# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure functions behind ``hardened.stack.iptables_apply``: parse, normalise, diff, render.

Vocabulary (one per address family, ``filter`` table only):

* **desired**: ``{"chains": {name: [rule, ...]}, "policies": {builtin: policy},
  "jumps": {builtin: [chain, ...]}}``. ``rule`` is the part of an ``iptables-save`` line after
  ``-A CHAIN`` (for example ``-s 10.0.0.1/32 -p tcp -m tcp --dport 22 -j ACCEPT``).
* **owned** chains: the chains named in ``desired`` plus every live chain whose name starts
  with the owner prefix (a chain we created earlier and no longer want is deleted). Every
  other chain, foreign rules in built-in chains and every other table are never touched:
  the transaction is applied with ``iptables-restore --noflush``.
* **jumps**: one ``-j CHAIN`` rule per (built-in chain, owned chain), placed BELOW every
  **foreign-first** rule of that built-in chain: a rule whose jump/goto target or ``ipset``
  set name matches one of the patterns in :data:`FOREIGN_FIRST` (ban lists: fail2ban's
  ``f2b-*`` chains and sets, CrowdSec's bouncer, sshguard; Docker's ``DOCKER-USER``). Our
  chain ends in DROP after its ACCEPTs, so a ban list below it would never be reached. A
  missing jump is inserted right after the last foreign-first rule (at the top when there is
  none); an existing jump keeps its position unless a foreign-first rule sits below it
  (fail2ban restarted after us and inserted its jump at the top): then the same transaction
  deletes it and inserts it again below. Duplicates are removed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import shlex
from fnmatch import fnmatchcase

BUILTIN = ("INPUT", "FORWARD", "OUTPUT")
POLICIES = ("ACCEPT", "DROP")
FAMILIES = ("ipv4", "ipv6")
CHAIN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,28}$")

ICMP_TYPES = {
    "any": "255", "echo-reply": "0", "pong": "0", "destination-unreachable": "3",
    "source-quench": "4", "redirect": "5", "echo-request": "8", "ping": "8",
    "router-advertisement": "9", "router-solicitation": "10", "time-exceeded": "11",
    "ttl-exceeded": "11", "parameter-problem": "12", "timestamp-request": "13",
    "timestamp-reply": "14",
}
ICMP6_TYPES = {
    "destination-unreachable": "1", "packet-too-big": "2", "time-exceeded": "3",
    "ttl-exceeded": "3", "parameter-problem": "4", "echo-request": "128", "ping": "128",
    "echo-reply": "129", "pong": "129", "router-solicitation": "133",
    "router-advertisement": "134", "neighbour-solicitation": "135",
    "neighbor-solicitation": "135", "neighbour-advertisement": "136",
    "neighbor-advertisement": "136", "redirect": "137",
}
# Patterns (fnmatch, case-sensitive) of foreign chains and ipset sets whose rules in a built-in
# chain must stay ABOVE our jump: ban lists that drop before our ACCEPTs would let a host in.
#   f2b-*          fail2ban >= 0.9: iptables(-multiport|-allports) chains f2b-<jail>, ipset
#                  actions' sets f2b-<jail> (fail2ban's nftables actions use their own nft
#                  table and hook, not iptables: they coexist by themselves)
#   fail2ban-*     fail2ban < 0.9 chain names
#   CROWDSEC_CHAIN, crowdsec-*   CrowdSec's iptables bouncer: its chain, its ipset sets
#   sshguard       sshguard's iptables backend chain
#   DOCKER-USER    Docker's documented chain for the administrator's rules, which Docker
#                  keeps first in FORWARD
# The firewall role's firewall_foreign_first_chains defaults to this list.
FOREIGN_FIRST = ("f2b-*", "fail2ban-*", "CROWDSEC_CHAIN", "crowdsec-*", "sshguard", "DOCKER-USER")
PATTERN_RE = re.compile(r"^[A-Za-z0-9_.*?-]{1,64}$")

LIMIT_UNITS = {"s": "sec", "sec": "sec", "second": "sec", "m": "min", "min": "min",
               "minute": "min", "h": "hour", "hour": "hour", "d": "day", "day": "day"}


class IptablesError(ValueError):
    """A ruleset, a rule or iptables-save output that cannot be used; the message names it."""


# ---------------------------------------------------------------------------------------------
# parse
# ---------------------------------------------------------------------------------------------

def parse_save(text, table="filter"):
    """Parse ``iptables-save`` output; return ``{"chains": {name: {"policy", "rules"}}, "order"}``.

    ``policy`` is the built-in chain's policy (``None`` for user chains); ``rules`` are the
    raw rule strings after ``-A CHAIN``, in order. Only ``table`` is read.
    """
    chains = {}
    order = []
    current = None
    for lineno, raw in enumerate((text or "").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = line[1:].strip()
            continue
        if current != table:
            continue
        if line == "COMMIT":
            current = None
            continue
        if line.startswith(":"):
            parts = line[1:].split()
            if len(parts) < 2:
                raise IptablesError("iptables-save line %d: bad chain line %r" % (lineno, raw))
            name, policy = parts[0], parts[1]
            chains[name] = {"policy": None if policy == "-" else policy, "rules": []}
            order.append(name)
            continue
        if line.startswith("-A "):
            parts = line.split(None, 2)
            name = parts[1]
            if name not in chains:
                raise IptablesError("iptables-save line %d: rule for undeclared chain %r"
                                    % (lineno, name))
            chains[name]["rules"].append(parts[2] if len(parts) > 2 else "")
            continue
        raise IptablesError("iptables-save line %d: unexpected %r" % (lineno, raw))
    return {"chains": chains, "order": order}


# ---------------------------------------------------------------------------------------------
# normalise
# ---------------------------------------------------------------------------------------------

def _split(rule):
    try:
        return shlex.split(rule)
    except ValueError as exc:
        raise IptablesError("rule %r cannot be parsed: %s" % (rule, exc))


def _addr(value, family):
    neg = ""
    if value.startswith("!"):
        neg, value = "!", value[1:].strip()
    parts = []
    for item in value.split(","):
        item = item.strip().lower()
        if "/" not in item:
            item += "/128" if (family == "ipv6" or ":" in item) else "/32"
        parts.append(item)
    return neg, ",".join(parts)


def normalise_rule(rule, family="ipv4"):
    """Canonical token tuple of a rule, equal for two spellings iptables stores the same way.

    Handles what ``iptables-save`` adds or rewrites: ``/32`` and ``/128`` host masks, the
    implicit ``-m tcp``/``-m udp``/``-m icmp``/``-m icmp6`` match, ICMP type names, protocol
    aliases (``icmpv6`` = ``ipv6-icmp``), conntrack state order, limit units and default
    burst, the default LOG level, long option names and quoting.
    """
    tokens = _split(rule)
    out = []
    proto = None
    matches = set()
    i = 0
    long_names = {"--source": "-s", "--src": "-s", "--destination": "-d", "--dst": "-d",
                  "--protocol": "-p", "--in-interface": "-i", "--out-interface": "-o",
                  "--jump": "-j", "--goto": "-g", "--match": "-m",
                  "--destination-port": "--dport", "--source-port": "--sport",
                  "--destination-ports": "--dports", "--source-ports": "--sports"}
    while i < len(tokens):
        tok = long_names.get(tokens[i], tokens[i])
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if tok == "!" and nxt is not None:
            # "! -s x" and "-s ! x" are stored the same way
            tok2 = long_names.get(nxt, nxt)
            val = tokens[i + 2] if i + 2 < len(tokens) else ""
            if tok2 in ("-s", "-d"):
                out += [tok2, "!" + _addr(val, family)[1]]
            else:
                out += ["!", tok2, val]
            i += 3
            continue
        if tok in ("-s", "-d"):
            neg, addr = _addr(nxt or "", family)
            out += [tok, neg + addr]
            i += 2
            continue
        if tok == "-p":
            value = (nxt or "").lower()
            # iptables-save prints a protocol by name when it knows one (its own table, then
            # /etc/protocols): "-p 112" is saved as "-p vrrp"
            value = {"icmpv6": "ipv6-icmp", "6": "tcp", "17": "udp", "1": "icmp",
                     "58": "ipv6-icmp", "2": "igmp", "47": "gre", "50": "esp", "51": "ah",
                     "112": "vrrp", "132": "sctp", "136": "udplite"}.get(value, value)
            proto = value
            out += ["-p", value]
            i += 2
            continue
        if tok == "-m":
            value = {"icmpv6": "icmp6", "ipv6-icmp": "icmp6", "state": "conntrack"}.get(nxt, nxt)
            matches.add(value)
            out += ["-m", value]
            i += 2
            continue
        if tok in ("--dport", "--sport", "--icmp-type", "--icmpv6-type"):
            implicit = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "ipv6-icmp": "icmp6"}.get(proto)
            if implicit and implicit not in matches:
                matches.add(implicit)
                out += ["-m", implicit]
            value = nxt or ""
            if tok == "--icmp-type":
                value = ICMP_TYPES.get(value, value)
            elif tok == "--icmpv6-type":
                value = ICMP6_TYPES.get(value, value)
            out += [tok, value]
            i += 2
            continue
        if tok in ("--ctstate", "--state"):
            out += ["--ctstate", ",".join(sorted((nxt or "").upper().split(",")))]
            i += 2
            continue
        if tok == "--limit":
            num, unit = ((nxt or "").split("/", 1) + [""])[:2]
            out += ["--limit", "%s/%s" % (num, LIMIT_UNITS.get(unit, unit or "hour"))]
            i += 2
            continue
        if tok == "--limit-burst" and nxt == "5":
            i += 2
            continue
        if tok == "--log-level" and nxt in ("4", "warning", "warn"):
            i += 2
            continue
        out.append(tok)
        i += 1
    # "--state" via "-m state" is stored as conntrack; iptables-save prints it as conntrack.
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# desired state checks
# ---------------------------------------------------------------------------------------------

def check_desired(desired, family, prefix):
    """Validate one family's desired state; return a normalised copy. Names the bad value."""
    if desired is None:
        return None
    if not isinstance(desired, dict):
        raise IptablesError("%s: the desired state must be a dict, got %r" % (family, desired))
    unknown = sorted(set(desired) - {"chains", "policies", "jumps"})
    if unknown:
        raise IptablesError("%s: unknown key(s) %s" % (family, ", ".join(unknown)))
    chains = desired.get("chains") or {}
    policies = desired.get("policies") or {}
    jumps = desired.get("jumps") or {}
    out = {"chains": {}, "policies": {}, "jumps": {}}
    for name, rules in sorted(chains.items()):
        if not CHAIN_RE.match(str(name)) or name in BUILTIN:
            raise IptablesError("%s: invalid chain name %r (not a built-in, 1-29 characters)"
                                % (family, name))
        if prefix and not name.startswith(prefix):
            raise IptablesError("%s: chain %r does not start with the owner prefix %r"
                                % (family, name, prefix))
        if not isinstance(rules, (list, tuple)):
            raise IptablesError("%s: rules of chain %r must be a list" % (family, name))
        clean = []
        seen = {}
        for rule in rules:
            if not isinstance(rule, str) or not rule.strip():
                raise IptablesError("%s: chain %r: empty or non-string rule %r" % (family, name, rule))
            rule = " ".join(rule.split())
            if rule.startswith(("-A ", "-I ", "-D ")):
                raise IptablesError("%s: chain %r: rule %r must not name a command (give only "
                                    "the matches and the target)" % (family, name, rule))
            key = normalise_rule(rule, family)
            if key in seen:
                raise IptablesError("%s: chain %r: duplicate rule %r (same as %r)"
                                    % (family, name, rule, seen[key]))
            seen[key] = rule
            clean.append(rule)
        out["chains"][name] = clean
    for name, policy in sorted(policies.items()):
        if name not in BUILTIN:
            raise IptablesError("%s: policy for %r: only built-in chains %s have a policy"
                                % (family, name, ", ".join(BUILTIN)))
        policy = str(policy).upper()
        if policy not in POLICIES:
            raise IptablesError("%s: policy %r of %s is not one of %s"
                                % (family, policy, name, ", ".join(POLICIES)))
        out["policies"][name] = policy
    for name, targets in sorted(jumps.items()):
        if name not in BUILTIN:
            raise IptablesError("%s: jumps from %r: only built-in chains can jump into owned chains"
                                % (family, name))
        for target in targets or []:
            if target not in out["chains"]:
                raise IptablesError("%s: jump from %s to %r, which is not a desired chain"
                                    % (family, name, target))
        out["jumps"][name] = list(targets or [])
    return out


# ---------------------------------------------------------------------------------------------
# live owned state, diff
# ---------------------------------------------------------------------------------------------

def _is_jump(rule, target, family):
    return normalise_rule(rule, family) == ("-j", target)


def check_patterns(patterns):
    """Validate the foreign-first patterns; return them as a tuple. Names the bad value."""
    if patterns is None:
        return FOREIGN_FIRST
    if isinstance(patterns, str) or not isinstance(patterns, (list, tuple)):
        raise IptablesError("foreign_first must be a list of chain/set name patterns, got %r" % (patterns,))
    for pattern in patterns:
        if not isinstance(pattern, str) or not PATTERN_RE.match(pattern):
            raise IptablesError("foreign_first: invalid pattern %r (1-64 characters of A-Z a-z 0-9 _ . - "
                                "and the wildcards * ?)" % (pattern,))
    return tuple(patterns)


def is_foreign_first(rule, patterns):
    """True when ``rule`` (in a built-in chain) jumps or goes to a chain, or matches an ipset
    set, whose name matches one of ``patterns``."""
    try:
        tokens = shlex.split(rule)
    except ValueError:
        return False
    names = [tokens[i + 1] for i in range(len(tokens) - 1)
             if tokens[i] in ("-j", "--jump", "-g", "--goto", "--match-set")]
    return any(fnmatchcase(name, pattern) for name in names for pattern in patterns)


def _last_foreign(rules, patterns):
    last = -1
    for index, rule in enumerate(rules):
        if is_foreign_first(rule, patterns):
            last = index
    return last


def plan_jumps(name, live, want, targets, patterns, family="ipv4"):
    """Commands that put the jumps of built-in chain ``name`` in place; ``(lines, after)``.

    ``live`` is the chain's rule list as it is, ``want`` the owned chains it must jump to (in
    order), ``targets`` every owned chain name (jumps to the others are removed). ``after`` is
    the rule list the commands leave. Each command's index is computed on the list as the
    preceding commands of the same transaction leave it.
    """
    cur = list(live)
    lines = []

    def first(target):
        for index, rule in enumerate(cur):
            if _is_jump(rule, target, family):
                return index
        return None

    # duplicates and jumps into chains no longer wanted (-D removes the first match)
    for target in sorted(targets):
        count = sum(1 for rule in cur if _is_jump(rule, target, family))
        for _n in range(max(0, count - (1 if target in want else 0))):
            lines.append("-D %s -j %s" % (name, target))
            del cur[first(target)]
    # a jump above a foreign-first rule (the tool inserted its rule at the top after us)
    for target in want:
        index = first(target)
        if index is not None and index < _last_foreign(cur, patterns):
            lines.append("-D %s -j %s" % (name, target))
            del cur[index]
    # missing jumps: right below the last foreign-first rule, in the wanted order
    for target in reversed(want):
        if first(target) is None:
            position = _last_foreign(cur, patterns) + 2
            lines.append("-I %s %d -j %s" % (name, position, target))
            cur.insert(position - 1, "-j %s" % target)
    return lines, cur


def _live_rules(owned, name):
    """The built-in chain's live rules; without them (a state computed, not read) its jumps."""
    live = owned.get("live", {}).get(name)
    if live is not None:
        return live
    counts = owned["jumps"].get(name, {})
    return ["-j %s" % t for t in sorted(counts) for _n in range(counts[t])]


def owned_live(parsed, desired, prefix, family="ipv4"):
    """The part of the live ruleset we own: chains, built-in policies, jump counts, and the
    built-in chains' full rule lists (``live``: where our jumps sit among foreign rules)."""
    chains = parsed["chains"]
    names = set(desired["chains"])
    if prefix:
        names |= set(n for n in chains if n.startswith(prefix) and n not in BUILTIN)
    owned = {"chains": {}, "policies": {}, "jumps": {}, "live": {}}
    for name in sorted(names):
        if name in chains:
            owned["chains"][name] = list(chains[name]["rules"])
    for name in BUILTIN:
        if name in chains:
            owned["policies"][name] = chains[name]["policy"]
            owned["live"][name] = list(chains[name]["rules"])
            counts = {}
            for rule in chains[name]["rules"]:
                for target in names:
                    if _is_jump(rule, target, family):
                        counts[target] = counts.get(target, 0) + 1
            owned["jumps"][name] = counts
    return owned


def _jump_targets(desired, owned):
    targets = set(desired["chains"]) | set(owned["chains"])
    for counts in owned["jumps"].values():
        targets |= set(counts)
    return targets


def differs(desired, owned, family="ipv4", patterns=FOREIGN_FIRST):
    """True when applying ``desired`` would change the live owned state (a jump above a
    foreign-first rule counts as a change: it is moved below)."""
    if set(desired["chains"]) != set(owned["chains"]):
        return True
    for name, rules in desired["chains"].items():
        live = owned["chains"][name]
        if [normalise_rule(r, family) for r in rules] != [normalise_rule(r, family) for r in live]:
            return True
    for name, policy in desired["policies"].items():
        if owned["policies"].get(name, "ACCEPT") != policy:
            return True
    targets = _jump_targets(desired, owned)
    for name in BUILTIN:
        lines, _after = plan_jumps(name, _live_rules(owned, name), desired["jumps"].get(name, []),
                                   targets, patterns, family)
        if lines:
            return True
    return False


def expected_after(desired, owned, family="ipv4", patterns=FOREIGN_FIRST):
    """The owned state (with the built-in chains' rule lists) right after ``desired`` is applied
    on top of the live ``owned`` (the "after" side of the diff)."""
    after = owned_after(desired)
    after["live"] = {}
    targets = _jump_targets(desired, owned)
    for name in BUILTIN:
        if name in owned.get("live", {}):
            after["live"][name] = plan_jumps(name, owned["live"][name], desired["jumps"].get(name, []),
                                             targets, patterns, family)[1]
    return after


def view(state, family, table="filter", patterns=FOREIGN_FIRST):
    """Text of an owned state, one rule per line, as ``iptables-save`` would print it (diffs)."""
    lines = ["# %s %s (owned chains, built-in policies, jumps)" % (family, table)]
    for name in BUILTIN:
        if name in state["policies"] and state["policies"][name]:
            lines.append(":%s %s" % (name, state["policies"][name]))
    for name in BUILTIN:
        live = state.get("live", {}).get(name)
        if live is not None:
            # our jumps and the foreign-first rules, in their order (a move shows)
            ours = set(state["chains"]) | set(state["jumps"].get(name, {}))
            for rule in live:
                if any(_is_jump(rule, t, family) for t in ours) or is_foreign_first(rule, patterns):
                    lines.append("-A %s %s" % (name, " ".join(rule.split())))
            continue
        jumps = state["jumps"].get(name, {})
        if isinstance(jumps, dict):
            targets = [t for t in sorted(jumps) for _n in range(jumps[t])]
        else:
            targets = list(jumps)
        for target in targets:
            lines.append("-A %s -j %s" % (name, target))
    for name in sorted(state["chains"]):
        lines.append(":%s -" % name)
        for rule in state["chains"][name]:
            lines.append("-A %s %s" % (name, rule))
    return "\n".join(lines) + "\n"


def changed_lines(before_text, after_text):
    """Rule-level ``(removed, added)`` lines between two :func:`view` texts (a jump that moves
    below a foreign-first rule counts as removed and added)."""
    before = before_text.splitlines()[1:]
    after = after_text.splitlines()[1:]
    removed = [line for line in before if line not in after]
    added = [line for line in after if line not in before]
    # a jump moved below a foreign-first rule: same lines, another order
    ours = tuple(" -j %s" % n for n in _jumped(before + after))
    common_before = [line for line in before if line in after]
    common_after = [line for line in after if line in before]
    for index, line in enumerate(common_after):
        if line.startswith("-A ") and line.endswith(ours) and common_before.index(line) != index:
            removed.append(line)
            added.append(line)
    return removed, added


def _jumped(lines):
    """Owned chains declared in a view (``:NAME -`` lines)."""
    return [line[1:].split()[0] for line in lines if line.startswith(":") and line.endswith(" -")]


# ---------------------------------------------------------------------------------------------
# render
# ---------------------------------------------------------------------------------------------

def render_transition(desired, owned, family="ipv4", table="filter", patterns=FOREIGN_FIRST):
    """``iptables-restore --noflush`` input that turns the live ``owned`` state into ``desired``.

    One table, one COMMIT: the kernel sees one transaction (one netlink batch with the
    nf_tables backend), so no packet ever meets a half-written chain.
    """
    lines = ["*%s" % table]
    # Declaring a user chain in --noflush mode creates it or flushes it.
    for name in sorted(desired["chains"]):
        lines.append(":%s - [0:0]" % name)
    for name in BUILTIN:
        policy = desired["policies"].get(name)
        if policy and owned["policies"].get(name) != policy:
            lines.append(":%s %s [0:0]" % (name, policy))
    for name in sorted(desired["chains"]):
        for rule in desired["chains"][name]:
            lines.append("-A %s %s" % (name, rule))
    stale = sorted(set(owned["chains"]) - set(desired["chains"]))
    targets = _jump_targets(desired, owned)
    for name in BUILTIN:
        lines += plan_jumps(name, _live_rules(owned, name), desired["jumps"].get(name, []),
                            targets, patterns, family)[0]
    for name in stale:
        lines.append("-F %s" % name)
    for name in stale:
        lines.append("-X %s" % name)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def render_boot(desired, table="filter"):
    """The persisted file: chains, rules and policies (jumps are ``-I`` lines a loader adds once)."""
    lines = ["# hardened.stack firewall: loaded with --noflush by hardened-stack-firewall.service",
             "*%s" % table]
    for name in sorted(desired["chains"]):
        lines.append(":%s - [0:0]" % name)
    for name in BUILTIN:
        if desired["policies"].get(name):
            lines.append(":%s %s [0:0]" % (name, desired["policies"][name]))
    for name in sorted(desired["chains"]):
        for rule in desired["chains"][name]:
            lines.append("-A %s %s" % (name, rule))
    for name in BUILTIN:
        for target in reversed(desired["jumps"].get(name, [])):
            lines.append("-I %s 1 -j %s" % (name, target))
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def state_from_owned(owned):
    """Turn a live owned state into a desired state (what a rollback restores)."""
    jumps = {}
    for name, counts in owned["jumps"].items():
        targets = [t for t in sorted(counts) if counts[t]]
        if targets:
            jumps[name] = targets
    return {"chains": dict((n, list(r)) for n, r in owned["chains"].items()),
            "policies": dict((n, p) for n, p in owned["policies"].items() if p),
            "jumps": jumps}


def owned_after(desired):
    """The owned state right after ``desired`` is applied (input for the rollback transition)."""
    return {"chains": dict((n, list(r)) for n, r in desired["chains"].items()),
            "policies": dict(desired["policies"]),
            "jumps": dict((n, dict((t, 1) for t in ts)) for n, ts in desired["jumps"].items())}


def render_rollback(previous_owned, desired, family="ipv4", table="filter", patterns=FOREIGN_FIRST):
    """Transition from ``desired`` (just applied) back to the ``previous_owned`` live state.

    Built-in policies that ``desired`` changed go back to their previous value; chains
    ``desired`` created and the previous state did not have are removed.
    """
    target = state_from_owned(previous_owned)
    for name in desired["policies"]:
        target["policies"].setdefault(name, previous_owned["policies"].get(name) or "ACCEPT")
    after = expected_after(desired, previous_owned, family, patterns)
    # chains the previous state did not have must be treated as stale by the transition
    return render_transition(target, after, family, table, patterns)
