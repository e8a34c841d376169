"""Build the Debian 12 / 13 systemd base images from debootstrap (no registry here).

An image is rebuilt only when it is missing or ``--rebuild`` is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from . import engine
from .platform import CACHE_ROOT, IMAGES

INCLUDE = ("systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,iptables,procps,"
           "ca-certificates,gnupg,openssh-server,less")

# Units that cannot work (or only add noise) inside a container.
MASK = ("getty.target", "console-getty.service", "systemd-logind.service",
        "systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
        "systemd-remount-fs.service", "sys-kernel-config.mount", "sys-kernel-debug.mount",
        "sys-kernel-tracing.mount", "dev-hugepages.mount", "systemd-timesyncd.service",
        "systemd-firstboot.service", "apt-daily.timer", "apt-daily-upgrade.timer",
        "e2scrub_all.timer", "fstrim.timer")

# Every container of one image would otherwise share one set of SSH host keys.
KEYGEN_UNIT = """[Unit]
Description=Generate this lab host's own SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
"""

# Docker mounts /proc/sys read-only. The network sysctls (net.ipv4.*, net.ipv6.*) belong to
# the container's own network namespace, so the lab makes just that subtree writable, as on
# a VM: roles can then apply them live. Everything else (kernel.*, vm.*, fs.*, net.core.*)
# is the build machine's kernel and stays read-only.
NETNS_SYSCTL_UNIT = """[Unit]
Description=Make this lab host's network-namespace sysctls writable
DefaultDependencies=no
Before=systemd-sysctl.service sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net'

[Install]
WantedBy=sysinit.target
"""

# On real hosts each machine has its own cores; in the lab eleven hosts and the controller
# share this machine's two. Ansible's modules run under sshd: at nice 10 they yield to the
# services (HAProxy, PostgreSQL, Redis, the app) of the same host, as they would on a host of
# their own, instead of starving the request path during a fleet-wide task.
SSH_NICE_DROPIN = """[Service]
Nice=10
"""

DOCKERFILE = """FROM {base}
ENV container=docker
LABEL hslab.revision={revision}
COPY hslab-ssh-keygen.service hslab-netns-sysctl.service /etc/systemd/system/
COPY hslab-nice.conf /etc/systemd/system/ssh.service.d/
RUN systemctl mask {mask} \\
 && rm -f /etc/ssh/ssh_host_* \\
 && systemctl enable hslab-ssh-keygen.service hslab-netns-sysctl.service ssh.service \\
 && useradd --create-home --shell /bin/bash --groups sudo hslab \\
 && passwd --lock hslab \\
 && echo 'hslab ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/hslab && chmod 0440 /etc/sudoers.d/hslab
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
"""


def revision() -> str:
    """Hash of what the top layer is made of: a change rebuilds it (seconds, not minutes)."""
    import hashlib
    text = "\n".join([DOCKERFILE, KEYGEN_UNIT, NETNS_SYSCTL_UNIT, SSH_NICE_DROPIN, " ".join(MASK)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_exists(tag: str, want_revision: str | None = None) -> bool:
    res = engine.run(["docker", "image", "inspect", "-f", '{{ index .Config.Labels "hslab.revision" }}', tag],
                     check=False, capture=True, quiet=True)
    if res.returncode != 0:
        return False
    return want_revision is None or res.stdout.strip() == want_revision


def build_top(name: str, base: str) -> str:
    """The systemd layer on top of the debootstrap rootfs image."""
    tag = IMAGES[name]["tag"]
    ctx = tempfile.mkdtemp(prefix=f"hslab-{name}-ctx-")
    try:
        _write(ctx, "Dockerfile", DOCKERFILE.format(base=base, mask=" ".join(MASK), revision=revision()))
        _write(ctx, "hslab-ssh-keygen.service", KEYGEN_UNIT)
        _write(ctx, "hslab-netns-sysctl.service", NETNS_SYSCTL_UNIT)
        _write(ctx, "hslab-nice.conf", SSH_NICE_DROPIN)
        engine.run(["docker", "build", "--quiet", "-t", tag, ctx])
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    return tag


def _write(root: str, rel: str, text: str, mode: int = 0o644) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, mode)


def build(name: str, rebuild: bool = False) -> str:
    spec = IMAGES[name]
    tag, suite = spec["tag"], spec["suite"]
    base = f"{tag.split(':')[0]}-rootfs:latest"
    if image_exists(tag, revision()) and not rebuild:
        engine.log(f"image {tag} present (use --rebuild to rebuild)")
        return tag
    if image_exists(base) and not rebuild:
        engine.log(f"image {tag}: rebuilding the systemd layer (revision {revision()})")
        return build_top(name, base)
    mirror = engine.apt_mirror()
    cache = os.path.join(CACHE_ROOT, "debootstrap", suite)
    os.makedirs(cache, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f"hslab-{name}-")
    root = os.path.join(work, "rootfs")
    try:
        engine.log(f"debootstrap {suite} from {mirror} (1-3 min)")
        engine.run(["debootstrap", "--variant=minbase", f"--include={INCLUDE}",
                    f"--cache-dir={cache}", suite, root, mirror])
        security = mirror.rsplit("/", 1)[0] + "/debian-security"
        _write(root, "etc/apt/sources.list",
               f"deb {mirror} {suite} main\n"
               f"deb {mirror} {suite}-updates main\n"
               f"deb {security} {suite}-security main\n")
        _write(root, "etc/machine-id", "")
        for rel in ("var/lib/apt/lists", "var/cache/apt/archives"):
            path = os.path.join(root, rel)
            for entry in os.listdir(path):
                full = os.path.join(path, entry)
                if os.path.isfile(full) and entry not in ("lock",):
                    os.unlink(full)
        engine.log(f"importing rootfs as {base}")
        tar = subprocess.Popen(["tar", "-C", root, "--numeric-owner", "-c", "."],
                               stdout=subprocess.PIPE)
        imp = subprocess.run([engine.docker_bin(), "import", "-", base], stdin=tar.stdout,
                             stdout=subprocess.DEVNULL, check=False)
        tar.stdout.close()
        if tar.wait() != 0 or imp.returncode != 0:
            raise engine.LabError(f"docker import of {name} failed")
        return build_top(name, base)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_all(names: list[str] | None = None, rebuild: bool = False) -> None:
    for name in names or sorted(IMAGES):
        build(name, rebuild=rebuild)
