"""Servers the unit tests start on loopback: one way to pick a port, wait, stop, and talk to Redis.

- ``free_port``/``until``: a port the kernel has free on 127.0.0.1; a check polled until it holds.
- ``Processes``: the servers a test (fixture ``procs``) or a test module (fixture
  ``module_procs``, both in tests/unit/conftest.py) started, stopped when it ends (terminate,
  kill after 10 s). ``serve`` starts a program and waits until its port answers;
  ``redis_server`` starts Debian's redis-server on 127.0.0.1 without persistence.
- ``redis_client``: the collection's own RESP client (plugins/module_utils/resp.py), connected
  once the server answers. Error replies raise ``RespError`` (``WRONGPASS ...``).
"""

import socket
import subprocess
import time

import debian
from lab import poll

from ansible_collections.hardened.stack.plugins.module_utils.resp import RespClient, RespConnectionError

SERVER = debian.INSTALLED["redis-server"][0]
SENTINEL = debian.INSTALLED["redis-sentinel"][0]
needs_redis = debian.needs("redis-server", "redis-sentinel")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(check, timeout=20, step=0.1):
    """``check()``'s first true value within ``timeout`` seconds, else its last value."""
    return poll.until(check, timeout, step)


def redis_client(port, user=None, password=None, wait=10):
    """A :class:`RespClient` connected to 127.0.0.1:``port`` (tried again until ``wait``
    seconds have passed: a server just started), logged in as ``user`` when given."""
    client = RespClient(port=port, username=user, password=password)
    deadline = time.time() + wait
    while True:
        try:
            return client.connect()
        except RespConnectionError:
            client.close()
            if time.time() > deadline:
                raise
            time.sleep(0.05)
        except Exception:
            client.close()
            raise


class Processes(list):
    """Processes started on loopback; ``stop_all`` ends them (the fixtures call it)."""

    def start(self, *argv):
        proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.append(proc)
        return proc

    def serve(self, port, *argv, timeout=20):
        """Start ``argv`` and return it once 127.0.0.1:``port`` accepts a connection."""
        proc = self.start(*argv)
        deadline = time.time() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return proc
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited with {proc.returncode} before port {port} opened") from None
                if time.time() > deadline:
                    raise RuntimeError(f"port {port} did not open ({argv[0]})") from None
                time.sleep(0.05)

    def redis_server(self, directory, *options, port=None):
        """redis-server on 127.0.0.1 (``port``, a free one by default) with its files in
        ``directory``, no snapshots, no AOF, and ``options`` (command-line form); its port once
        it answers."""
        port = port or free_port()
        self.serve(port, SERVER, "--port", port, "--bind", "127.0.0.1", "--dir", directory, "--save", "",
                   "--appendonly", "no", *options)
        return port

    def stop(self, proc):
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.remove(proc)

    def stop_all(self):
        for proc in self:
            if proc.poll() is None:
                proc.terminate()
        for proc in list(self):
            self.stop(proc)
