"""More delivery processes beside the server's own delivery worker (`[delivery] processes`).

A delivery worker is one event loop: the Python work of a post whose members each get their
own copy (VERP, one-click lines) fills one CPU core. The server starts `count - 1` more
processes (`python -m listmgr.service --delivery INDEX COUNT SMTP_PORT`, the configuration
on stdin), each running a DeliveryWorker with its part of the connection limits. They take
work from the outbound queue by the same claims and leases as the server's worker (a
recipient is claimed by one of them), so nothing is shared but the store. A process that
dies is started again (its claims are taken back at once by the new one, as a restarted
server takes back those of its dead predecessor); the server stops them at its own stop.

They are not told when mail is queued: an idle one looks at the queue every
`poll_interval` (the server's own worker is woken at once, so a reply never waits for one).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from typing import Any

from listmgr.config import Config
from listmgr.children import remove_tmp_of, send_config, status_text

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # seconds for a delivery process to be running
STEADY = 10.0  # a process that ran this long is started again at once when it dies
MAX_BACKOFF = 30.0


class _Child:
    def __init__(self, index: int):
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.started = 0.0
        self.quick_deaths = 0
        self.ready = False


class DeliveryProcesses:
    """The server's component that starts, restarts and stops the extra delivery
    processes."""

    def __init__(self, service: Any, count: int):
        self.service = service
        self.count = count
        self.children = [_Child(i) for i in range(1, count)]
        self._watchers: list[asyncio.Task] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """The delivery processes running now."""
        return [c.proc.pid for c in self.children if c.proc is not None and c.ready]

    async def start(self) -> None:
        self._stopping = False
        await asyncio.gather(*(self._spawn(c) for c in self.children))
        self._watchers = [asyncio.create_task(self._watch(c), name=f"delivery-process-{c.index}")
                          for c in self.children]
        log.info("delivering in %d processes: this one (pid %d) and %s", self.count,
                 os.getpid(), ",".join(str(c.proc.pid) for c in self.children if c.proc))

    async def _spawn(self, c: _Child) -> None:
        port = self.service.ports.get("smtp") or 0
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "listmgr.service", "--delivery", str(c.index),
            str(self.count), str(port), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        c.proc, c.started, c.ready = proc, time.monotonic(), False
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(send_config(self.service.config))
        await proc.stdin.drain()  # stdin stays open: its end tells the process we are gone
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except asyncio.TimeoutError:
            line = b""
        if line.strip() == b"ready":
            c.ready = proc.returncode is None
        else:
            log.error("delivery process %d (pid %d) did not start", c.index, proc.pid)
            if proc.returncode is None:
                proc.kill()

    async def _watch(self, c: _Child) -> None:
        while True:
            proc = c.proc
            assert proc is not None
            code = await proc.wait()
            c.ready = False
            if self._stopping:
                return
            # returned mail it was writing to the spool when it died
            await asyncio.to_thread(remove_tmp_of, self.service.config.data_path, proc.pid)
            ran = time.monotonic() - c.started
            c.quick_deaths = 0 if ran >= STEADY else c.quick_deaths + 1
            delay = 0.0 if c.quick_deaths <= 1 else min(MAX_BACKOFF, 2.0 ** c.quick_deaths)
            log.warning("delivery process %d (pid %d) exited with %s after %.1fs; starting "
                        "another%s", c.index, proc.pid, status_text(code), ran,
                        f" in {delay:.0f}s" if delay else "")
            if delay:
                await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._spawn(c)
            except Exception:
                log.exception("delivery process %d could not be started", c.index)
                c.started = time.monotonic()
                await asyncio.sleep(MAX_BACKOFF)

    def forward_signal(self, sig: int) -> None:
        for c in self.children:
            if c.proc is not None and c.proc.returncode is None:
                c.proc.send_signal(sig)

    async def stop(self) -> None:
        """SIGTERM: each finishes the transactions it has on the wire and records them (at
        most the SMTP timeout), then exits."""
        self._stopping = True
        for c in self.children:
            if c.proc is not None and c.proc.returncode is None:
                c.proc.send_signal(signal.SIGTERM)
        wait = self.service.config.delivery.timeout + 10
        for c in self.children:
            if c.proc is None:
                continue
            try:
                await asyncio.wait_for(c.proc.wait(), wait)
            except asyncio.TimeoutError:
                log.warning("delivery process %d (pid %d) did not stop; killed", c.index,
                            c.proc.pid)
                c.proc.kill()
                await c.proc.wait()
        for t in self._watchers:
            t.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []


# ---------------------------------------------------------------- in the delivery process

async def run(config: Config, index: int, count: int, smtp_port: int, *,
              on_hup: Any = None) -> None:
    """Deliver until SIGTERM or the server's end of stdin closes; then finish the
    transactions on the wire and stop."""
    from listmgr.app import App
    from listmgr.delivery.worker import DeliveryWorker
    loop = asyncio.get_running_loop()
    app = App.from_config(config)
    app.loop = loop
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
            log.warning("delivery process %d: the server is gone; stopping", index)
            stop.set()

    loop.add_reader(0, parent_gone)
    worker = DeliveryWorker(app, local_port=(lambda: smtp_port) if smtp_port else None,
                            part=(index, count))
    await worker.start()
    try:
        log.info("delivery process %d (pid %d) delivering", index, os.getpid())
        os.write(1, b"ready\n")
        await stop.wait()
    finally:
        await worker.stop()
        app.store.dispose()
