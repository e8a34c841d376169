"""Command line of the lab: ``python -m lab COMMAND``.

engine            install/start the container engine (Debian: docker.io + dockerd)
images            build the Debian 12/13 systemd base images (cached; --rebuild)
up -i INV         create the hosts of an inventory (lab_image, ansible_host) and wait for SSH
down -i INV       remove them (apt downloads are kept in the host cache)
report -i INV     print hosts, groups, endpoints and health
molecule-create   used by molecule/_shared/create.yml
molecule-destroy  used by molecule/_shared/destroy.yml
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from . import docs, engine, hosts, images, report

LAB_LABEL = "lab"
LAB_NETWORK = "hardened-stack-lab"


def inventory_hosts(inventory: str) -> tuple[list[dict], dict]:
    """Hosts of an Ansible inventory, as lab host specs (uses ansible-inventory)."""
    res = subprocess.run(["ansible-inventory", "-i", inventory, "--list"], text=True,
                         capture_output=True, check=False)
    if res.returncode != 0:
        raise engine.LabError(f"ansible-inventory failed: {res.stderr.strip()}")
    data = json.loads(res.stdout)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    specs = []
    for name in sorted(hostvars):
        hv = hostvars[name]
        if "ansible_host" not in hv:
            raise engine.LabError(f"lab host {name} has no ansible_host (its fixed address)")
        specs.append({"name": name, "address": hv["ansible_host"],
                      "image": hv.get("lab_image", "debian12")})
    return specs, data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("engine")
    pi = sub.add_parser("images")
    pi.add_argument("--rebuild", action="store_true")
    pi.add_argument("names", nargs="*")
    for name in ("up", "down", "report"):
        sp = sub.add_parser(name)
        sp.add_argument("-i", "--inventory", default="inventories/lab")
    mc = sub.add_parser("molecule-create")
    mc.add_argument("--platforms", required=True, help="JSON list of {name, image, address}")
    mc.add_argument("--label", required=True)
    mc.add_argument("--network", required=True)
    mc.add_argument("--out", required=True, help="where to write the instance configs (JSON)")
    dc = sub.add_parser("docs", help="rewrite README.md's generated sections (port map, variables)")
    dc.add_argument("--check", action="store_true", help="exit 1 when README.md is out of date")
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
            specs = inventory_hosts(args.inventory)[0]
            for inst in hosts.create(specs, LAB_NETWORK, LAB_LABEL):
                print(f"{inst['instance']:10} {inst['address']:15} {inst['image']}")
        elif args.cmd == "down":
            hosts.destroy(LAB_LABEL, LAB_NETWORK)
        elif args.cmd == "report":
            specs, data = inventory_hosts(args.inventory)
            for spec in specs:
                hosts.harvest_cache(spec["image"], spec["name"], remove=False)
            return report.print_report(specs, data)
        elif args.cmd == "molecule-create":
            engine.raise_inotify_limits()
            platforms = json.loads(args.platforms)
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
