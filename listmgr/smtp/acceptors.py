"""SMTP acceptor processes: `[smtp] processes = N` runs the SMTP listener in N processes
(the default, "auto", is one per CPU core the server may run on: config.cpu_cores).

One Python process spends its CPU on one core (the GIL): aiosmtpd's per-connection and
per-command work, the spool writes and the store's statements of every session. With N > 1
`listmgr serve` starts N-1 acceptor processes (`python -m listmgr.service --acceptor`, a
fresh interpreter: a running event loop is never forked) that inherit the server's
listening socket and accept from it too; the kernel hands each new connection to whichever
process calls accept first, so a busy process leaves them to an idle one. Each acceptor
has its own App (store engine, spool, thread pool) and its own group commit: a message is
in the spool and committed to the store before its 250, exactly as in the server. It runs
no worker; what it accepts wakes the server's inbound workers through a datagram
(smtp/link.py), which also carries its counters for /metrics. On SQLite the processes'
write transactions queue on one flock (store/writerlock.py).

The server supervises them: an acceptor that dies is started again (at once, then backing
off if it keeps dying) and its half-written spool files are removed; stopping the server stops them (SIGTERM: they stop accepting and
finish the group commit in flight); and an acceptor whose server is gone (killed, even
with SIGKILL) sees its stdin pipe close and stops by itself.

What stays per process: the connection caps (`max_connections`, `max_data_sessions` and
their per-IP forms count the connections of one process; with N processes a client can
hold up to N times as many) and the delay after failed SMTP AUTH logins. POP-before-SMTP
grants and the rate limits are in the store, shared by all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from types import SimpleNamespace
from typing import Any

from listmgr.app import App
from listmgr.config import Config
from listmgr.children import Child, Supervisor, stop_event
from listmgr.smtp import link
from listmgr.smtp.server import Listener

log = logging.getLogger("listmgr.smtp")

STOP_TIMEOUT = 30.0  # seconds for an acceptor to finish after SIGTERM, then SIGKILL
FLUSH_EVERY = 0.5  # seconds between counter datagrams


class Acceptor(Child):
    """One acceptor process as the server sees it."""

    def __init__(self, index: int):
        super().__init__(index)
        self.link: socket.socket | None = None


class Acceptors(Supervisor):
    """The server's component that starts, restarts and stops the acceptor processes."""

    def __init__(self, service: Any, listener: Listener):
        self.service = service
        self.listener = listener
        self.count = max(0, service.config.smtp.process_count - 1)
        self.acceptors = [Acceptor(i + 1) for i in range(self.count)]
        super().__init__("SMTP acceptor", service.config.data_path, self.acceptors,
                         logger=log, stop_timeout=STOP_TIMEOUT)

    async def start(self) -> None:
        if not self.count:
            return
        await self.start_children()
        log.info("SMTP accepting in %d processes: this one (pid %d) and acceptors %s",
                 self.count + 1, os.getpid(), ",".join(str(a.pid) for a in self.acceptors))

    async def spawn(self, a: Acceptor) -> None:
        loop = asyncio.get_running_loop()
        server_end, acceptor_end = link.pair()
        listen_fd = self.listener.fileno()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "listmgr.service", "--acceptor", str(a.index),
                str(listen_fd), str(acceptor_end.fileno()),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                pass_fds=(listen_fd, acceptor_end.fileno()))
        finally:
            acceptor_end.close()
        a.link = server_end
        end = link.ServerEnd(server_end, self.service.app.notify)
        loop.add_reader(server_end.fileno(), end.on_readable)
        await self.ready(a, proc, self.service.config)

    def forget(self, a: Acceptor) -> None:
        if a.link is not None:
            try:
                asyncio.get_running_loop().remove_reader(a.link.fileno())
            except (ValueError, RuntimeError):
                pass
            # what it sent last (its final counters) is still queued: read it first
            link.ServerEnd(a.link, self.service.app.notify).on_readable()
            a.link.close()
            a.link = None


# ---------------------------------------------------------------- in the acceptor process

async def serve(config: Config, index: int, listen_fd: int, link_fd: int, *,
                on_hup: Any = None) -> None:
    """Accept SMTP on the inherited socket until SIGTERM or the server's end of stdin
    closes; then stop accepting and let the group commit in flight finish."""
    loop = asyncio.get_running_loop()
    app = App.from_config(config)
    app.loop = loop
    end = link.AcceptorEnd(socket.socket(fileno=link_fd))
    host = SimpleNamespace(config=config, app=app, ports={})
    sock = socket.socket(fileno=listen_fd)
    sock.setblocking(False)
    listener = Listener(host, "smtp", config.smtp.listen, sock=sock)
    listener.handler.wake = end.wake
    stop = stop_event("SMTP acceptor", index, on_hup=on_hup, logger=log)
    await listener.start()
    log.info("SMTP acceptor %d (pid %d) accepting", index, os.getpid())
    os.write(1, b"ready\n")

    async def flush() -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            end.flush()

    flusher = asyncio.create_task(flush())
    try:
        await stop.wait()
    finally:
        flusher.cancel()
        await listener.stop()
        end.close()
        app.store.dispose()
    log.info("SMTP acceptor %d (pid %d) stopped", index, os.getpid())
