"""Where the benches find addresses: the one source each setup has (issue 15, docs/addresses.md).

Services listen on, and are dialled at, a host's *cluster address*; SSH goes to its management
side. No bench states an address of its own:

* a Molecule scenario: its molecule.yml, read through molecule/_shared/verifier.py (what the
  verifiers use): ``scenario()`` returns that module, e.g.
  ``verifier.cluster_address("pg-1", "postgres")``, ``verifier.url("https", a, 8008, "/cluster")``;
* the lab (or any inventory): ``Inventory(path)`` reads ``ansible-inventory --list`` and asks the
  collection's own address module (lab/collection.py) for a host's cluster address; SSH goes to
  the host's ``ansible_host`` (in the lab the management name ``<host>.mgmt.hslab``).

Ports come from the port map (roles/_common/defaults/main.yml, plus an inventory's
``_common_port_map_overrides``). IPv6 literals are bracketed in ``host:port`` and URLs; libpq
``host=`` and redis-py take them bare (``split_endpoint``).

For the shell benches (bench/read_spread):

    python bench/addresses.py endpoint SERVICE [-i INVENTORY]   host:port of SERVICE as the roles dial it, on
                                                                the first host that listens for it (stack.endpoints)
    python bench/addresses.py ssh GROUP|HOST [-i INVENTORY]     management name of the host (of
                                                                the group's first host)
    python bench/addresses.py db-password ROLE [-i INVENTORY]   PostgreSQL ROLE's password on
                                                                stdout (pipe it, never an argument)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if PROJECT not in sys.path:
    sys.path.insert(0, PROJECT)
from lab import collection, variables  # noqa: E402  (the collection's module_utils, Ansible's rendering)
from lab.report import port_map as port_map_defaults  # noqa: E402  (the port map's defaults, one reader)

LAB_INVENTORY = os.path.join(PROJECT, "inventories", "lab")


def scenario():
    """molecule/_shared/verifier.py: the scenario's hosts and their two addresses (molecule.yml)."""
    shared = os.path.join(PROJECT, "molecule", "_shared")
    if shared not in sys.path:
        sys.path.insert(0, shared)
    import verifier  # noqa: PLC0415

    return verifier


def port(service: str, overrides: dict | None = None) -> int:
    """The port map's port of ``service``."""
    entry = dict(port_map_defaults().get(service) or {})
    entry.update((overrides or {}).get(service) or {})
    if "port" not in entry:
        raise SystemExit(f"the port map has no service {service!r}")
    return int(entry["port"])


def address_module():
    """The collection's plugins/module_utils/address.py (through lab/collection.py)."""
    return collection.module_utils("address")


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``("fd00::10", 5000)`` of ``[fd00::10]:5000``, ``("10.0.0.1", 5000)`` of ``10.0.0.1:5000``:
    the bare host (what libpq's ``host=`` takes) and the port."""
    host, sep, number = endpoint.rpartition(":")
    if not sep or not number.isdigit() or not host:
        raise SystemExit(f"{endpoint!r} is not ADDRESS:PORT (an IPv6 address bracketed: [fd00::10]:5000)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise SystemExit(f"{endpoint!r}: bracket an IPv6 address ([{host}]:{number})")
    return host, int(number)


class Inventory:
    """An Ansible inventory as the stack sees it: groups, and per host the cluster address (the
    collection's address module) and the management target (``ansible_host``)."""

    def __init__(self, path: str = LAB_INVENTORY):
        self.path = os.path.abspath(path)
        exe = os.path.join(PROJECT, ".venv", "bin", "ansible-inventory")
        res = subprocess.run([exe if os.path.exists(exe) else "ansible-inventory", "-i", self.path, "--list"],
                             cwd=PROJECT, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise SystemExit(f"ansible-inventory -i {self.path} failed: {res.stderr.strip()}")
        self.data = json.loads(res.stdout)
        self.hostvars = self.data.get("_meta", {}).get("hostvars", {})

    def group(self, name: str) -> list[str]:
        """The hosts of group ``name`` and its children, in inventory order."""
        out: list[str] = []

        def walk(group: str, seen: tuple[str, ...]) -> None:
            node = self.data.get(group, {})
            for host in node.get("hosts", []):
                if host not in out:
                    out.append(host)
            for child in node.get("children", []):
                if child not in seen:
                    walk(child, (*seen, child))

        walk(name, (name,))
        return out

    def host(self, group_or_host: str) -> str:
        """``group_or_host`` when it is a host, else the group's first host."""
        if group_or_host in self.hostvars:
            return group_or_host
        hosts = self.group(group_or_host)
        if not hosts:
            raise SystemExit(f"{self.path}: no host or group {group_or_host!r} with hosts")
        return hosts[0]

    def cluster_address(self, host: str) -> str:
        """Where ``host``'s services listen: the collection's answer (hardened_stack_address, ...)."""
        address = address_module()
        try:
            return address.cluster_address(host, self.hostvars)
        except address.AddressError as exc:
            raise SystemExit(str(exc)) from exc

    def management_name(self, host: str) -> str:
        """What SSH dials for ``host``: its ``ansible_host`` (the lab: ``<host>.mgmt.hslab``)."""
        return str((self.hostvars.get(host) or {}).get("ansible_host") or host)

    def secret(self, kind: str, host: str, vault: str | None = None, **params) -> str:
        """Secret ``kind`` as ``host``'s roles get it: the inventory variable ``vault`` when set,
        else the producing role's file in the inventory's hardened_stack_secrets_dir, read by
        the collection's secrets module (lab/collection.py; never created)."""
        try:
            rendered = variables.render(self.path, collection.secret_expressions(kind, vault), host)[host]
            return collection.secret(kind, rendered, **params)
        except (variables.RenderError, collection.module_utils("secrets").SecretError) as exc:
            raise SystemExit(str(exc)) from exc

    def db_password(self, user: str, group: str = "postgres") -> str:
        """PostgreSQL role ``user``'s password: its postgresql_users entry's password when the
        inventory gives one, else the postgresql role's generated file."""
        entry = ("postgresql_users | default([]) | selectattr('name', 'equalto', %s) "
                 "| map(attribute='password', default='') | first | default('')" % json.dumps(user))
        return self.secret("postgresql", self.host(group), vault=entry, user=user)

    def port(self, service: str, host: str | None = None) -> int:
        hv = self.hostvars.get(host, {}) if host else {}
        return port(service, hv.get("_common_port_map_overrides"))

    def groups(self) -> dict[str, list[str]]:
        """``groups`` as Ansible's magic variable has it: every group (children included) -> hosts."""
        names = [g for g in self.data if g != "_meta"]
        return {**{g: self.group(g) for g in names}, "all": list(self.hostvars)}

    def endpoint(self, service: str) -> str:
        """``address:port`` of ``service`` as the collection's consumers dial it (module_utils
        stack.endpoints, the answer the roles use): the first endpoint of the hosts of the port
        map's ``listen`` groups (e.g. pg_write on the first load balancer)."""
        listen = (port_map_defaults().get(service) or {}).get("listen") or []
        hosts = [h for g in listen for h in self.group(g)]
        if not hosts:
            raise SystemExit(f"{self.path}: no host of {', '.join(listen) or '?'} runs {service}")
        overrides = self.hostvars.get(hosts[0], {}).get("_common_port_map_overrides") or {}
        merged = {name: {**entry, **(overrides.get(name) or {})} for name, entry in port_map_defaults().items()}
        merged.update({name: entry for name, entry in overrides.items() if name not in merged})
        stack = collection.module_utils("stack")
        try:
            return stack.endpoints(merged, self.groups(), self.hostvars, service)[0]["endpoint"]
        except stack.StackError as exc:
            raise SystemExit(str(exc)) from exc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("endpoint", "ssh", "db-password"))
    ap.add_argument("name", help="endpoint: a port map service (pg_read); ssh: a host or group (app); "
                    "db-password: a PostgreSQL role (app)")
    ap.add_argument("-i", "--inventory", default=LAB_INVENTORY)
    args = ap.parse_args()
    inventory = Inventory(args.inventory)
    if args.what == "endpoint":
        print(inventory.endpoint(args.name))
    elif args.what == "db-password":
        sys.stdout.write(inventory.db_password(args.name) + "\n")
    else:
        print(inventory.management_name(inventory.host(args.name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
