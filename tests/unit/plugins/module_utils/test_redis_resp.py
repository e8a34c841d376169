"""RESP encoding/decoding and the pure Sentinel helpers (no network: a socket pair stands in
for the server)."""

import socket
import time

import pytest

from ansible_collections.hardened.stack.plugins.module_utils import redis_sentinel as rs
from ansible_collections.hardened.stack.plugins.module_utils import resp


def test_encode_command():
    assert resp.encode("SET", "k", "v") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert resp.encode("EXPIRE", "k", 10) == b"*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n10\r\n"
    assert resp.encode("SET", "k", "é") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n"
    assert resp.encode("SET", "k", b"a\r\nb") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n"
    with pytest.raises(ValueError):
        resp.encode()


@pytest.mark.parametrize("raw, value", [
    (b"+OK\r\n", "OK"),
    (b":42\r\n", 42),
    (b":-1\r\n", -1),
    (b"$5\r\nhello\r\n", "hello"),
    (b"$0\r\n\r\n", ""),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*2\r\n$1\r\na\r\n:1\r\n", ["a", 1]),
    (b"*2\r\n*1\r\n+x\r\n$4\r\na\r\nb\r\n", [["x"], "a\r\nb"]),
])
def test_decode_values(raw, value):
    replies, used = resp.decode(raw)
    assert replies == [value]
    assert used == len(raw)


def test_decode_error_reply_is_returned_not_raised():
    replies, used = resp.decode(b"-NOPERM this user has no permissions\r\n")
    assert used == 38
    assert isinstance(replies[0], resp.RespError)
    assert str(replies[0]).startswith("NOPERM")


def test_decode_incomplete_and_several():
    raw = b"+OK\r\n$5\r\nhel"
    replies, used = resp.decode(raw)
    assert replies == ["OK"] and used == 5
    replies, used = resp.decode(b"+A\r\n+B\r\n*1\r\n:1")
    assert replies == ["A", "B"] and used == 8


@pytest.mark.parametrize("raw", [b"?x\r\n", b":abc\r\n", b"$3\r\nabcd\r\n", b"*x\r\n"])
def test_decode_rejects_garbage(raw):
    with pytest.raises(resp.RespProtocolError):
        resp.decode(raw)


def test_roundtrip_encode_reply():
    value = ["a", 1, None, ["b", ""]]
    assert resp.decode(resp.encode_reply(value))[0] == [value]


def test_messages_pushed_by_the_server():
    """Pub/Sub: replies the server sends on its own, a message split across reads kept whole,
    the connection usable after the wait ran out."""
    ours, server = socket.socketpair()
    client = resp.RespClient(timeout=2)
    client.sock = ours
    try:
        with client:  # already connected: not connected again
            assert client.sock is ours
            message = resp.encode_reply(["pmessage", "*", "+sdown", "master main 127.0.0.1 6379"])
            server.sendall(resp.encode_reply(["psubscribe", "*", 1]) + message[:9])
            started = time.time()
            assert client.messages(0.3) == [["psubscribe", "*", 1]]
            assert 0.25 <= time.time() - started < 2
            server.sendall(message[9:] + b"-ERR in a push\r\n")
            got = client.messages(0.2)
            assert got[0] == ["pmessage", "*", "+sdown", "master main 127.0.0.1 6379"]
            assert isinstance(got[1], resp.RespError) and len(got) == 2
            assert client.sock.gettimeout() == 2
            server.sendall(resp.encode_reply(["pong", ""]))
            assert client.execute("PING") == ["pong", ""]
            assert server.recv(100) == resp.encode("PING")
            server.close()
            with pytest.raises(resp.RespConnectionError, match="closed the connection"):
                client.messages(1)
        assert client.sock is None
    finally:
        server.close()


def test_pairs_and_info():
    assert resp.pairs_to_dict(["a", "1", "b", "2"]) == {"a": "1", "b": "2"}
    assert resp.pairs_to_dict(None) == {}
    with pytest.raises(resp.RespProtocolError):
        resp.pairs_to_dict(["a"])
    info = resp.parse_info("# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\nx:a:b\r\n")
    assert info == {"role": "slave", "master_host": "10.0.0.1", "x": "a:b"}


MASTER = ["name", "main", "ip", "172.30.26.11", "port", "6379", "flags", "master",
          "num-slaves", "2", "num-other-sentinels", "2", "quorum", "2",
          "down-after-milliseconds", "30000", "failover-timeout", "180000", "parallel-syncs", "1"]


def test_parse_entry_types_and_flags():
    entry = rs.parse_entry(MASTER)
    assert entry["port"] == 6379 and entry["quorum"] == 2 and entry["flags"] == ["master"]
    replica = rs.parse_entry(["ip", "10.0.0.2", "port", "6379", "flags", "slave,s_down,disconnected",
                              "master-link-status", "err", "slave-priority", "100", "master-host", "10.0.0.1"])
    summary = rs.summarise_replica(replica)
    assert summary["down"] is True and summary["replica_priority"] == 100
    assert summary["master_link_status"] == "err" and summary["master_host"] == "10.0.0.1"
    assert summary["flags"] == ["slave", "s_down", "disconnected"]
    assert rs.parse_entries([MASTER, MASTER])[1]["name"] == "main"
    assert rs.summarise_sentinel(rs.parse_entry(["ip", "x", "port", "26379", "flags", "sentinel"]))["down"] is False


def test_settings_diff_only_what_differs():
    current = rs.parse_entry(MASTER)
    wanted = rs.normalise_settings({"down_after_milliseconds": 5000, "failover-timeout": "60000",
                                    "parallel-syncs": 1, "quorum": 2})
    changes, before, after = rs.settings_diff(current, wanted)
    assert changes == [("down-after-milliseconds", 5000), ("failover-timeout", 60000)]
    assert before["down-after-milliseconds"] == 30000 and after["failover-timeout"] == 60000
    current.update({"down-after-milliseconds": 5000, "failover-timeout": 60000})
    assert rs.settings_diff(current, wanted)[0] == []


def test_settings_write_only_and_unreported():
    current = rs.parse_entry(MASTER)
    wanted = rs.normalise_settings({"auth-pass": "s3cret", "master-reboot-down-after-period": 0})
    assert rs.settings_diff(current, wanted)[0] == []
    changes, before, after = rs.settings_diff(current, wanted, write_only_always=True)
    assert ("auth-pass", "s3cret") in changes
    assert after["auth-pass"] == "********" and "s3cret" not in str(before) + str(after)


@pytest.mark.parametrize("bad", [{"no-such": 1}, {"quorum": 0}, {"quorum": "two"}, {"parallel-syncs": True}])
def test_settings_rejected(bad):
    with pytest.raises(rs.SentinelSettingsError):
        rs.normalise_settings(bad)


def test_ckquorum_and_quorum():
    ok = rs.parse_ckquorum(True, "OK 3 usable Sentinels. Quorum and failover authorization can be reached")
    assert ok == {"ok": True, "usable_sentinels": 3,
                  "message": "OK 3 usable Sentinels. Quorum and failover authorization can be reached"}
    bad = rs.parse_ckquorum(False, "NOQUORUM 1 usable Sentinels. Not enough available Sentinels")
    assert bad["ok"] is False and bad["usable_sentinels"] == 1
    assert [rs.default_quorum(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    with pytest.raises(ValueError):
        rs.default_quorum(0)


@pytest.mark.parametrize("files", [
    {"ca_file": "/nonexistent/ca.crt"},
    {"cert_file": "/nonexistent/client.crt", "key_file": "/nonexistent/client.key"},
])
def test_unreadable_tls_files_are_a_connection_error_naming_the_file(files):
    """A missing CA or client certificate is reported as such (the modules turn it into a
    failed task), not a traceback, and no socket is opened for it."""
    client = resp.RespClient(host="127.0.0.1", port=1, timeout=1, tls=True, **files)
    with pytest.raises(resp.RespConnectionError, match="/nonexistent/") as err:
        client.connect()
    assert "cannot connect" not in str(err.value)
    assert client.sock is None
