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
import signal
import socket
import sys
import time
from types import SimpleNamespace
from typing import Any

from listmgr.app import App
from listmgr.config import Config
from listmgr.children import remove_tmp_of, send_config, status_text
from listmgr.smtp import link
from listmgr.smtp.server import Listener

log = logging.getLogger("listmgr.smtp")

START_TIMEOUT = 60.0  # seconds for an acceptor to be accepting
STOP_TIMEOUT = 30.0  # seconds for an acceptor to finish after SIGTERM, then SIGKILL
STEADY = 10.0  # an acceptor that ran this long is restarted at once when it dies
MAX_BACKOFF = 30.0
FLUSH_EVERY = 0.5  # seconds between counter datagrams


class Acceptor:
    """One acceptor process as the server sees it."""

    def __init__(self, index: int):
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.link: socket.socket | None = None
        self.started = 0.0
        self.quick_deaths = 0
        self.served = 0  # processes started in this slot
        self.ready = False  # accepting

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class Acceptors:
    """The server's component that starts, restarts and stops the acceptor processes."""

    def __init__(self, service: Any, listener: Listener):
        self.service = service
        self.listener = listener
        self.count = max(0, service.config.smtp.process_count - 1)
        self.acceptors = [Acceptor(i + 1) for i in range(self.count)]
        self._watchers: list[asyncio.Task] = []
        self._stopping = False

    async def start(self) -> None:
        if not self.count:
            return
        self._stopping = False
        await asyncio.gather(*(self._spawn(a) for a in self.acceptors))
        self._watchers = [asyncio.create_task(self._watch(a), name=f"smtp-acceptor-{a.index}")
                          for a in self.acceptors]
        log.info("SMTP accepting in %d processes: this one (pid %d) and acceptors %s",
                 self.count + 1, os.getpid(), ",".join(str(a.pid) for a in self.acceptors))

    @property
    def pids(self) -> list[int]:
        """The acceptor processes that are accepting now."""
        return [a.proc.pid for a in self.acceptors if a.proc is not None and a.ready]

    async def _spawn(self, a: Acceptor) -> None:
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
        a.proc, a.link, a.started, a.ready = proc, server_end, time.monotonic(), False
        a.served += 1
        end = link.ServerEnd(server_end, self.service.app.notify)
        loop.add_reader(server_end.fileno(), end.on_readable)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(send_config(self.service.config))
        await proc.stdin.drain()  # stdin stays open: its end tells the acceptor we are gone
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except asyncio.TimeoutError:
            line = b""
        if line.strip() == b"ready":
            a.ready = proc.returncode is None
        else:
            log.error("SMTP acceptor %d (pid %d) did not start", a.index, proc.pid)
            if proc.returncode is None:
                proc.kill()

    def _forget(self, a: Acceptor) -> None:
        if a.link is not None:
            try:
                asyncio.get_running_loop().remove_reader(a.link.fileno())
            except (ValueError, RuntimeError):
                pass
            # what it sent last (its final counters) is still queued: read it first
            link.ServerEnd(a.link, self.service.app.notify).on_readable()
            a.link.close()
            a.link = None

    async def _watch(self, a: Acceptor) -> None:
        while True:
            proc = a.proc
            assert proc is not None
            code = await proc.wait()
            a.ready = False
            self._forget(a)
            if self._stopping:
                return
            # what it was writing to the spool when it died (names carry the writer's pid)
            await asyncio.to_thread(remove_tmp_of, self.service.config.data_path, proc.pid)
            ran = time.monotonic() - a.started
            a.quick_deaths = 0 if ran >= STEADY else a.quick_deaths + 1
            delay = 0.0 if a.quick_deaths <= 1 else min(MAX_BACKOFF, 2.0 ** a.quick_deaths)
            log.warning("SMTP acceptor %d (pid %d) exited with %s after %.1fs; starting "
                        "another%s", a.index, proc.pid, status_text(code), ran,
                        f" in {delay:.0f}s" if delay else "")
            if delay:
                await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._spawn(a)
            except Exception:
                log.exception("SMTP acceptor %d could not be started", a.index)
                a.started = time.monotonic()
                await asyncio.sleep(MAX_BACKOFF)

    def forward_signal(self, sig: int) -> None:
        for a in self.acceptors:
            if a.proc is not None and a.proc.returncode is None:
                a.proc.send_signal(sig)

    async def stop(self) -> None:
        self._stopping = True
        for a in self.acceptors:
            if a.proc is not None and a.proc.returncode is None:
                a.proc.send_signal(signal.SIGTERM)
        for a in self.acceptors:
            if a.proc is None:
                continue
            try:
                await asyncio.wait_for(a.proc.wait(), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                log.warning("SMTP acceptor %d (pid %d) did not stop; killed", a.index,
                            a.proc.pid)
                a.proc.kill()
                await a.proc.wait()
        for t in self._watchers:
            t.cancel()
        for t in self._watchers:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self._watchers = []
        for a in self.acceptors:
            self._forget(a)


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
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if on_hup is not None:
        loop.add_signal_handler(signal.SIGHUP, on_hup)  # the server forwards its SIGHUP
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides (a terminal's ^C)

    def parent_gone() -> None:
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            log.warning("SMTP acceptor %d: the server is gone; stopping", index)
            stop.set()

    loop.add_reader(0, parent_gone)
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
