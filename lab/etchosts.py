"""The lab's names in this machine's /etc/hosts: one marked block per lab or scenario.

    # BEGIN hardened-stack lab molecule-postgres
    172.30.25.11 pg-1.mgmt.hslab
    fd00:172:30:35::11 pg-1.cluster.hslab
    # END hardened-stack lab molecule-postgres

Molecule scenarios run in parallel, so every change is made under an exclusive lock and
written atomically (a new file renamed over the old one; where /etc/hosts is a bind mount
that cannot be replaced, it is rewritten in place, still under the lock). Nothing outside the
lab's own blocks is touched. ``HSLAB_HOSTS_FILE`` points the lab at another file (tests).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile

MARK = "hardened-stack lab"


def hosts_file() -> str:
    return os.environ.get("HSLAB_HOSTS_FILE", "/etc/hosts")


def _lock_path(path: str) -> str:
    if path == "/etc/hosts" and os.path.isdir("/run/lock"):
        return "/run/lock/hardened-stack-etc-hosts.lock"
    return path + ".lock"


@contextlib.contextmanager
def _locked(path: str):
    with open(_lock_path(path), "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def render(text: str, label: str, entries: list[tuple[str, str]]) -> str:
    """``text`` without the block of ``label``, plus the new block when there are entries."""
    begin, end = f"# BEGIN {MARK} {label}", f"# END {MARK} {label}"
    out, inside = [], False
    for line in text.splitlines():
        if line.strip() == begin:
            inside = True
        elif inside and line.strip() == end:
            inside = False
        elif not inside:
            out.append(line)
    if entries:
        width = max(len(addr) for addr, _name in entries)
        out += [begin] + [f"{addr:<{width}} {name}" for addr, name in entries] + [end]
    return "\n".join(out) + "\n" if out else ""


def _write(path: str, content: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
    fd, tmp = tempfile.mkstemp(prefix=".hslab-hosts-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        try:
            os.replace(tmp, path)
            tmp = ""
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.EXDEV, errno.EPERM):
                raise
            with open(path, "w", encoding="utf-8") as fh:  # a bind-mounted file: in place
                fh.write(content)
    finally:
        if tmp:
            os.unlink(tmp)


def set_block(label: str, entries: list[tuple[str, str]], path: str | None = None) -> bool:
    """Make the block of ``label`` hold exactly ``entries`` ((address, name) pairs; none: no
    block). True when the file changed."""
    path = path or hosts_file()
    with _locked(path):
        try:
            with open(path, encoding="utf-8") as fh:
                current = fh.read()
        except FileNotFoundError:
            current = ""
        wanted = render(current, label, entries)
        if wanted == current:
            return False
        _write(path, wanted)
        return True


def block(label: str, path: str | None = None) -> list[tuple[str, str]]:
    """The (address, name) entries of the block of ``label`` (empty when there is none)."""
    begin, end = f"# BEGIN {MARK} {label}", f"# END {MARK} {label}"
    try:
        with open(path or hosts_file(), encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return []
    out, inside = [], False
    for line in lines:
        if line.strip() == begin:
            inside = True
        elif line.strip() == end:
            inside = False
        elif inside and line.split():
            addr, name = line.split()[:2]
            out.append((addr, name))
    return out
