"""The inbound pipeline: takes stored inbound tasks and hands each to its kind's handler.

A handler is `handler(app, session, task, message, data) -> None`. It runs in a worker
thread inside one store transaction: its effects (replies queued, members changed, posts
fanned out) commit together with the task being marked done, or not at all. A handler that
raises leaves the task `shunted` with the error, never lost (`listmgr queue retry --shunted`
replays it). The table kind -> handler is given by the composition root (service.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import traceback
from typing import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from listmgr.app import App
from listmgr.store.claims import claim
from listmgr.store.models import InboundMessage, InboundTask, utcnow

log = logging.getLogger(__name__)

Handler = Callable[[App, Session, InboundTask, InboundMessage, bytes], None]


class Pipeline:
    """Claims inbound tasks and runs their handlers; one per `listmgr serve`."""

    LEASE = 300.0

    def __init__(self, app: App, handlers: dict[str, Handler], *, batch: int = 20,
                 poll: float = 1.0):
        self.app = app
        self.handlers = handlers
        self.batch = batch
        self.poll = poll
        self.owner = f"{socket.gethostname()}:{os.getpid()}:pipeline"
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pipeline")

    async def stop(self) -> None:
        self._stopping = True
        self.app.notify("inbound")
        if self._task:
            await self._task

    async def _run(self) -> None:
        while not self._stopping:
            try:
                n = await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("pipeline: claim failed")
                n = 0
            if n == 0 and not self._stopping:
                await self.app.wait("inbound", self.poll)

    def run_once(self) -> int:
        """Claim and process one batch; returns how many tasks were taken."""
        with self.app.store.session() as s:
            ids = claim(s, InboundTask, where=[InboundTask.state == "new"], owner=self.owner,
                        lease=self.LEASE, limit=self.batch)
        for task_id in ids:
            self.process(task_id)
        return len(ids)

    def process(self, task_id: int) -> None:
        store, spool = self.app.store, self.app.spool
        try:
            with store.session() as s:
                # Locked (PostgreSQL) so a handler taking sibling tasks along (relay) and
                # another process working on one of them cannot both act on it.
                task = s.get(InboundTask, task_id, with_for_update=True)
                if task is None or task.state != "new":
                    return
                msg = s.get(InboundMessage, task.message_id)
                fn = self.handlers.get(task.kind)
                if fn is None:
                    raise LookupError(f"no handler for inbound kind {task.kind!r}")
                data = spool.read(msg.spool_path)
                fn(self.app, s, task, msg, data)
                task.state = "done"
                task.done_at = utcnow()
                task.lease_until = None
                log.info("%s task=%d kind=%s rcpt=<%s> result=done", msg.queue_id, task.id,
                         task.kind, task.rcpt)
                # The last task done removes its message in the same transaction, so nobody
                # sees "all done" with the message still there.
                s.flush()
                finished = self._finished(s, task.message_id)
            self.app.notify("outbound")  # a handler may have queued mail
        except Exception as exc:
            log.error("task=%d result=shunted error=%r\n%s", task_id, exc,
                      traceback.format_exc())
            with store.session() as s:
                task = s.get(InboundTask, task_id)
                if task is not None:
                    task.state = "shunted"
                    task.error = f"{type(exc).__name__}: {exc}"
                    task.attempts += 1
                    task.lease_until = None
            return
        if finished:
            spool.remove(finished)

    @staticmethod
    def _finished(s: Session, message_id: int) -> str | None:
        """Delete the message when every task of it is done; returns its spool path."""
        pending = s.scalar(select(func.count()).select_from(InboundTask).where(
            InboundTask.message_id == message_id, InboundTask.state != "done"))
        if pending:
            return None
        msg = s.get(InboundMessage, message_id)
        path = msg.spool_path
        s.delete(msg)
        return path
