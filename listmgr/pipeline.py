"""The inbound pipeline: takes stored inbound tasks and hands each to its kind's handler.

A handler is `handler(app, session, task, message, data) -> None`. It runs in a worker
thread inside one store transaction: its effects (replies queued, members changed, posts
fanned out) commit together with the task being marked done, or not at all. A handler that
raises leaves the task `shunted` with the error, never lost (`listmgr queue retry --shunted`
replays it). The table kind -> handler is given by the composition root (service.py).

A handler may carry a *prepare* step (`handler.prepare(app, target, mail_from, data) ->
value`) for work that needs no lock: parsing, and the list's rules and regexps. It runs
before the handler's transaction with no transaction open (on SQLite any transaction holds
the write lock, which SMTP ingress needs to answer), and the handler gets its value as a
sixth argument.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import traceback
from typing import Any, Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from listmgr.app import App
from listmgr.diskspace import is_transient
from listmgr.store.claims import claim
from listmgr.store.models import InboundMessage, InboundTask, utcnow

log = logging.getLogger(__name__)

Handler = Callable[[App, Session, InboundTask, InboundMessage, bytes], None]
Prepare = Callable[[App, str, str, bytes], Any]


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
                row = s.execute(select(InboundTask.kind, InboundTask.state, InboundTask.target,
                                       InboundMessage.mail_from, InboundMessage.spool_path)
                                .join(InboundMessage,
                                      InboundMessage.id == InboundTask.message_id)
                                .where(InboundTask.id == task_id)).first()
            if row is None or row.state != "new":
                return
            fn = self.handlers.get(row.kind)
            prepare = getattr(fn, "prepare", None)
            prepared = None
            if prepare is not None:
                prepared = prepare(self.app, row.target, row.mail_from,
                                   spool.read(row.spool_path))
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
                if prepare is not None:
                    fn(self.app, s, task, msg, data, prepared)
                else:
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
            if is_transient(exc):
                self._retry_later(task_id, exc)
                return
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

    def _retry_later(self, task_id: int, exc: Exception) -> None:
        """A full disk (or the like) is not the message's fault: the task stays new, and its
        lease, doubling per attempt like delivery's backoff, keeps it until then."""
        cfg = self.app.config.delivery
        try:
            with self.app.store.session() as s:
                task = s.get(InboundTask, task_id)
                if task is None:
                    return
                delay = min(cfg.min_backoff * 2 ** min(task.attempts, 16), cfg.max_backoff)
                task.attempts += 1
                task.error = f"{type(exc).__name__}: {exc}"[:2000]
                task.lease_until = utcnow() + dt.timedelta(seconds=delay)
            log.warning("task=%d result=deferred (%s) retry in %ds", task_id, exc, delay)
        except Exception:
            # The store itself cannot write: the claim's lease expires and it is retried.
            log.warning("task=%d result=deferred (%s); the store is not writable either",
                        task_id, exc)

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
