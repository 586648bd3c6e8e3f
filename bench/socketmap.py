"""Socketmap lookups per second against a running `listmgr serve` (`[maps] listen`): one
connection, as Postfix keeps one, alternating a known and an unknown address.

    python bench/socketmap.py 127.0.0.1:2526 demo-request@example.org [LOOKUPS] [RUNS]

Prints each run's rate and the median.
"""

from __future__ import annotations

import socket
import statistics
import sys
import time


def netstring(text: str) -> bytes:
    data = text.encode()
    return b"%d:%s," % (len(data), data)


def read_reply(sock: socket.socket) -> bytes:
    head = b""
    while not head.endswith(b":"):
        c = sock.recv(1)
        if not c:
            raise SystemExit("the server closed the connection")
        head += c
    n = int(head[:-1])
    body = b""
    while len(body) < n + 1:
        body += sock.recv(n + 1 - len(body))
    return body[:-1]


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    host, _, port = sys.argv[1].rpartition(":")
    known = sys.argv[2]
    domain = known.rpartition("@")[2]
    lookups = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    rates = []
    for _ in range(runs):
        with socket.create_connection((host, int(port)), timeout=30) as s:
            t0 = time.perf_counter()
            for i in range(lookups):
                key = known if i % 2 else f"nobody{i}@{domain}"
                s.sendall(netstring(f"rcpt {key}"))
                reply = read_reply(s)
                assert reply.startswith(b"OK " if i % 2 else b"NOTFOUND"), reply
            rates.append(lookups / (time.perf_counter() - t0))
    print("lookups/s per run:", " ".join(f"{r:.0f}" for r in rates))
    print(f"median: {statistics.median(rates):.0f} lookups/s")


if __name__ == "__main__":
    main()
