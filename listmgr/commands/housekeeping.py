"""A `listmgr serve` component: forget expired confirmation keys and stale rate counters.

Tokens (all kinds) are deleted a week after they expired; the command replies' rate
counters (key prefix `command-mail:`, one-hour windows) a day after their window began. Runs hourly; safe to run in several processes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from listmgr import tokens
from listmgr.commands.outgoing import RATE_PREFIX
from listmgr.store.models import utcnow
from listmgr.store.ratelimit import delete_windows_before

log = logging.getLogger(__name__)

INTERVAL = 3600.0


def purge(app, *, now: dt.datetime | None = None) -> tuple[int, int]:
    """(tokens deleted, rate counters deleted)."""
    now = now or utcnow()
    with app.store.session() as s:
        n_tokens = tokens.purge_expired(s)
        n_counters = delete_windows_before(s, RATE_PREFIX, now - dt.timedelta(days=1))
    if n_tokens or n_counters:
        log.info("housekeeping tokens_deleted=%d rate_counters_deleted=%d", n_tokens,
                 n_counters)
    return n_tokens, n_counters


def components(service) -> list:
    return [Housekeeping(service.app)]


class Housekeeping:
    def __init__(self, app, *, interval: float = INTERVAL):
        self.app = app
        self.interval = interval
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="commands-housekeeping")

    async def stop(self) -> None:
        self._stopping = True
        self.app.notify("housekeeping")
        if self._task:
            await self._task

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await asyncio.to_thread(purge, self.app)
            except Exception:
                log.exception("command housekeeping failed")
            if not self._stopping:
                await self.app.wait("housekeeping", self.interval)
