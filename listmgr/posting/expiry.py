"""A `listmgr serve` component, the posting timer: held posts expire after their list's
hold_expiry, and digests due by age (digest_maxdays) are sent."""

from __future__ import annotations

import asyncio
import logging

from listmgr.posting.digest import send_due
from listmgr.posting.moderation import expire_due, sweep_orphans

log = logging.getLogger(__name__)


def components(service) -> list:
    return [HeldExpiry(service.app, interval=service.config.posting.expiry_interval)]


class HeldExpiry:
    def __init__(self, app, *, interval: float = 60.0):
        self.app = app
        self.interval = interval
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="held-expiry")

    async def stop(self) -> None:
        self._stopping = True
        self.app.notify("held")
        if self._task:
            await self._task

    async def _run(self) -> None:
        while not self._stopping:
            try:
                n = await asyncio.to_thread(expire_due, self.app)
                if n:
                    self.app.notify("outbound")
                await asyncio.to_thread(sweep_orphans, self.app)
            except Exception:
                log.exception("held-post expiry failed")
            try:
                if await asyncio.to_thread(send_due, self.app):
                    self.app.notify("outbound")
            except Exception:
                log.exception("sending digests due by age failed")
            if not self._stopping:
                await self.app.wait("held", self.interval)
