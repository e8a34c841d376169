"""Create and destroy lab hosts (systemd containers reached over SSH).

Used by ``make lab`` (hosts read from ``inventories/lab``) and by every Molecule
scenario (hosts read from the scenario's ``platforms``) alike. Each host sits on a management
and a cluster network and is reached by its management name (lab/network.py); the names are
kept in a block of this machine's /etc/hosts per lab or scenario (lab/etchosts.py).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from . import engine, etchosts, images, network
from .platform import CACHE_ROOT, IMAGES, LABEL, create_args

SSH_USER = "hslab"
# A container's controller /etc/hosts lines ("address name,address name"), so the block of a
# label is rebuilt from the containers that exist (lab-addnode adds node4 to the lab's label).
HOSTS_LABEL = "hslab.hosts"


def ssh_key() -> str:
    """Path of the lab's private key (generated once)."""
    key = os.path.join(CACHE_ROOT, "ssh", "id_ed25519")
    if not os.path.exists(key):
        os.makedirs(os.path.dirname(key), mode=0o700, exist_ok=True)
        engine.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hardened-stack-lab",
                    "-f", key])
    return key


def _pool(image: str) -> str:
    return os.path.join(CACHE_ROOT, "apt", image, "pool")


def _host_cache(image: str, name: str) -> str:
    return os.path.join(CACHE_ROOT, "apt", image, "hosts", name)


def _seed_cache(image: str, name: str) -> str:
    """Per-host apt archive dir, pre-filled with hard links from the shared pool."""
    pool, dest = _pool(image), _host_cache(image, name)
    os.makedirs(pool, exist_ok=True)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(os.path.join(dest, "partial"))
    for deb in os.listdir(pool):
        if deb.endswith(".deb"):
            os.link(os.path.join(pool, deb), os.path.join(dest, deb))
    return dest


def harvest_cache(image: str, name: str, remove: bool = True) -> int:
    """Link packages a host downloaded into the pool; return how many were new."""
    pool, src = _pool(image), _host_cache(image, name)
    new = 0
    if os.path.isdir(src):
        os.makedirs(pool, exist_ok=True)
        for deb in os.listdir(src):
            target = os.path.join(pool, deb)
            if deb.endswith(".deb") and not os.path.exists(target):
                os.link(os.path.join(src, deb), target)
                new += 1
        if remove:
            shutil.rmtree(src, ignore_errors=True)
    return new


def container_state(name: str) -> str | None:
    res = engine.run(["docker", "inspect", "-f", "{{.State.Status}}", name], check=False,
                     capture=True, quiet=True)
    return res.stdout.strip() if res.returncode == 0 else None


def _exec(name: str, cmd: str, input_text: str | None = None) -> subprocess.CompletedProcess:
    return engine.run(["docker", "exec", "-i", name, "bash", "-c", cmd], capture=True,
                      input_text=input_text, quiet=True, check=False)


def _wait_ready(name: str, address: str, key: str, timeout: int = 300) -> None:
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        state = _exec(name, "systemctl is-system-running 2>/dev/null || true").stdout.strip()
        if state in ("running", "degraded"):
            res = engine.run(["ssh", "-i", key, "-o", "BatchMode=yes", "-o", "ConnectTimeout=3",
                              "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                              "-o", "LogLevel=ERROR", f"{SSH_USER}@{address}", "true"],
                             check=False, capture=True, quiet=True)
            if res.returncode == 0:
                return
            last = res.stderr.strip()
        else:
            last = f"systemd: {state or 'starting'}"
        time.sleep(1)
    raise engine.LabError(f"{name} not reachable over SSH at {address} after {timeout} s ({last})")


def create_container(host: dict, hosts: list[dict], net: str, label: str, key: str) -> None:
    """Create, attach to both networks and start one host (kept when already running)."""
    name, image = host["name"], host.get("image", "debian12")
    state = container_state(name)
    if state == "running":
        engine.log(f"{name}: already running")
        return
    if state is not None:
        engine.run(["docker", "rm", "-f", name], capture=True)
    ipv6 = any(ipaddress.ip_address(a).version == 6 for a in host["cluster"])
    entries = ",".join(f"{addr} {fqdn}" for addr, fqdn in network.controller_entries(host))
    args = create_args(name, image, net, host["address"], hostname=host.get("hostname", name),
                       etc_hosts=network.container_entries(hosts, name), label_value=label,
                       labels={HOSTS_LABEL: entries}, ipv6=ipv6)
    # The apt archive cache is a host directory (see _seed_cache).
    cache = _seed_cache(image, name)
    args[args.index("--tmpfs"):args.index("--tmpfs")] = [
        "--volume", f"{cache}:/var/cache/apt/archives", "--label", f"hslab.image={image}"]
    engine.run(args, capture=True)
    connect = ["docker", "network", "connect"]
    for addr in host["cluster"]:
        connect += ["--ip" if ipaddress.ip_address(addr).version == 4 else "--ip6", addr]
    engine.run(connect + [network.cluster_network(net), name], capture=True)
    engine.run(["docker", "start", name], capture=True)
    with open(key + ".pub", encoding="utf-8") as fh:
        pub = fh.read()
    res = _exec(name, f"install -d -m 0700 -o {SSH_USER} -g {SSH_USER} /home/{SSH_USER}/.ssh && "
                      f"install -m 0600 -o {SSH_USER} -g {SSH_USER} /dev/stdin "
                      f"/home/{SSH_USER}/.ssh/authorized_keys", input_text=pub)
    if res.returncode != 0:
        raise engine.LabError(f"{name}: could not install the lab key: {res.stderr}")


def refresh_names(label: str) -> None:
    """The /etc/hosts block of ``label``: the names of every container carrying the label."""
    res = engine.run(["docker", "ps", "-a", "--filter", f"label={LABEL}={label}",
                      "--format", "{{.Names}}\t{{.Label \"" + HOSTS_LABEL + "\"}}"], capture=True, quiet=True)
    entries = []
    for line in sorted(res.stdout.splitlines()):
        _name, _tab, value = line.partition("\t")
        for item in filter(None, value.split(",")):
            addr, fqdn = item.split()
            entries.append((addr, fqdn))
    if etchosts.set_block(label, entries):
        engine.log(f"{etchosts.hosts_file()}: {len(entries)} name(s) of {label}")


def create(hosts: list[dict], net: str, label: str) -> list[dict]:
    """Create every host in parallel; return Molecule-style instance configs (the address
    Ansible uses is the management name, resolved through this machine's /etc/hosts)."""
    for host in hosts:
        if host.get("image", "debian12") not in IMAGES:
            raise engine.LabError(f"{host['name']}: unknown image {host.get('image')!r}")
    engine.ensure_engine()
    images.build_all(sorted({h.get("image", "debian12") for h in hosts}))
    key = ssh_key()
    network.ensure_networks(hosts, net, label)
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        for future in [pool.submit(create_container, h, hosts, net, label, key) for h in hosts]:
            future.result()
    refresh_names(label)
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        for future in [pool.submit(_wait_ready, h["name"], h["mgmt_name"], key) for h in hosts]:
            future.result()
    return [{"instance": h["name"], "address": h["mgmt_name"], "user": SSH_USER, "port": 22,
             "identity_file": key, "image": h.get("image", "debian12")} for h in hosts]


def destroy(label: str, net: str | None = None) -> None:
    """Remove every container carrying this label, its networks and its /etc/hosts block,
    keeping apt caches."""
    res = engine.run(["docker", "ps", "-a", "--filter", f"label={LABEL}={label}",
                      "--format", "{{.Names}} {{.Label \"hslab.image\"}}"], capture=True, quiet=True)
    rows = [line.split() for line in res.stdout.splitlines() if line.strip()]
    if rows:
        engine.run(["docker", "rm", "-f", *[r[0] for r in rows]], capture=True)
    new = sum(harvest_cache(r[1], r[0]) for r in rows if len(r) == 2)
    if new:
        engine.log(f"apt cache: {new} new package(s) kept for the next run")
    if etchosts.set_block(label, []):
        engine.log(f"{etchosts.hosts_file()}: names of {label} removed")
    if net:
        network.remove_networks(net)
