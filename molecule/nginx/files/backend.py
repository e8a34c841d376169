"""Test backend of the nginx Molecule scenario (a fixture, not part of the collection).

Answers every GET with this host's name; /health with "ok"; /headers with the request headers
nginx passed (JSON); /conn with the peer address:port of the connection (upstream keepalive
reuses it); /big with 4 KiB of text (gzip). HTTP/1.1 with keep-alive.
"""

import argparse
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = socket.gethostname()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hs-backend"

    def _send(self, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.path.split("?")[0]
        if path == "/health":
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
    args = parser.parse_args()
    ThreadingHTTPServer((args.bind, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
