"""The ONE place that says how a lab host container is run.

Both ``make lab`` (``python -m lab up``) and every Molecule scenario (through
``molecule/_shared/create.yml`` -> ``python -m lab molecule-create``) build their
containers from :func:`create_args`, so a flag changed here changes everywhere. The container
is created on its management network; lab/hosts.py then connects it to its cluster network
(lab/network.py) and starts it, so systemd boots with both interfaces in place.

Why these flags (measured on the Debian 12 build machine, Docker 20.10, cgroup v1):

* ``--privileged`` fails on this kind of machine; systemd runs with the three
  capabilities below plus unconfined seccomp/apparmor.
* ``--cgroupns host`` + the cgroup bind mount let systemd manage its own slices.
* ``/run``, ``/run/lock`` and ``/tmp`` are tmpfs, as on a booted host.
* ``SIGRTMIN+3`` is what systemd treats as "shut down cleanly" (``docker stop``
  is then a real clean shutdown; ``docker kill`` is the abrupt node loss).
* Docker disables IPv6 in a container (no ``::1`` either) unless told otherwise: a host with
  an IPv6 cluster address gets ``net.ipv6.conf.all.disable_ipv6=0`` (``ipv6=True``).
"""

from __future__ import annotations

import os

CAPABILITIES = ("SYS_ADMIN", "NET_ADMIN", "NET_RAW")
SECURITY_OPTS = ("seccomp=unconfined", "apparmor=unconfined")
TMPFS = ("/run", "/run/lock", "/tmp")
VOLUMES = ("/sys/fs/cgroup:/sys/fs/cgroup:rw",)
STOP_SIGNAL = "SIGRTMIN+3"
INIT_COMMAND = ("/lib/systemd/systemd",)
LABEL = "hardened.stack.lab"

# Host-side cache (debootstrap downloads, the shared pool of .deb files).
CACHE_ROOT = os.environ.get("HSLAB_CACHE", os.path.expanduser("~/.cache/hardened-stack"))

# Image names built by lab/images.py, keyed by the short name inventories use
# in ``lab_image``.
IMAGES = {
    "debian12": {"suite": "bookworm", "tag": "hardened-stack/debian12-systemd:latest"},
    "debian13": {"suite": "trixie", "tag": "hardened-stack/debian13-systemd:latest"},
}


def create_args(name: str, image: str, network: str, address: str, *,
                hostname: str | None = None, etc_hosts: list[tuple[str, str]] | None = None,
                label_value: str = "lab", labels: dict[str, str] | None = None,
                ipv6: bool = False) -> list[str]:
    """Return the ``docker create`` argument list for one systemd lab host on ``network``
    (its management network) at ``address``; ``etc_hosts`` are (name, address) pairs."""
    if image not in IMAGES:
        raise ValueError(f"unknown lab image {image!r}; known: {', '.join(sorted(IMAGES))}")
    args = ["docker", "create", "--name", name,
            "--hostname", hostname or name,
            "--network", network, "--ip", address,
            "--tty", "--stop-signal", STOP_SIGNAL,
            "--cgroupns", "host",
            "--label", f"{LABEL}={label_value}",
            "--env", "container=docker"]
    for key, value in sorted((labels or {}).items()):
        args += ["--label", f"{key}={value}"]
    if ipv6:
        args += ["--sysctl", "net.ipv6.conf.all.disable_ipv6=0"]
    for cap in CAPABILITIES:
        args += ["--cap-add", cap]
    for opt in SECURITY_OPTS:
        args += ["--security-opt", opt]
    for path in TMPFS:
        args += ["--tmpfs", path]
    for vol in VOLUMES:
        args += ["--volume", vol]
    for host, addr in etc_hosts or []:
        if host != (hostname or name):
            args += ["--add-host", f"{host}:{addr}"]
    args.append(IMAGES[image]["tag"])
    args += list(INIT_COMMAND)
    return args
