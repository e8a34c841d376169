"""Stand-in for the stack's services in the firewall scenario: accept and close on each port."""
import selectors
import socket
import sys

sel = selectors.DefaultSelector()
for port in sys.argv[1:]:
    # every address: the firewall, not the bind address, decides who gets through
    for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):  # noqa: S104
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((addr, int(port)))
        except OSError:
            continue  # e.g. sshd already holds 22
        sock.listen(64)
        sel.register(sock, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        conn = key.fileobj.accept()[0]
        conn.close()
