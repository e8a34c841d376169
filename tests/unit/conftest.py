"""Make the checkout importable as ansible_collections.hardened.stack for unit tests, and the
fixtures they share: ``dns`` (a fake resolver), ``procs`` and ``module_procs`` (servers on
loopback, tests/unit/loopback.py)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from lab import collection  # noqa: E402  (the one way the checkout is made importable)

COLLECTIONS = collection.importable()

import socket  # noqa: E402

import loopback  # noqa: E402  (needs the collection importable)
import pytest  # noqa: E402


_REAL_GETADDRINFO = socket.getaddrinfo


class FakeDNS(dict):
    """Name -> [addresses]: the controller's resolver as the address model sees it. Every unit
    test gets an empty one, so no test depends on the DNS of the machine it runs on (IP
    literals and localhost still go to the real resolver: servers on loopback)."""

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002, PLR0917 (socket's signature)
        if host is None or host == "localhost" or _is_ip(host):
            return _REAL_GETADDRINFO(host, port, family, type, proto, flags)
        if host not in self:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for addr in self[host]:
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            sockaddr = (addr, port or 0, 0, 0) if fam == socket.AF_INET6 else (addr, port or 0)
            out.append((fam, socket.SOCK_STREAM, 6, "", sockaddr))
        return out


def _is_ip(host):
    import ipaddress

    try:
        ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host)
    except ValueError:
        return False
    return True


@pytest.fixture(autouse=True, name="dns")
def fixture_dns(monkeypatch):
    from ansible_collections.hardened.stack.plugins.module_utils import address

    fake = FakeDNS()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    address._RESOLVED.clear()
    yield fake
    address._RESOLVED.clear()


def _processes():
    started = loopback.Processes()
    yield started
    started.stop_all()


@pytest.fixture(name="procs")
def fixture_procs():
    """Servers one test starts on loopback (tests/unit/loopback.py), stopped after it."""
    yield from _processes()


@pytest.fixture(name="module_procs", scope="module")
def fixture_module_procs():
    """Servers the tests of one module share (a module-scoped fixture starts them), stopped
    after its last test."""
    yield from _processes()
