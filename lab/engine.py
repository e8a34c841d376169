"""Container engine and host-side helpers for the lab.

``ensure_engine`` makes sure a Docker engine answers: on Debian it installs
``docker.io`` (and ``debootstrap``) and starts ``dockerd`` in
the background when nothing answers; elsewhere it stops with a clear message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

APT_PACKAGES = ("docker.io", "debootstrap", "openssh-client")


class LabError(RuntimeError):
    """A lab step failed in a way the user must act on."""


def log(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


def docker_bin() -> str:
    """The Debian docker client (API 1.41); /usr/local/bin may hold a newer one."""
    for candidate in ("/usr/bin/docker", shutil.which("docker") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise LabError("no docker client found")


def run(cmd: list[str], check: bool = True, capture: bool = False,
        input_text: str | None = None, quiet: bool = False) -> subprocess.CompletedProcess:
    if cmd and cmd[0] == "docker":
        cmd = [docker_bin()] + cmd[1:]
    if not quiet:
        log("$ " + " ".join(cmd if len(cmd) < 40 else cmd[:40] + ["..."]))
    res = subprocess.run(cmd, text=True, input=input_text,
                         stdout=subprocess.PIPE if capture else None,
                         stderr=subprocess.PIPE if capture else None, check=False)
    if check and res.returncode != 0:
        detail = (res.stderr or "").strip() if capture else ""
        raise LabError(f"command failed ({res.returncode}): {' '.join(cmd[:8])} {detail}")
    return res


def docker_answers() -> bool:
    try:
        return run(["docker", "info"], check=False, capture=True, quiet=True).returncode == 0
    except LabError:
        return False


def is_debian() -> bool:
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return False
    return "ID=debian" in text or "ID_LIKE=debian" in text


def apt_install(packages: tuple[str, ...]) -> None:
    missing = [p for p in packages
               if run(["dpkg-query", "-W", "-f=${Status}", p], check=False, capture=True,
                      quiet=True).stdout.strip() != "install ok installed"]
    if not missing:
        return
    if os.geteuid() != 0:
        raise LabError(f"packages missing and not root: apt-get install {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, env=env)


# Every systemd container takes inotify instances from the machine's per-user pool (128 by
# default): past about thirty lab/Molecule hosts, systemd in new containers stays
# "initializing" with "Failed to create inotify object: Too many open files".
INOTIFY_LIMITS = {"fs/inotify/max_user_instances": 8192, "fs/inotify/max_user_watches": 1048576}


def raise_inotify_limits() -> None:
    """Raise the machine's inotify limits to what many systemd containers need (never lower)."""
    for key, wanted in INOTIFY_LIMITS.items():
        path = os.path.join("/proc/sys", key)
        try:
            with open(path, encoding="utf-8") as fh:
                current = int(fh.read().strip())
            if current < wanted:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(str(wanted))
                log(f"{key.replace('/', '.')}: {current} -> {wanted}")
        except (OSError, ValueError) as exc:
            log(f"warning: cannot raise {key.replace('/', '.')} ({exc}); many lab hosts may not boot")


def ensure_engine() -> None:
    """Install and start what the lab needs on this machine, idempotently."""
    raise_inotify_limits()
    if is_debian():
        apt_install(APT_PACKAGES)
    elif not shutil.which("docker"):
        raise LabError("no container engine: install Docker (the lab is tested with Debian's "
                       "docker.io) and make sure `docker info` answers")
    if docker_answers():
        return
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not os.access(dockerd, os.X_OK):
        raise LabError("docker does not answer and no dockerd to start; start your engine")
    log("starting dockerd in the background (log: /var/log/hslab-dockerd.log)")
    with open("/var/log/hslab-dockerd.log", "ab") as out:
        subprocess.Popen([dockerd], stdout=out, stderr=out, start_new_session=True)
    for _attempt in range(60):
        if docker_answers():
            return
        time.sleep(1)
    raise LabError("dockerd did not answer within 60 s; see /var/log/hslab-dockerd.log")


def apt_mirror() -> str:
    """The Debian mirror that apt on this machine already uses."""
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        try:
            with open(path, encoding="utf-8") as fh:
                for raw in fh:
                    line = raw.strip()
                    if line.startswith("URIs:") and "security" not in line:
                        return line.split()[1].rstrip("/")
                    if line.startswith("deb ") and "/debian" in line and "security" not in line:
                        return line.split()[1].rstrip("/")
        except OSError:
            continue
    return "http://deb.debian.org/debian"
