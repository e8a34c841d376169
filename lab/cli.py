"""Command line of the lab: ``python -m lab COMMAND``.

engine            install/start the container engine (Debian: docker.io + dockerd)
images            build the Debian 12/13 systemd base images (cached; --rebuild)
up -i INV         create the hosts of an inventory and wait for SSH: each on a management
                  network (lab_management_address; Ansible connects to ansible_host, its name
                  <host>.mgmt.hslab) and a cluster network (hardened_stack_address);
                  --ipv6 makes the cluster network dual-stack (see lab/network.py)
down -i INV       remove them, their networks and their /etc/hosts names (apt downloads are
                  kept in the host cache)
report -i INV     print hosts, groups, endpoints and health
exposure -i INV   what answers from outside the stack (nmap from a container on each network,
                  in no inventory group) and between members (every host to every other),
                  against the port map and the firewall's rules; exit 1 on a hole (lab/exposure.py)
job-scoped -i INV the job-scoped recipe of docs/secrets.md, run as written against a converged
                  lab (every secret from an AWX-style credential, the CA from files, directories
                  of one job): exit 0, nothing changed, nothing left (lab/jobscoped.py)
leaks -i INV      no secret in `site.yml -v --check --diff` (which must change nothing) or in any
                  host's process list; exit 1 otherwise (lab/leaks.py)
molecule-create   used by molecule/_shared/create.yml
molecule-destroy  used by molecule/_shared/destroy.yml
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from . import docs, engine, exposure, hosts, images, jobscoped, leaks, network, report

LAB_LABEL = "lab"
LAB_NETWORK = "hardened-stack-lab"


def inventory_hosts(inventory: str, ipv6: bool = False) -> tuple[list[dict], dict]:
    """Hosts of an Ansible inventory, as lab host specs (uses ansible-inventory).

    Per host: ``lab_management_address`` (the management IPv4; or ``ansible_host`` when that is
    an IP literal), ``ansible_host`` (the management name Ansible connects to),
    ``hardened_stack_address`` (the cluster address(es), IP literals) and ``lab_image``."""
    res = subprocess.run(["ansible-inventory", "-i", inventory, "--list"], text=True,
                         capture_output=True, check=False)
    if res.returncode != 0:
        raise engine.LabError(f"ansible-inventory failed: {res.stderr.strip()}")
    data = json.loads(res.stdout)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    specs = []
    for name in sorted(hostvars):
        hv = hostvars[name]
        target = hv.get("ansible_host")
        is_ip = target is not None and network.ip_literals_or_none(target)
        mgmt = hv.get("lab_management_address", target if is_ip else None)
        if mgmt is None:
            raise engine.LabError(f"lab host {name} has no lab_management_address (its fixed management IPv4)")
        if "hardened_stack_address" not in hv:
            raise engine.LabError(f"lab host {name} has no hardened_stack_address (its fixed cluster address)")
        specs.append(network.host_spec(name, hv.get("lab_image", "debian12"), mgmt,
                                       hv["hardened_stack_address"],
                                       mgmt_name=None if (target is None or is_ip) else str(target),
                                       ipv6=ipv6))
    return specs, data


def platform_hosts(platforms: list[dict]) -> list[dict]:
    """Molecule platforms ({name, image, address, cluster_address}) as lab host specs."""
    specs = []
    for platform in platforms:
        name = platform["name"]
        if "cluster_address" not in platform:
            raise engine.LabError(f"platform {name} has no cluster_address")
        specs.append(network.host_spec(name, platform.get("image", "debian12"), platform["address"],
                                       platform["cluster_address"]))
    return specs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("engine")
    pi = sub.add_parser("images")
    pi.add_argument("--rebuild", action="store_true")
    pi.add_argument("names", nargs="*")
    for name in ("up", "down", "report", "exposure", "leaks", "job-scoped"):
        sp = sub.add_parser(name)
        sp.add_argument("-i", "--inventory", default="inventories/lab")
        if name == "up":
            sp.add_argument("--ipv6", action="store_true",
                            help="dual-stack cluster network: a host without an IPv6 cluster address "
                                 "gets fd00:A:B:C::D for its A.B.C.D")
    mc = sub.add_parser("molecule-create")
    mc.add_argument("--platforms", required=True, help="JSON list of {name, image, address, cluster_address}")
    mc.add_argument("--label", required=True)
    mc.add_argument("--network", required=True)
    mc.add_argument("--out", required=True, help="where to write the instance configs (JSON)")
    dc = sub.add_parser("docs", help="rewrite the generated sections of README.md (port map, variables) "
                        "and docs/secrets.md (secrets layout)")
    dc.add_argument("--check", action="store_true", help="exit 1 when a generated section is out of date")
    md = sub.add_parser("molecule-destroy")
    md.add_argument("--label", required=True)
    md.add_argument("--network", required=True)
    args = p.parse_args(argv)
    try:
        if args.cmd == "engine":
            engine.ensure_engine()
        elif args.cmd == "images":
            engine.ensure_engine()
            images.build_all(args.names or None, rebuild=args.rebuild)
        elif args.cmd == "up":
            engine.raise_inotify_limits()
            specs = inventory_hosts(args.inventory, ipv6=args.ipv6)[0]
            hosts.create(specs, LAB_NETWORK, LAB_LABEL)
            for spec in specs:
                print(f"{spec['name']:8} {spec['mgmt_name']:20} {spec['address']:14} "
                      f"{' '.join(spec['cluster']):32} {spec['image']}")
        elif args.cmd == "down":
            hosts.destroy(LAB_LABEL, LAB_NETWORK)
        elif args.cmd == "report":
            specs, data = inventory_hosts(args.inventory)
            for spec in specs:
                hosts.harvest_cache(spec["image"], spec["name"], remove=False)
            return report.print_report(specs, data, args.inventory)
        elif args.cmd == "exposure":
            specs, data = inventory_hosts(args.inventory)
            return exposure.run(specs, data, args.inventory, LAB_NETWORK)
        elif args.cmd == "leaks":
            specs = inventory_hosts(args.inventory)[0]
            return leaks.run(specs, args.inventory)
        elif args.cmd == "job-scoped":
            try:
                return jobscoped.run(args.inventory)
            except jobscoped.RecipeError as exc:
                print(f"lab: job-scoped: {exc}", file=sys.stderr)
                return 1
        elif args.cmd == "molecule-create":
            engine.raise_inotify_limits()
            platforms = platform_hosts(json.loads(args.platforms))
            instances = hosts.create(platforms, args.network, args.label)
            with open(args.out, "w", encoding="utf-8") as fh:
                json.dump(instances, fh)
        elif args.cmd == "docs":
            return docs.main(check=args.check)
        elif args.cmd == "molecule-destroy":
            hosts.destroy(args.label, args.network)
    except engine.LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1
    return 0
