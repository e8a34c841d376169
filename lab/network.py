"""The lab's two networks and its names: what a lab host looks like from the controller and
from its neighbours.

Every lab host (``make lab`` and every Molecule scenario) is attached to two Docker networks,
as a production host is cabled to two networks:

* the **management** network ``NET`` (IPv4 /24, bridge with a gateway): Ansible connects over
  SSH here, by name (``<host>.mgmt.hslab``), and it carries each container's default route;
* the **cluster** network ``NET-cluster`` (IPv4 /24, optionally an IPv6 /64 as well): the
  stack's services bind and talk here (``hardened_stack_address``). It is created
  ``--internal``: Docker never routes a container's default traffic through an internal
  network, so the default gateway stays the management one even when the cluster network is
  dual-stack (Docker would otherwise prefer a dual-stack network for the default route). The
  machine still reaches both networks through their bridges.

Names (``DOMAIN`` = ``hslab``):

* ``<host>.mgmt.hslab``    -> the management IPv4 (controller's /etc/hosts and every container)
* ``<host>.cluster.hslab`` -> every cluster address of the host (same places)
* ``<host>``               -> the host's (first) cluster address, in every *other* container;
  a container's own short name is Docker's own record (its management address).

Addresses are declared, never guessed: the management IPv4 and the cluster address(es) of
each host come from the inventory (``lab_management_address``, ``hardened_stack_address``) or
the Molecule platform (``address``, ``cluster_address``). Two conventions only fill gaps:
``--ipv6`` gives a host without an IPv6 cluster address ``derived_ipv6(its IPv4)``, and a
cluster network whose hosts are IPv6-only still needs an IPv4 subnet for Docker, which is
the management /24 plus 10 in the third octet (``172.30.25.0/24`` -> ``172.30.35.0/24``).
"""

from __future__ import annotations

import ipaddress
import json

from . import engine
from .platform import LABEL

DOMAIN = "hslab"
CLUSTER_SUFFIX = "-cluster"


def management_name(host: str) -> str:
    return f"{host}.mgmt.{DOMAIN}"


def cluster_name(host: str) -> str:
    return f"{host}.cluster.{DOMAIN}"


def cluster_network(network: str) -> str:
    """Name of the cluster network that goes with management network ``network``."""
    return network + CLUSTER_SUFFIX


def ip_literals(value, what: str) -> list[str]:
    """``value`` (an IP literal or a list of them, the first one being THE address) as a list
    of normalised IP strings; anything else (a DNS name, a template) is an error, since the
    lab must attach the container with these very addresses."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise engine.LabError(f"{what} is empty")
    out = []
    for item in items:
        text = str(item).strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        try:
            out.append(str(ipaddress.ip_address(text)))
        except ValueError:
            raise engine.LabError(f"{what}: {item!r} is not an IP literal (a lab host's addresses "
                                  "must be literals: the lab attaches its container with them)") from None
    return out


def derived_ipv6(ipv4: str) -> str:
    """The lab's IPv6 twin of an IPv4 cluster address: 172.30.20.31 -> fd00:172:30:20::31
    (fd00::/8 is unique-local; the IPv4 octets are written as they read, for humans)."""
    a, b, c, d = str(ipaddress.IPv4Address(ipv4)).split(".")
    return str(ipaddress.IPv6Address(f"fd00:{a}:{b}:{c}::{d}"))


def host_spec(name: str, image: str, management_address: str, cluster, *,
              mgmt_name: str | None = None, ipv6: bool = False) -> dict:
    """One lab host: its image, management IPv4 and name, cluster addresses and name."""
    mgmt = ip_literals(management_address, f"{name}: management address")
    if len(mgmt) != 1 or ipaddress.ip_address(mgmt[0]).version != 4:
        raise engine.LabError(f"{name}: the management address must be one IPv4 literal, not {management_address!r}")
    addresses = ip_literals(cluster, f"{name}: cluster address")
    if ipv6 and not any(ipaddress.ip_address(a).version == 6 for a in addresses):
        v4 = [a for a in addresses if ipaddress.ip_address(a).version == 4]
        addresses.append(derived_ipv6(v4[0]))
    return {"name": name, "image": image, "address": mgmt[0],
            "mgmt_name": mgmt_name or management_name(name),
            "cluster": addresses, "cluster_name": cluster_name(name)}


def _one(nets: set, what: str, label: str):
    if len(nets) > 1:
        raise engine.LabError(f"the {what} addresses of {label} span several networks: {sorted(map(str, nets))}")
    return nets.pop() if nets else None


def subnets(hosts: list[dict], label: str = "the lab") -> dict:
    """The management /24, the cluster /24 and the cluster /64 (or None) the hosts need."""
    mgmt = _one({ipaddress.ip_network(f"{h['address']}/24", strict=False) for h in hosts},
                "management", label)
    v4 = _one({ipaddress.ip_network(f"{a}/24", strict=False) for h in hosts for a in h["cluster"]
               if ipaddress.ip_address(a).version == 4}, "cluster IPv4", label)
    v6 = _one({ipaddress.ip_network(f"{a}/64", strict=False) for h in hosts for a in h["cluster"]
               if ipaddress.ip_address(a).version == 6}, "cluster IPv6", label)
    if v4 is None:
        octets = str(mgmt.network_address).split(".")
        v4 = ipaddress.ip_network(f"{octets[0]}.{octets[1]}.{int(octets[2]) + 10}.0/24")
    if v4 == mgmt:
        raise engine.LabError(f"{label}: management and cluster addresses share {mgmt}: give the cluster "
                              "network its own subnet")
    gateways = {_gateway(mgmt), _gateway(v4)} | ({_gateway(v6)} if v6 else set())
    seen: dict[str, str] = {}
    for h in hosts:
        for a in [h["address"], *h["cluster"]]:
            if a in gateways:
                raise engine.LabError(f"{h['name']}: {a} is its network's gateway (the machine's bridge)")
            if a in seen and seen[a] != h["name"]:
                raise engine.LabError(f"{a} is given to both {seen[a]} and {h['name']}")
            seen[a] = h["name"]
    return {"management": mgmt, "cluster_v4": v4, "cluster_v6": v6}


def controller_entries(host: dict) -> list[tuple[str, str]]:
    """(address, name) lines for the machine's /etc/hosts: the two FQDNs of one host."""
    return [(host["address"], host["mgmt_name"])] + [(a, host["cluster_name"]) for a in host["cluster"]]


def container_entries(hosts: list[dict], own: str) -> list[tuple[str, str]]:
    """(name, address) ``--add-host`` entries of container ``own``: every host's management
    and cluster names, and every other host's short name on its cluster address."""
    out: list[tuple[str, str]] = []
    for h in hosts:
        out += [(name, addr) for addr, name in controller_entries(h)]
        if h["name"] != own:
            out.append((h["name"], h["cluster"][0]))
    return out


def _gateway(net) -> str:
    return str(next(net.hosts()))


def ensure_network(name: str, v4, v6=None, internal: bool = False) -> None:
    """Create a user-defined bridge network once; an existing one must have the same shape."""
    wanted = {str(v4)} | ({str(v6)} if v6 else set())
    res = engine.run(["docker", "network", "inspect", name], check=False, capture=True, quiet=True)
    if res.returncode == 0:
        info = json.loads(res.stdout)[0]
        current = {c["Subnet"] for c in (info.get("IPAM", {}).get("Config") or [])}
        if current != wanted or bool(info.get("Internal")) != internal:
            raise engine.LabError(f"network {name} exists with subnets {sorted(current)} (internal: "
                                  f"{bool(info.get('Internal'))}), wanted {sorted(wanted)} (internal: {internal}); "
                                  "remove the old lab first (python -m lab down / molecule destroy)")
        return
    args = ["docker", "network", "create", "--subnet", str(v4), "--gateway", _gateway(v4)]
    if v6:
        args += ["--ipv6", "--subnet", str(v6), "--gateway", _gateway(v6)]
    if internal:
        args.append("--internal")
    engine.run(args + ["--label", f"{LABEL}=1", name], capture=True)


def ensure_networks(hosts: list[dict], network: str, label: str) -> dict:
    """The management network ``network`` and its cluster network; returns the subnets."""
    nets = subnets(hosts, label)
    ensure_network(network, nets["management"])
    ensure_network(cluster_network(network), nets["cluster_v4"], nets["cluster_v6"], internal=True)
    return nets


def remove_networks(network: str) -> None:
    for name in (network, cluster_network(network)):
        if engine.run(["docker", "network", "inspect", name], check=False, capture=True,
                      quiet=True).returncode == 0:
            engine.run(["docker", "network", "rm", name], capture=True)


def ip_literals_or_none(value) -> list[str] | None:
    """Like :func:`ip_literals`, but None when ``value`` is not made of IP literals."""
    try:
        return ip_literals(value, "value")
    except engine.LabError:
        return None
