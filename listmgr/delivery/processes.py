"""More delivery processes beside the server's own delivery worker (`[delivery] processes`).

A delivery worker is one event loop: the Python work of a post whose members each get their
own copy (VERP, one-click lines) fills one CPU core. The server starts `count - 1` more
processes (`python -m listmgr.service --delivery INDEX COUNT SMTP_PORT`, the configuration
on stdin), each running a DeliveryWorker with its part of the connection limits. They take
work from the outbound queue by the same claims and leases as the server's worker (a
recipient is claimed by one of them), so nothing is shared but the store. A process that
dies is started again (children.Supervisor, as the SMTP acceptors; its claims are taken
back at once by the new one, as a restarted server takes back those of its dead
predecessor); the server stops them at its own stop.

They are not told when mail is queued: an idle one looks at the queue every
`poll_interval` (the server's own worker is woken at once, so a reply never waits for one).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any

from listmgr.config import Config
from listmgr.children import Child, Supervisor, stop_event

log = logging.getLogger(__name__)


class DeliveryProcesses(Supervisor):
    """The server's component that starts, restarts and stops the extra delivery
    processes."""

    def __init__(self, service: Any, count: int):
        self.service = service
        self.count = count
        # SIGTERM: each finishes the transactions it has on the wire and records them (at
        # most the SMTP timeout), then exits.
        super().__init__("delivery process", service.config.data_path,
                         [Child(i) for i in range(1, count)], logger=log,
                         stop_timeout=service.config.delivery.timeout + 10)

    async def start(self) -> None:
        await self.start_children()
        log.info("delivering in %d processes: this one (pid %d) and %s", self.count,
                 os.getpid(), ",".join(str(c.pid) for c in self.children))

    async def spawn(self, c: Child) -> None:
        port = self.service.ports.get("smtp") or 0
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "listmgr.service", "--delivery", str(c.index),
            str(self.count), str(port), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        await self.ready(c, proc, self.service.config)


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
    stop = stop_event("delivery process", index, on_hup=on_hup, logger=log)
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
