"""What answers on the lab's networks, against what the port map says should (issue 15).

``python -m lab exposure -i INV`` (``make lab-exposure``) probes the running lab twice:

1. **Outsiders**: one container on the management network and one on the cluster network,
   in no inventory group (``hslab-outsider-mgmt``, ``hslab-outsider-cluster``; created once,
   labelled like the lab hosts so ``lab down`` removes them, nmap installed through the
   management network since the cluster network has no route out). Each runs an nmap TCP
   connect scan of every lab address on its own network: every port of the port map, 22 and
   a few ports the stack never uses (:data:`CONTROLS`).
2. **Members**: from every lab host (``docker exec``, bash ``/dev/tcp`` under ``timeout``;
   nothing is installed on the hosts), every other host's cluster address(es) and management
   address on the same ports.

The expectation is computed here, from the collection's own code: the port map (defaults
merged with the inventory's ``_common_port_map_overrides``, ``port_map.validate``), the
address model (``address.cluster_addresses``) and the firewall's rules
(``firewall_rules.compute`` with each host's ``firewall_*`` options, read through Ansible so
templated values are rendered; ``firewall_rules.admits``). For one probe (source address ->
target address:port):

* ``blocked``: the target's firewall does not admit the source: no answer at all (nmap
  ``filtered``, a probe timeout). An answer, even a refusal (``closed``: the kernel's RST
  means the firewall let the SYN in), is a **hole**.
* ``open``: admitted, and the port map says the target runs the service (its ``listen``
  groups) on its cluster address: it should accept. A refusal is listed under "admitted but
  nothing listens" (a feature not enabled, a service down); no answer under "expected but
  filtered" (the firewall is stricter than the map). Neither is a hole.
* ``may``: admitted, but nothing is promised: a management address (services bind the
  cluster address; sshd and nginx may answer there too), or a port the map does not run on
  the target (a ``firewall_extra_rules`` entry).

The command exits 1 when there is a hole, else 0.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

from . import collection, engine, hosts, network, report, variables
from .platform import IMAGES, LABEL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Ports no service of the stack uses: anything answering there is a hole by construction.
CONTROLS = (21, 23, 25, 3306, 8080, 11211)
OUTSIDER_IMAGE = "debian12"
OUTSIDERS = {"management": "hslab-outsider-mgmt", "cluster": "hslab-outsider-cluster"}
PROBE_TIMEOUT = 3
# A flow the map expects that got no answer is probed again, alone and with more time, before
# it is reported (a first pass runs thousands of probes at once).
RETRY_TIMEOUT = 6
# Port map services no role deploys yet: their port is admitted, nothing listens behind it.
RESERVED = {"pgbouncer": "reserved in the port map, no role deploys PgBouncer yet"}
# Options of firewall_rules.compute and the inventory variables they come from (unset ->
# the module's DEFAULTS, which are the firewall role's defaults).
FIREWALL_OPTIONS = ("ssh_allow", "extra_rules", "input_policy")


def _collection():
    """The collection's address, firewall_rules and port_map module_utils."""
    return (collection.module_utils("address"), collection.module_utils("firewall_rules"),
            collection.module_utils("port_map"))


# --- the expectation (pure) ------------------------------------------------------------------

def groups_of(data: dict) -> dict[str, list[str]]:
    """Ansible's ``groups`` (group -> every host in it or its children; ``all``, ``ungrouped``)
    from ``ansible-inventory --list``."""
    out: dict[str, list[str]] = {}

    def walk(group: str, stack: tuple[str, ...] = ()) -> set[str]:
        if group in stack:
            return set()
        node = data.get(group, {})
        found = set(node.get("hosts", []))
        for child in node.get("children", []):
            found |= walk(child, stack + (group,))
        out[group] = sorted(found)
        return found

    walk("all")
    out.setdefault("ungrouped", [])
    out["all"] = sorted(set(out["all"]) | set(data.get("_meta", {}).get("hostvars", {})))
    return out


def _merge(base: dict, override: dict) -> dict:
    """``combine(recursive=True)``, as roles/_common/defaults/main.yml merges the overrides."""
    out = dict(base)
    for key, value in (override or {}).items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def effective_port_map(defaults: dict, overrides: dict, groups: dict) -> dict:
    """The port map a host's roles read: defaults + overrides, validated (port_map.validate)."""
    pm = _collection()[2]
    return pm.validate(_merge(defaults, overrides or {}), groups)


def rulesets(port_maps: dict, groups: dict, hostvars: dict, options: dict) -> dict:
    """``{host: firewall_rules.compute(...)}``: each host's desired firewall, as the firewall
    role computes it (addresses from the address model)."""
    am, fr, _pm = _collection()
    addresses = {h: fr.by_family(am.cluster_addresses(h, hostvars)) for h in groups["all"]}
    return {h: fr.compute(port_maps[h], h, groups, addresses, options.get(h) or {}) for h in groups["all"]}


def listens(port_map: dict, groups: dict, host: str, port: int) -> list[str]:
    """Services of the port map that run on ``host`` on TCP ``port`` (its ``listen`` groups)."""
    pm = _collection()[2]
    return [name for name, entry in sorted(port_map.items())
            if entry["protocol"] == "tcp" and entry["port"] == port
            and host in pm.hosts_of(groups, entry["listen"])]


def expectation(port_map: dict, groups: dict, ruleset: dict, *, target: str, source: str, port: int,
                cluster: bool = True) -> str:
    """``open`` | ``may`` | ``blocked`` for a new TCP connection from address ``source`` to
    ``port`` on ``target`` (its cluster address when ``cluster``, else its management address);
    ``ruleset`` is the target's :func:`rulesets` entry. See the module doc."""
    fr = _collection()[1]
    if not fr.admits(ruleset, source, port, "tcp"):
        return "blocked"
    return "open" if cluster and listens(port_map, groups, target, port) else "may"


def classify(expected: str, observed: str) -> str:
    """``ok`` | ``hole`` | ``idle`` (admitted, refused: nothing listens) | ``filtered``
    (expected to answer, no answer) for an expectation and an observed state (``open``,
    ``closed`` = refused, ``filtered`` = no answer)."""
    if expected == "blocked":
        return "ok" if observed == "filtered" else "hole"
    if expected == "open" and observed != "open":
        return "idle" if observed == "closed" else "filtered"
    return "ok"


def scan_ports(port_map: dict) -> list[int]:
    """Every TCP port of the port map, 22 and the controls, sorted."""
    return sorted({e["port"] for e in port_map.values() if e["protocol"] == "tcp"} | {22} | set(CONTROLS))


def same_network(address: str, candidates: list[str], nets: list) -> str | None:
    """The address among ``candidates`` on the same network (of ``nets``) as ``address``: the
    source the kernel uses to reach it from a host holding ``candidates``."""
    ip = ipaddress.ip_address(address)
    net = next((n for n in nets if n is not None and ip.version == n.version and ip in n), None)
    if net is None:
        return None
    return next((c for c in candidates if ipaddress.ip_address(c) in net), None)


# --- the inventory -----------------------------------------------------------------------------

def firewall_options(inventory: str) -> dict[str, dict]:
    """Per host: the ``firewall_rules.compute`` options and ``_common_port_map_overrides``,
    rendered by Ansible (the lab's ``firewall_ssh_allow`` is a template). No host is contacted:
    ``debug`` runs on the controller (lab/variables.py)."""
    expr = {key: "{{ firewall_%s | default(none) }}" % key for key in FIREWALL_OPTIONS}
    expr["overrides"] = "{{ _common_port_map_overrides | default({}) }}"
    try:
        out = variables.render(inventory, expr)
    except variables.RenderError as exc:
        raise engine.LabError(f"reading the firewall variables failed: {exc}") from exc
    if not out:
        raise engine.LabError(f"reading the firewall variables failed: no host in {inventory}")
    return out


def plan(specs: list[dict], data: dict, options: dict[str, dict]) -> dict:
    """Everything the probes are compared with: groups, per-host port map and ruleset, the
    address model's cluster addresses, the networks and the ports to scan."""
    am = _collection()[0]
    groups = groups_of(data)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    defaults = report.port_map()
    maps = {h: effective_port_map(defaults, (options.get(h) or {}).get("overrides") or {}, groups)
            for h in groups["all"]}
    fw = {h: {k: v for k, v in (options.get(h) or {}).items() if k in FIREWALL_OPTIONS and v is not None}
          for h in groups["all"]}
    nets = network.subnets(specs)
    return {"groups": groups, "maps": maps, "rules": rulesets(maps, groups, hostvars, fw),
            "cluster": {s["name"]: am.cluster_addresses(s["name"], hostvars) for s in specs},
            "mgmt": {s["name"]: s["address"] for s in specs},
            "nets": [nets["management"], nets["cluster_v4"], nets["cluster_v6"]],
            "ports": sorted(set().union(*(scan_ports(m) for m in maps.values())))}


def targets(p: dict) -> list[tuple[str, str, bool]]:
    """(host, address, is_cluster) of every lab address: management, then cluster ones."""
    out = [(h, a, False) for h, a in sorted(p["mgmt"].items())]
    out += [(h, a, True) for h, addrs in sorted(p["cluster"].items()) for a in addrs]
    return out


# --- outsiders (nmap) ----------------------------------------------------------------------------

def _docker_ips(net: str) -> set[str]:
    res = engine.run(["docker", "network", "inspect", net], capture=True, quiet=True)
    out = set()
    for c in (json.loads(res.stdout)[0].get("Containers") or {}).values():
        for key in ("IPv4Address", "IPv6Address"):
            if c.get(key):
                out.add(c[key].split("/")[0])
    return out


def free_address(subnet, taken: set[str]) -> str:
    """The highest address of ``subnet`` nobody holds (lab hosts take low fixed addresses)."""
    for ip in reversed(list(subnet.hosts())[1:]):
        if str(ip) not in taken:
            return str(ip)
    raise engine.LabError(f"no free address in {subnet}")


def _outsider_address(name: str, net: str) -> str | None:
    res = engine.run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", name],
                     check=False, capture=True, quiet=True)
    if res.returncode != 0:
        return None
    return (json.loads(res.stdout).get(net) or {}).get("IPAddress") or None


def ensure_outsider(name: str, net: str, subnet, mgmt_net: str, taken: set[str]) -> str:
    """A running container on ``net`` only, in no inventory group, with nmap; its address.
    Created once (labelled as a lab container: ``lab down`` removes it); nmap comes over the
    management network, which a cluster-side outsider leaves afterwards."""
    if hosts.container_state(name) == "running":
        addr = _outsider_address(name, net)
        nets = json.loads(engine.run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", name],
                                     capture=True, quiet=True).stdout)
        if addr and set(nets) == {net} and hosts._exec(name, "command -v nmap").returncode == 0:
            return addr
    if hosts.container_state(name) is not None:
        engine.run(["docker", "rm", "-f", name], capture=True)
    addr = free_address(subnet, taken | _docker_ips(net))
    cache = hosts._seed_cache(OUTSIDER_IMAGE, name)
    first = ["--network", mgmt_net] + (["--ip", addr] if net == mgmt_net else [])
    engine.run(["docker", "run", "-d", "--name", name, "--hostname", name, "--label", f"{LABEL}=lab",
                "--label", f"hslab.image={OUTSIDER_IMAGE}", *first,
                "--volume", f"{cache}:/var/cache/apt/archives", IMAGES[OUTSIDER_IMAGE]["tag"],
                "sleep", "infinity"], capture=True)
    res = hosts._exec(name, "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "
                            "apt-get install -y -q --no-install-recommends nmap >/dev/null")
    if res.returncode != 0:
        raise engine.LabError(f"{name}: installing nmap failed: {res.stderr.strip()[-1000:]}")
    hosts.harvest_cache(OUTSIDER_IMAGE, name, remove=False)
    if net != mgmt_net:
        engine.run(["docker", "network", "connect", "--ip" if ":" not in addr else "--ip6", addr, net, name],
                   capture=True)
        engine.run(["docker", "network", "disconnect", mgmt_net, name], capture=True)
    return addr


def parse_nmap(xml_text: str) -> dict[str, dict[int, str]]:
    """``{address: {port: open|closed|filtered}}`` of nmap's XML (``-oX -``);
    ``open|filtered`` and ``unfiltered`` are reported as they are."""
    out: dict[str, dict[int, str]] = {}
    # nmap's own output, from a container this command runs.
    for host in ET.fromstring(xml_text).iter("host"):  # noqa: S314
        addr = next((a.get("addr") for a in host.iter("address") if a.get("addrtype") in ("ipv4", "ipv6")), None)
        states = out.setdefault(str(addr), {})
        for port in host.iter("port"):
            states[int(port.get("portid"))] = port.find("state").get("state")
    return out


def nmap(name: str, addresses: list[str], ports: list[int]) -> dict[str, dict[int, str]]:
    v6 = [a for a in addresses if ":" in a]
    out = {}
    for group, flag in (([a for a in addresses if ":" not in a], []), (v6, ["-6"])):
        if not group:
            continue
        cmd = ["nmap", "-Pn", "-sT", "-n", "--max-retries", "1", *flag, "-p", ",".join(map(str, ports)),
               "-oX", "-", *group]
        res = engine.run(["docker", "exec", name, *cmd], check=False, capture=True, quiet=True)
        if res.returncode != 0:
            raise engine.LabError(f"{name}: nmap failed: {res.stderr.strip()}")
        out.update(parse_nmap(res.stdout))
    return out


# --- members (bash /dev/tcp) ---------------------------------------------------------------------

# One background subshell per probe (a fork, no new program: a loaded host starts them all in
# well under a second), each printing "ADDRESS PORT RC ERROR" when connect() returns; those
# still waiting when the deadline ($1 seconds) passes got no answer and are killed.
MEMBER_PROBE = """deadline=$1 tmp=$(mktemp -d)
while read -r a p; do
  ( exec 2>"$tmp/$a-$p"
    if exec 3<>"/dev/tcp/$a/$p"; then echo "$a $p 0"; else err=$(<"$tmp/$a-$p"); echo "$a $p 1 ${err##*: }"; fi ) &
done
sleep "$deadline"
kill $(jobs -p) 2>/dev/null
wait 2>/dev/null
rm -rf "$tmp"
"""


def member_probe(name: str, probes: list[tuple[str, int]], deadline: int = PROBE_TIMEOUT) -> dict[tuple[str, int], str]:
    """``{(address, port): open|closed|filtered}`` from lab host ``name`` (bash ``/dev/tcp``):
    connected, refused, or no answer within ``deadline`` seconds (another error, e.g. no
    route, counts as no answer)."""
    stdin = "".join(f"{a} {p}\n" for a, p in probes)
    res = engine.run(["docker", "exec", "-i", name, "bash", "-c", MEMBER_PROBE, "probe", str(deadline)],
                     capture=True, input_text=stdin, quiet=True, check=False)
    if res.returncode not in (0, 1) and not res.stdout:
        raise engine.LabError(f"{name}: the probes did not run ({res.stderr.strip()[-500:]})")
    out = {pr: "filtered" for pr in probes}
    for line in res.stdout.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 3 or not parts[1].isdigit():
            continue
        err = parts[3] if len(parts) > 3 else ""
        out[(parts[0], int(parts[1]))] = ("open" if parts[2] == "0" else
                                          "closed" if "refused" in err.lower() else "filtered")
    return out


# --- the report ----------------------------------------------------------------------------------

def _ports(ports) -> str:
    return ",".join(str(p) for p in sorted(ports)) or "-"


def _services(p: dict, host: str, port: int) -> str:
    names = listens(p["maps"][host], p["groups"], host, port)
    return "/".join(names) if names else ("control" if port in CONTROLS else "not run here")


def run(specs: list[dict], data: dict, inventory: str, mgmt_net: str) -> int:
    start = time.time()
    p = plan(specs, data, firewall_options(inventory))
    nets = {"management": (mgmt_net, p["nets"][0]), "cluster": (network.cluster_network(mgmt_net), p["nets"][1])}
    taken = {a for s in specs for a in [s["address"], *s["cluster"]]}
    findings: list[tuple[str, str, str, str, int, str]] = []   # (kind, source, target, address, port, observed)
    n_probes = n_targets = 0

    print(f"== outsiders (in no inventory group), nmap -sT of {len(p['ports'])} ports: {_ports(p['ports'])}")
    print(f"   (controls, used by no service: {_ports(CONTROLS)})")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {side: pool.submit(ensure_outsider, OUTSIDERS[side], net, subnet, mgmt_net, taken)
                   for side, (net, subnet) in nets.items()}
        outs = {side: fut.result() for side, fut in futures.items()}
    scans = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = {}
        for side, (_net, subnet) in nets.items():
            addrs = [a for _h, a, _c in targets(p) if ipaddress.ip_address(a) in subnet]
            jobs[side] = (addrs, pool.submit(nmap, OUTSIDERS[side], addrs, p["ports"]))
        for side, (addrs, fut) in jobs.items():
            scans[side] = (addrs, fut.result())
    for side in nets:
        addrs, result = scans[side]
        print(f"-- {OUTSIDERS[side]} ({outs[side]}, {side} network)")
        for host, addr, cluster in targets(p):
            if addr not in addrs:
                continue
            n_targets += 1
            states = result.get(addr, {})
            seen = {"open": [], "closed": [], "filtered": []}
            for port in p["ports"]:
                state = states.get(port, "filtered")
                n_probes += 1
                seen.setdefault(state, []).append(port)
                exp = expectation(p["maps"][host], p["groups"], p["rules"][host], target=host, source=outs[side],
                                  port=port, cluster=cluster)
                kind = classify(exp, state if state in ("open", "closed") else "filtered")
                if kind != "ok":
                    findings.append((kind, OUTSIDERS[side], host, addr, port, state))
            extra = "".join(f"  {k}: {_ports(v)}" for k, v in seen.items()
                            if k not in ("open", "closed", "filtered") and v)
            closed = f" ({_ports(seen['closed'])})" if seen["closed"] else ""
            print(f"   {host:7} {addr:15} open: {_ports(seen['open']):12} filtered: {len(seen['filtered']):2}  "
                  f"closed: {len(seen['closed'])}{closed}{extra}")

    print()
    print(f"== members: each lab host to every other host's addresses, bash /dev/tcp "
          f"(no answer within {PROBE_TIMEOUT} s = filtered)")
    names = [s["name"] for s in specs]
    all_targets = targets(p)

    def expect(meta_entry, port):
        host, cluster, source = meta_entry
        return expectation(p["maps"][host], p["groups"], p["rules"][host], target=host, source=source,
                           port=port, cluster=cluster)

    def member(src: str):
        own = [p["mgmt"][src], *p["cluster"][src]]
        probes, meta = [], {}
        for host, addr, cluster in all_targets:
            source = same_network(addr, own, p["nets"])
            if host == src or source is None:
                continue
            for port in p["ports"]:
                probes.append((addr, port))
                meta[(addr, port)] = (host, cluster, source)
        observed = member_probe(src, probes)
        again = [pr for pr, state in observed.items() if state == "filtered" and expect(meta[pr], pr[1]) != "blocked"]
        if again:
            observed.update(member_probe(src, again, RETRY_TIMEOUT))
        return src, meta, observed, len(again)

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        results = list(pool.map(member, names))
    n_pairs = n_retried = 0
    for src, meta, observed, retried in results:
        n_retried += retried
        counts = {side: {"open": 0, "expected": 0, "hole": 0, "n": 0} for side in ("cluster", "mgmt")}
        for (addr, port), state in sorted(observed.items()):
            host, cluster, _source = meta[(addr, port)]
            exp = expect(meta[(addr, port)], port)
            kind = classify(exp, state)
            c = counts["cluster" if cluster else "mgmt"]
            c["n"] += 1
            c["open"] += state == "open"
            c["expected"] += exp == "open"
            c["hole"] += kind == "hole"
            n_probes += 1
            if kind != "ok":
                findings.append((kind, src, host, addr, port, state))
        n_pairs += len({addr for addr, _port in observed})
        cl, mg = counts["cluster"], counts["mgmt"]
        print(f"   {src:7} cluster: {cl['open']:2} open of {cl['n']} probes ({cl['expected']:2} on the map), "
              f"{cl['hole']} hole(s) | management: {mg['open']} open of {mg['n']}, {mg['hole']} hole(s)")
    if n_retried:
        print(f"   ({n_retried} admitted probe(s) without an answer were probed again, {RETRY_TIMEOUT} s each)")

    holes = [f for f in findings if f[0] == "hole"]
    print()
    titles = {"hole": "HOLES (answered although the firewall should not admit the source)",
              "filtered": "expected but filtered (the port map's flow gets no answer)",
              "idle": "admitted but nothing listens (refused: the service is not running there)"}
    for kind in ("hole", "filtered", "idle"):
        rows = [f for f in findings if f[0] == kind]
        print(f"{titles[kind]}: {len(rows) or 'none'}")
        if kind == "idle":
            by: dict[tuple[str, int, str], list[str]] = {}
            for _k, src, host, _addr, port, _state in rows:
                by.setdefault((host, port, _services(p, host, port)), []).append(src)
            bound = {h: listening(h) for h in sorted({h for h, _p, _s in by})}
            for (host, port, svc), srcs in sorted(by.items()):
                where = sorted(a for a, lp in bound[host] if lp == port)
                note = f"bound to {', '.join(where)} only" if where else "nothing listens on the host"
                note += "".join(f"; {name}: {why}" for name, why in RESERVED.items() if name in svc.split("/"))
                print(f"   {host}:{port} {svc}: refused to {len(srcs)} admitted source(s) ({note})")
            continue
        for _k, src, host, addr, port, state in sorted(rows, key=lambda r: (r[2], r[4], r[1])):
            print(f"   {src} -> {host} {network_label(addr, p)} {addr}:{port} ({_services(p, host, port)}): {state}")
    elapsed = time.time() - start
    print()
    print(f"targets: {n_targets} addresses scanned by the outsiders, {n_pairs} (member, address) pairs  "
          f"probes: {n_probes}  seconds: {elapsed:.0f}")
    print("verdict: " + (f"FAIL, {len(holes)} hole(s)" if holes else
                         "OK: outsiders see only 80/443 on the load balancers; members see only the port map's flows"))
    return 1 if holes else 0


def listening(name: str) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets lab host ``name`` listens on (``ss``), to say why a
    port refused."""
    res = engine.run(["docker", "exec", name, "ss", "-Hltn"], capture=True, quiet=True, check=False)
    out = set()
    for line in res.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3].rsplit(":", 1)[-1].isdigit():
            addr, port = fields[3].rsplit(":", 1)
            out.add((addr, int(port)))
    return out


def network_label(addr: str, p: dict) -> str:
    return "mgmt" if ipaddress.ip_address(addr) in p["nets"][0] else "cluster"
