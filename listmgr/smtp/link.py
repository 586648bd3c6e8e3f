"""What an SMTP acceptor process (smtp/acceptors.py) tells the server that started it, over
a Unix datagram socket pair: which inbound workers to wake, and its counters.

An acceptor commits what it accepts to the store itself; the datagrams only spare the
server's workers their poll interval and keep /metrics whole. They are hints: one lost
(the server's socket buffer full) delays a wake-up until the next poll, nothing else.

    b"w" + name          wake the workers waiting on `name` (e.g. "inbound:local")
    b"m" + JSON          counter increments: [[family, labels, amount], ...]
"""

from __future__ import annotations

import json
import logging
import socket
from typing import Any, Callable

from prometheus_client import Counter

from listmgr import metrics

log = logging.getLogger("listmgr.smtp")

# The counters an acceptor increments, by family name.
COUNTERS: dict[str, Counter] = {c._name: c for c in
                                (metrics.ACCEPTED, metrics.REFUSED, metrics.SMTP_AUTH)}
MAX_DATAGRAM = 60_000


def pair() -> tuple[socket.socket, socket.socket]:
    """(server end, acceptor end)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    return a, b


def _totals() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family, counter in COUNTERS.items():
        for metric in counter.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    out[(family, tuple(sorted(sample.labels.items())))] = sample.value
    return out


class AcceptorEnd:
    """The acceptor's end: wake(name) at once, counters sent by flush() (called often)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        sock.setblocking(False)
        self._sent: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def _send(self, data: bytes) -> bool:
        try:
            self.sock.send(data)
            return True
        except OSError:  # the buffer is full, or the server is gone: a hint lost
            return False

    def wake(self, name: str) -> None:
        self._send(b"w" + name.encode("ascii", "replace"))

    def flush(self) -> None:
        """Send what the counters gained since the last flush that arrived."""
        now = _totals()
        changes = [[family, dict(labels), value - self._sent.get((family, labels), 0.0)]
                   for (family, labels), value in now.items()
                   if value != self._sent.get((family, labels), 0.0)]
        if not changes:
            return
        data = b"m" + json.dumps(changes).encode()
        if len(data) <= MAX_DATAGRAM and self._send(data):
            self._sent = now

    def close(self) -> None:
        self.flush()
        self.sock.close()


class ServerEnd:
    """The server's end: read by its event loop; wakes its workers, adds the counters."""

    def __init__(self, sock: socket.socket, notify: Callable[[str], None]):
        self.sock = sock
        self.notify = notify

    def on_readable(self) -> None:
        for _ in range(256):  # what is queued now; the loop calls again for more
            try:
                data = self.sock.recv(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not data:
                return
            self.handle(data)

    def handle(self, data: bytes) -> None:
        kind, body = data[:1], data[1:]
        if kind == b"w":
            self.notify(body.decode("ascii", "replace"))
        elif kind == b"m":
            try:
                changes: Any = json.loads(body)
                for family, labels, amount in changes:
                    counter = COUNTERS.get(family)
                    if counter is not None and amount > 0:
                        counter.labels(**labels).inc(amount)
            except (ValueError, TypeError):
                log.warning("acceptor link: a counter datagram that does not parse")
