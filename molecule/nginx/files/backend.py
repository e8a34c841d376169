"""Test backend of the nginx Molecule scenario (a fixture, not part of the collection).

Answers every GET with this host's name; /health with "ok"; /headers with the request headers
nginx passed (JSON); /conn with the peer address:port of the connection (upstream keepalive
reuses it); /big with 4 KiB of text (gzip); /stream/?n=5&delay=1 with n chunks (chunked
transfer encoding), one every delay seconds, each "chunk <i>" (streaming through nginx);
/ws... is a WebSocket echo (with --ws-port): the request is spliced to a loopback listener run by
Debian's python3-websockets in this process, which does the handshake (426 when the Upgrade
did not reach it) and echoes every message. HTTP/1.1 with keep-alive.
"""

import argparse
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NAME = socket.gethostname()


def _pump(src, dst):
    """Copy bytes until src ends, then end dst's writing side."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve_websocket_echo(port):
    """The WebSocket echo on 127.0.0.1:port (python3-websockets), in a thread of its own. The
    server sends no pings: only the client's pings (or messages) keep an idle connection alive
    through nginx's proxy_read_timeout."""
    import asyncio

    import websockets

    async def echo(ws, path=None):
        async for message in ws:
            await ws.send(message)

    async def run():
        async with websockets.serve(echo, "127.0.0.1", port, ping_interval=None):
            await asyncio.Future()

    threading.Thread(target=asyncio.run, args=(run(),), daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hs-backend"
    ws_port = 0  # loopback port of the WebSocket echo (--ws-port); 0: none

    def _send(self, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _splice_to_websocket(self):
        """Hand the request, as received, and then the connection to the WebSocket listener."""
        upstream = socket.create_connection(("127.0.0.1", self.ws_port))
        head = self.requestline + "\r\n" + "".join("%s: %s\r\n" % kv for kv in self.headers.items()) + "\r\n"
        upstream.sendall(head.encode("latin-1"))
        other = threading.Thread(target=_pump, args=(self.connection, upstream), daemon=True)
        other.start()
        _pump(upstream, self.connection)
        other.join()
        upstream.close()
        self.close_connection = True

    def _stream(self, query):
        count = min(int(query.get("n", ["5"])[0]), 60)
        delay = min(float(query.get("delay", ["1"])[0]), 10.0)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(1, count + 1):
            data = ("chunk %d %s\n" % (i, NAME)).encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            if i < count:
                time.sleep(delay)
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self):  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        path = url.path
        if self.ws_port and path.startswith("/ws") and self.command == "GET":
            self._splice_to_websocket()
        elif path.startswith("/stream/") and self.command == "GET":
            self._stream(parse_qs(url.query))
        elif path == "/health":
            self._send("ok\n")
        elif path == "/headers":
            self._send(json.dumps(dict(self.headers.items())), "application/json")
        elif path == "/conn":
            self._send("%s %s:%d\n" % (NAME, self.client_address[0], self.client_address[1]))
        elif path == "/big":
            self._send(("%s " % NAME) * 1024)
        else:
            self._send(NAME + "\n")

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ws-port", type=int, default=0, help="loopback port of the WebSocket echo (0: none)")
    args = parser.parse_args()
    if args.ws_port:
        Handler.ws_port = args.ws_port
        serve_websocket_echo(args.ws_port)
    ThreadingHTTPServer((args.bind, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
