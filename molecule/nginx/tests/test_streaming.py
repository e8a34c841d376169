"""Long-lived routes through nginx (issue 19 point 3), as a client reaches them over HTTPS from
the client host: a WebSocket echo on the ``websocket: true`` location (/ws/, read_timeout 45s)
that stays open 60 s idle with pings and is closed without them, the same upgrade refused on a
location without ``websocket: true``, a streamed response (/stream/, ``streaming: true``) whose
chunks arrive as the backend sends them, and a reload during an open WebSocket and stream that
keeps both (the old worker drains them, bounded by nginx_worker_shutdown_timeout).

The client is a small stdlib script (TLS, HTTP/1.1, RFC 6455 frames) copied to the client
host; the backend's echo is Debian's python3-websockets (files/backend.py). The 60 s idle runs
in the background on the client host while the other checks run; the last test collects it.
"""

import base64
import json
import os
import sys
import time

import pytest
import testinfra

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.dirname(os.path.dirname(SCENARIO))
sys.path.insert(0, os.path.join(PROJECT, "molecule", "_shared"))
import verifier  # noqa: E402  (molecule/_shared/verifier.py)

LBS = verifier.group("loadbalancers", SCENARIO)
FRONT = {lb: verifier.management_address(lb, SCENARIO) for lb in LBS}
CLIENT = "nginx-client"
SCRIPT = "/tmp/hs-longlived.py"
IDLE_OUT = "/tmp/hs-longlived-idle.json"
IDLE_SECONDS = 60
PING_EVERY = 20  # below the /ws/ location's read_timeout (45s, molecule.yml)
STREAM_CHUNKS, STREAM_DELAY = 5, 1.0
BOUND_READY, BOUND_OUT = "/tmp/hs-bound-ready", "/tmp/hs-bound.json"
RELOAD = {}  # wall-clock time of the drain test's reload (client host clock)

CLIENT_SCRIPT = r'''
import base64, hashlib, json, os, socket, ssl, struct, sys, threading, time

CA = "/etc/hardened-stack/pki/ca.crt"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def tls(name, addr):
    ctx = ssl.create_default_context(cafile=CA)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx.wrap_socket(socket.create_connection((addr, 443), timeout=120), server_hostname=name)


class WS:
    def __init__(self, name, addr, path):
        self.s = tls(name, addr)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, name, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            c = self.s.recv(1)
            if not c:
                break
            head += c
        self.status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.accepted = self.status == 101 and ("sec-websocket-accept: " + accept).lower() in head.decode().lower()

    def send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0xFE]) + struct.pack("!H", n))
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            c = self.s.recv(n - len(buf))
            if not c:
                raise EOFError("connection closed")
            buf += c
        return buf

    def frame(self):
        b1, b2 = self._exact(2)
        n = b2 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._exact(8))[0]
        return b1 & 0x0F, self._exact(n)

    def expect(self, opcode):
        while True:
            op, data = self.frame()
            if op == 8:
                raise EOFError("close frame")
            if op == opcode:
                return data

    def echo(self, text):
        self.send(1, text.encode())
        return self.expect(1).decode()

    def ping(self):
        self.send(9, b"hs")
        return self.expect(10) == b"hs"


def attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except (OSError, EOFError, ValueError) as exc:
        return {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}


def idle(name, addr, seconds, ping_every):
    """Open /ws/, echo, stay idle `seconds` (pinging every `ping_every` s, 0: never), echo again."""
    t0 = time.monotonic()
    ws = WS(name, addr, "/ws/")
    out = {"status": ws.status, "accepted": ws.accepted, "first": attempt(lambda: ws.echo("before")), "pongs": 0}
    if not ping_every:
        # Silent: wait for the server side to close (seconds since the open), None if it did not.
        ws.s.settimeout(max(0.1, seconds - (time.monotonic() - t0)))
        try:
            ws.frame()
            out["closed_at"] = None
        except EOFError:
            out["closed_at"] = round(time.monotonic() - t0, 1)
        except (OSError, ValueError):
            out["closed_at"] = None
        ws.s.settimeout(120)
    while time.monotonic() - t0 < seconds:
        time.sleep(min(ping_every or seconds, max(0.0, seconds - (time.monotonic() - t0))))
        if ping_every and time.monotonic() - t0 < seconds:
            r = attempt(ws.ping)
            out["pongs"] += 1 if r["ok"] and r["value"] else 0
    out["after"] = attempt(lambda: ws.echo("after %d s idle" % seconds))
    out["idle_seconds"] = round(time.monotonic() - t0, 1)
    return out


def stream(name, addr, path, marker=None):
    """GET path over HTTPS/1.1 (accepting gzip, as browsers do); the arrival time of each chunk line."""
    s = tls(name, addr)
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
               % (path, name)).encode())
    t0, raw, seen = time.monotonic(), b"", {}
    while True:
        c = s.recv(65536)
        if not c:
            break
        raw += c
        for i in range(1, 100):
            if i not in seen and (b"chunk %d " % i) in raw:
                seen[i] = round(time.monotonic() - t0, 3)
                if marker and i == 1:
                    open(marker, "w").close()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return {"head": head, "arrivals": [seen[i] for i in sorted(seen)]}


def main():
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    if mode == "idle":
        jobs = {}
        threads = [threading.Thread(target=lambda k=k, a=a: jobs.__setitem__(k, idle(*a))) for k, a in args.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps(jobs))
    elif mode == "stream":
        print(json.dumps(stream(args["name"], args["addr"], args["path"])))
    elif mode == "refused":
        ws = WS(args["name"], args["addr"], args["path"])
        print(json.dumps({"status": ws.status, "accepted": ws.accepted}))
    elif mode == "bound":
        # A WebSocket opened before a reload, pinged every `ping_every` s (below read_timeout):
        # the wall-clock time the server side closed it, waiting at most `seconds`.
        t0 = time.monotonic()
        ws = WS(args["name"], args["addr"], "/ws/")
        out = {"accepted": ws.accepted, "first": attempt(lambda: ws.echo("before")), "closed": None}
        open(args["ready"], "w").close()
        while time.monotonic() - t0 < args["seconds"] and out["closed"] is None:
            ws.s.settimeout(args["ping_every"])
            try:
                ws.frame()
            except socket.timeout:
                ws.s.settimeout(30)
                if not attempt(ws.ping)["ok"]:
                    out["closed"] = time.time()
            except (EOFError, OSError, ValueError):
                out["closed"] = time.time()
        print(json.dumps(out))
    elif mode == "drain":
        # An open WebSocket and a stream; after the first chunk, `ready` exists; the caller reloads
        # nginx and creates `go`; then the WebSocket must still echo and the stream must finish.
        ws = WS(args["name"], args["addr"], "/ws/")
        out = {"accepted": ws.accepted, "before": attempt(lambda: ws.echo("before reload"))}
        box = {}
        t = threading.Thread(target=lambda: box.update(stream(args["name"], args["addr"], args["path"],
                                                              marker=args["ready"])))
        t.start()
        deadline = time.monotonic() + 60
        while not os.path.exists(args["go"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        out["after"] = attempt(lambda: ws.echo("after reload"))
        t.join()
        out["stream"] = box
        print(json.dumps(out))


main()
'''


def host(name):
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)


def client_run(mode, args):
    res = host(CLIENT).run(f"python3 {SCRIPT} {mode} '{json.dumps(args)}'")
    assert res.rc == 0, res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module", autouse=True)
def client_script():
    encoded = base64.b64encode(CLIENT_SCRIPT.encode()).decode()
    res = host(CLIENT).run(f"echo {encoded} | base64 -d > {SCRIPT} && rm -f {IDLE_OUT}")
    assert res.rc == 0, res.stderr


def test_reload_keeps_an_open_websocket_and_stream_until_done():
    """Drain: nginx reloads (what every configuration change and the rolling restart's drain do)
    while a WebSocket and a stream are open on lb1; the old worker keeps both ("shutting down")
    and they finish; new connections already go to the new workers."""
    lb = LBS[0]
    ready, go, out = "/tmp/hs-drain-ready", "/tmp/hs-drain-go", "/tmp/hs-drain.json"
    client = host(CLIENT)
    client.run(f"rm -f {ready} {go} {out}")
    args = {"name": lb, "addr": FRONT[lb], "path": "/stream/?n=8&delay=1", "ready": ready, "go": go}
    res = client.run(f"nohup python3 {SCRIPT} drain '{json.dumps(args)}' > {out} 2>&1 < /dev/null &")
    assert res.rc == 0, res.stderr
    assert verifier.wait(lambda: client.file(ready).exists, timeout=30, step=0.2), client.run(f"cat {out}").stdout
    # A second WebSocket, kept alive by pings, must outlive the drain until the bound
    # (nginx_worker_shutdown_timeout): collected by the last test.
    bound = {"name": lb, "addr": FRONT[lb], "ready": BOUND_READY, "ping_every": 10, "seconds": 150}
    client.run(f"rm -f {BOUND_READY} {BOUND_OUT}")
    res = client.run(f"nohup python3 {SCRIPT} bound '{json.dumps(bound)}' > {BOUND_OUT} 2>&1 < /dev/null &")
    assert res.rc == 0, res.stderr
    assert verifier.wait(lambda: client.file(BOUND_READY).exists, timeout=30, step=0.2), client.run(
        f"cat {BOUND_OUT}"
    ).stdout
    lbh = host(lb)
    before = lbh.run("pgrep -f 'nginx: worker process$'").stdout.split()
    RELOAD["at"] = float(client.run("date +%s.%N").stdout)
    assert lbh.run("systemctl reload nginx.service").rc == 0
    # The reload replaced the workers; the old one holding the open connections is draining.
    assert verifier.wait(
        lambda: "worker process is shutting down" in lbh.run("ps -eo args").stdout, timeout=10, step=0.2
    ), lbh.run("ps -eo pid,args").stdout
    after = lbh.run("pgrep -f 'nginx: worker process$'").stdout.split()
    assert after and not set(after) & set(before), (before, after)
    client.run(f"touch {go}")
    assert verifier.wait(lambda: client.run(f"test -s {out} && grep -q stream {out}").rc == 0, timeout=30, step=0.5), (
        client.run(f"cat {out}").stdout
    )
    got = json.loads(client.file(out).content_string)
    assert got["accepted"] and got["before"] == {"ok": True, "value": "before reload"}, got
    assert got["after"] == {"ok": True, "value": "after reload"}, got
    assert len(got["stream"]["arrivals"]) == 8, got["stream"]


def test_start_the_idle_websockets():
    """Start, in the background, one WebSocket per load balancer that pings every 20 s and one
    that never pings; both stay idle 60 s (collected by the last test)."""
    args = {}
    for lb in LBS:
        args[f"{lb} ping"] = [lb, FRONT[lb], IDLE_SECONDS, PING_EVERY]
        args[f"{lb} silent"] = [lb, FRONT[lb], IDLE_SECONDS, 0]
    res = host(CLIENT).run(f"nohup python3 {SCRIPT} idle '{json.dumps(args)}' > {IDLE_OUT} 2>&1 < /dev/null &")
    assert res.rc == 0, res.stderr


@pytest.mark.parametrize(
    "extra,message",
    [
        (
            {"nginx_sites": [{"name": "shop", "locations": [{"path": "/"}, {"path": "/ws/", "websocket": "yes"}]}]},
            "site 'shop' location #1: websocket must be true or false, got 'yes'",
        ),
        (
            {"nginx_sites": [{"name": "shop", "locations": [{"path": "/stream/", "read_timeout": "1.5m"}]}]},
            "site 'shop' location #0: read_timeout '1.5m' must be an nginx duration",
        ),
        ({"nginx_worker_shutdown_timeout": "soon"}, "nginx_worker_shutdown_timeout 'soon' must be an nginx duration"),
    ],
    ids=["websocket-not-bool", "read-timeout-fraction", "drain-bound-not-duration"],
)
def test_bad_long_lived_input_stops_in_preflight(extra, message):
    """Runs while the idle WebSockets wait (preflight changes nothing, so they are undisturbed)."""
    lb = host(LBS[0])
    before = lb.run("find /etc/nginx -type f -exec sha256sum {} + | sort").stdout
    rc, out = verifier.playbook("apply.yml", "--limit", LBS[0], "-e", json.dumps(extra), cwd=SCENARIO, timeout=600)
    assert rc != 0 and message in out, out
    row = verifier.recap(out)[LBS[0]]
    assert row["failed"] == 1 and row["changed"] == 0, row
    assert lb.run("find /etc/nginx -type f -exec sha256sum {} + | sort").stdout == before


@pytest.mark.parametrize("lb", LBS)
def test_streamed_chunks_arrive_as_the_backend_sends_them(lb):
    """/stream/ (streaming: true): chunk i leaves the backend (i-1) * delay after the first;
    each reaches the client spread out the same way, not all together at the end (the client
    accepts gzip, which would otherwise hold them back)."""
    got = client_run("stream", {"name": lb, "addr": FRONT[lb], "path": f"/stream/?n={STREAM_CHUNKS}&delay=1"})
    arrivals = got["arrivals"]
    assert got["head"].startswith("HTTP/1.1 200"), got["head"]
    assert "content-encoding" not in got["head"].lower(), got["head"]
    assert len(arrivals) == STREAM_CHUNKS, got
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    # Buffered delivery would put every chunk at the end (gaps near 0); each gap is about the
    # backend's delay.
    assert all(gap > STREAM_DELAY / 2 for gap in gaps), arrivals
    assert arrivals[-1] - arrivals[0] > (STREAM_CHUNKS - 1) * STREAM_DELAY / 2, arrivals


@pytest.mark.parametrize("lb", LBS)
def test_upgrade_refused_on_a_location_without_websocket(lb):
    """/ws-refused/ falls under "/", which has no websocket: true: nginx sends Connection "" and
    no Upgrade, so the backend's WebSocket server refuses the handshake; /ws/ accepts it."""
    refused = client_run("refused", {"name": lb, "addr": FRONT[lb], "path": "/ws-refused/"})
    assert not refused["accepted"] and refused["status"] in (400, 426), refused
    accepted = client_run("refused", {"name": lb, "addr": FRONT[lb], "path": "/ws/"})
    assert accepted == {"status": 101, "accepted": True}, accepted


def test_idle_websocket_with_pings_survives_and_without_is_closed():
    """Collected after 60 s idle: the pinged WebSocket (pings every 20 s, below the location's
    45 s read_timeout) still echoes; the silent one was closed by nginx at its read_timeout,
    before the 60 s were over."""
    client = host(CLIENT)
    assert verifier.wait(
        lambda: client.run(f"test -s {IDLE_OUT} && grep -q idle_seconds {IDLE_OUT}").rc == 0,
        timeout=IDLE_SECONDS + 60,
        step=2,
    ), client.run(f"cat {IDLE_OUT}").stdout
    time.sleep(0.5)  # the whole JSON line is written at once; give the writer its newline
    got = json.loads(client.file(IDLE_OUT).content_string)
    for lb in LBS:
        ping, silent = got[f"{lb} ping"], got[f"{lb} silent"]
        for run in (ping, silent):
            assert run["accepted"] and run["first"] == {"ok": True, "value": "before"}, run
            assert run["idle_seconds"] >= IDLE_SECONDS, run
        assert ping["pongs"] >= IDLE_SECONDS // PING_EVERY - 1, ping
        assert ping["after"] == {"ok": True, "value": f"after {IDLE_SECONDS} s idle"}, ping
        assert not silent["after"]["ok"], silent
        # Closed by the location's read_timeout, before the idle time (and nginx_proxy_read_timeout,
        # also 60 s) was over.
        assert silent["closed_at"] is not None and silent["closed_at"] < IDLE_SECONDS, silent


def test_drain_is_bounded_by_worker_shutdown_timeout():
    """The WebSocket opened before the drain test's reload, pinged every 10 s (so read_timeout
    never fires), stayed open on the old worker and was closed when the old worker's
    worker_shutdown_timeout (nginx.conf) ran out, about that long after the reload."""
    lb = LBS[0]
    line = host(lb).run("grep -E '^worker_shutdown_timeout [0-9]+s;' /etc/nginx/nginx.conf").stdout.strip()
    assert line, "no worker_shutdown_timeout in seconds in nginx.conf"
    bound = int(line.split()[1].rstrip("s;"))
    client = host(CLIENT)
    assert "at" in RELOAD, "the drain test did not run"
    assert verifier.wait(
        lambda: client.run(f"grep -q closed {BOUND_OUT}").rc == 0,
        timeout=max(5, RELOAD["at"] + bound + 30 - time.time()),
        step=2,
    ), client.run(f"cat {BOUND_OUT}").stdout
    got = json.loads(client.file(BOUND_OUT).content_string)
    assert got["accepted"] and got["first"] == {"ok": True, "value": "before"}, got
    assert got["closed"] is not None, got
    held = got["closed"] - RELOAD["at"]
    # Held through the drain, closed by the bound (pings every 10 s: not by read_timeout).
    assert bound - 5 < held < bound + 15, (held, bound)
