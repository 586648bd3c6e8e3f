"""A `listmgr serve` component: bounce notices due, removals, stale scores cleared."""

from __future__ import annotations

import asyncio
import logging

from listmgr.bounces import processor

log = logging.getLogger(__name__)


def components(service) -> list:
    return [BounceHousekeeping(service.app, interval=service.config.bounces.check_interval)]


class BounceHousekeeping:
    def __init__(self, app, *, interval: float = 600.0):
        self.app = app
        self.interval = interval
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bounce-housekeeping")

    async def stop(self) -> None:
        self._stopping = True
        self.app.notify("bounces")
        if self._task:
            await self._task

    def run_once(self) -> int:
        with self.app.store.session() as s:
            return processor.housekeeping(self.app, s)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if await asyncio.to_thread(self.run_once):
                    self.app.notify("outbound")
            except Exception:
                log.exception("bounce housekeeping failed")
            if not self._stopping:
                await self.app.wait("bounces", self.interval)
