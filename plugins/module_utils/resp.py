# -*- coding: utf-8 -*-
# Copyright (c) 2026, hardened.stack contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small RESP2 client (the Redis serialisation protocol) for Redis and Sentinel.

Why not the ``redis`` library: Debian 12 ships python3-redis 4.3.4 and Debian 13 6.1.0 (their
Sentinel helpers differ), the hosts would need one more package only for Ansible, and the
handful of commands the modules send (AUTH, SENTINEL ..., INFO, ROLE) need nothing but a
socket. This client speaks RESP2 only, one request at a time, optionally over TLS, with a
timeout on every socket operation and no retries. A connection subscribed to Pub/Sub channels
reads what the server pushes with :meth:`RespClient.messages`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import time

try:
    import ssl
    HAS_SSL = True
except ImportError:  # pragma: no cover - ssl is always there on Debian
    HAS_SSL = False


class RespError(Exception):
    """An error reply from the server (``-ERR ...``, ``-NOPERM ...``)."""


class RespProtocolError(Exception):
    """The byte stream is not valid RESP."""


class RespConnectionError(Exception):
    """The server could not be reached or closed the connection."""


def _to_bytes(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, (int, float)):
        value = repr(value) if isinstance(value, float) else str(value)
    return value.encode("utf-8")


def encode(*args):
    """Encode one command as a RESP array of bulk strings."""
    if not args:
        raise ValueError("a command needs at least one word")
    out = [b"*" + str(len(args)).encode() + b"\r\n"]
    for arg in args:
        data = _to_bytes(arg)
        out.append(b"$" + str(len(data)).encode() + b"\r\n" + data + b"\r\n")
    return b"".join(out)


class _Incomplete(Exception):
    pass


def _parse(buf, pos):
    """Parse one reply from ``buf`` at ``pos``; return (value, new_pos) or raise _Incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete()
    kind = buf[pos:pos + 1]
    line = buf[pos + 1:end]
    nxt = end + 2
    if kind == b"+":
        return line.decode("utf-8", "replace"), nxt
    if kind == b"-":
        return RespError(line.decode("utf-8", "replace")), nxt
    if kind == b":":
        try:
            return int(line), nxt
        except ValueError:
            raise RespProtocolError("bad integer reply %r" % line)
    if kind == b"$":
        try:
            size = int(line)
        except ValueError:
            raise RespProtocolError("bad bulk length %r" % line)
        if size < 0:
            return None, nxt
        if len(buf) < nxt + size + 2:
            raise _Incomplete()
        if buf[nxt + size:nxt + size + 2] != b"\r\n":
            raise RespProtocolError("bulk string not terminated by CRLF")
        return buf[nxt:nxt + size].decode("utf-8", "replace"), nxt + size + 2
    if kind == b"*":
        try:
            count = int(line)
        except ValueError:
            raise RespProtocolError("bad array length %r" % line)
        if count < 0:
            return None, nxt
        items = []
        for dummy in range(count):
            item, nxt = _parse(buf, nxt)
            items.append(item)
        return items, nxt
    raise RespProtocolError("unknown reply type %r" % kind)


def decode(buf):
    """Decode every complete reply in ``buf``; return (replies, bytes consumed).

    Error replies come back as :class:`RespError` instances (not raised), so a caller can
    tell an error inside an array from a transport problem.
    """
    replies = []
    pos = 0
    while pos < len(buf):
        try:
            value, pos2 = _parse(buf, pos)
        except _Incomplete:
            break
        replies.append(value)
        pos = pos2
    return replies, pos


def pairs_to_dict(flat):
    """``[k1, v1, k2, v2]`` -> ``{k1: v1, k2: v2}`` (SENTINEL MASTER, CONFIG GET ...)."""
    if flat is None:
        return {}
    if len(flat) % 2:
        raise RespProtocolError("odd number of items in a key/value reply")
    return dict((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))


class RespClient:
    """One connection to a Redis or Sentinel instance. Use as a context manager."""

    def __init__(self, host="127.0.0.1", port=6379, username=None, password=None,
                 timeout=3.0, tls=False, ca_file=None, cert_file=None, key_file=None,
                 tls_verify_hostname=False):
        self.host = host
        self.port = int(port)
        self.username = username
        self.password = password
        self.timeout = timeout
        self.tls = tls
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.tls_verify_hostname = tls_verify_hostname
        self.sock = None
        self._buf = b""

    def _tls_context(self):
        """The client's TLS context; a CA, certificate or key file that cannot be read is a
        :class:`RespConnectionError` naming the file (before any socket is opened)."""
        if not HAS_SSL:
            raise RespConnectionError("TLS requested but Python's ssl module is missing")
        try:
            ctx = ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise RespConnectionError("cannot load the TLS CA file %s: %s" % (self.ca_file, exc))
        ctx.check_hostname = bool(self.tls_verify_hostname)
        if self.cert_file:
            try:
                ctx.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise RespConnectionError("cannot load the TLS client certificate %s / key %s: %s"
                                          % (self.cert_file, self.key_file, exc))
        return ctx

    def connect(self):
        ctx = self._tls_context() if self.tls else None
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except (OSError, socket.error) as exc:
            raise RespConnectionError("cannot connect to %s:%s: %s" % (self.host, self.port, exc))
        if ctx is not None:
            try:
                sock = ctx.wrap_socket(sock, server_hostname=self.host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise RespConnectionError("TLS handshake with %s:%s failed: %s" % (self.host, self.port, exc))
        sock.settimeout(self.timeout)
        self.sock = sock
        if self.password:
            if self.username:
                self.execute("AUTH", self.username, self.password)
            else:
                self.execute("AUTH", self.password)
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        return self if self.sock is not None else self.connect()

    def __exit__(self, *exc):
        self.close()

    def _receive(self):
        """One chunk from the socket into the buffer (socket errors and timeouts propagate)."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RespConnectionError("%s:%s closed the connection" % (self.host, self.port))
        self._buf += chunk

    def execute(self, *args):
        """Send one command, return its reply; raise RespError on an error reply."""
        if self.sock is None:
            self.connect()
        try:
            self.sock.sendall(encode(*args))
            while True:
                replies, used = decode(self._buf)
                if replies:
                    self._buf = self._buf[used:]
                    reply = replies[0]
                    # only one reply per request: anything beyond is kept for the next call
                    if len(replies) > 1:
                        self._buf = b"".join(encode_reply(r) for r in replies[1:]) + self._buf
                    break
                self._receive()
        except (OSError, socket.error) as exc:
            self.close()
            raise RespConnectionError("%s:%s: %s" % (self.host, self.port, exc))
        if isinstance(reply, RespError):
            raise reply
        return reply

    def messages(self, seconds):
        """Every reply the server sends on its own within ``seconds``, in order: the messages of
        a connection subscribed with SUBSCRIBE or PSUBSCRIBE (``[message, channel, data]``,
        ``[pmessage, pattern, channel, data]``). Error replies come back as :class:`RespError`
        instances. Waiting out ``seconds`` is no error: the connection stays usable."""
        if self.sock is None:
            raise RespConnectionError("%s:%s: not connected" % (self.host, self.port))
        out = []
        deadline = time.time() + seconds
        try:
            while True:
                replies, used = decode(self._buf)
                self._buf = self._buf[used:]
                out.extend(replies)
                left = deadline - time.time()
                if left <= 0:
                    break
                self.sock.settimeout(left)
                try:
                    self._receive()
                except socket.timeout:
                    break
        except (OSError, socket.error) as exc:
            self.close()
            raise RespConnectionError("%s:%s: %s" % (self.host, self.port, exc))
        finally:
            if self.sock is not None:
                self.sock.settimeout(self.timeout)
        return out


def encode_reply(value):
    """Encode a decoded reply back to RESP (used by tests and to re-buffer replies)."""
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, RespError):
        return b"-" + str(value).encode("utf-8") + b"\r\n"
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b":" + str(value).encode() + b"\r\n"
    if isinstance(value, (list, tuple)):
        return b"*" + str(len(value)).encode() + b"\r\n" + b"".join(encode_reply(v) for v in value)
    data = _to_bytes(value)
    return b"$" + str(len(data)).encode() + b"\r\n" + data + b"\r\n"


def parse_info(text):
    """Parse an INFO reply into {field: value} (sections flattened, numbers kept as strings)."""
    out = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        out[key] = value
    return out
