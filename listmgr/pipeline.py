"""Inbound workers: each claims the inbound tasks of its own kinds and runs their handlers.

A handler is `handler(app, session, task, message, data) -> None`. It runs in its worker's
threads inside one store transaction: its effects (replies queued, members changed, posts
fanned out) commit together with the task being marked done, or not at all. A handler that
raises leaves the task `shunted` with the error, never lost (`listmgr queue retry --shunted`
replays it). `task` and `message` are read-only snapshots taken at claim time.

There is one worker per kind of work (commands, posts, mailbox delivery, forwarding; the
table is in service.py), each with its own claim loop and threads, so a post being fanned
out to a big list never delays a command reply or a mailbox delivery. The message's bytes
are read from the spool before the handler's transaction begins.

A handler may carry a *prepare* step (`handler.prepare(app, target, message, data) ->
value`, `message` the InboundMessage) for work that needs no lock: parsing, sender checks
(DNS), and the list's rules and regexps. It runs before the handler's transaction with no
transaction open (on SQLite any transaction holds the write lock, which SMTP ingress needs
to answer), and the handler gets its value as a sixth argument. A full disk (diskspace.is_transient) is not the message's fault: the task
stays new and is retried after a backoff instead of being shunted.

A worker whose one handler carries a *batch* step (`handler.batch(app)` -> an object with
`stage(task, message, data)`, `sync()` and `commit(session, staged)`; mailbox delivery has
one) works a claimed batch together: every task staged with no transaction open (the
Maildir file written), one sync (the directory fsyncs), then one transaction for the
handler's effects and all the tasks done. Staging must be idempotent: a batch whose
transaction fails is worked again one task at a time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, cast

from listmgr.app import App
from listmgr.diskspace import is_transient
from listmgr.store import claims, inbound, leases
from listmgr.store.db import Session
from listmgr.store.models import InboundMessage, InboundTask

log = logging.getLogger(__name__)

Handler = Callable[[App, Session, InboundTask, InboundMessage, bytes], None]
BATCHED = 100  # tasks claimed at once by a worker whose handler has a batch step
STAGE_THREADS = 8  # a batch's tasks staged at once


class _Failed:
    """A staging that raised (its task is then worked alone, with its own error)."""

    def __init__(self, exc: BaseException):
        self.exc = exc


class InboundWorker:
    """Claims new inbound tasks of the kinds in `handlers` and runs them, `concurrency`
    claim loops at once (each in its own thread). Its claims last `[store] lease` and are
    renewed by the process's heartbeat while it runs (store.leases)."""

    def __init__(self, app: App, name: str, handlers: Mapping[str, Handler], *,
                 concurrency: int = 1, batch: int = 20, poll: float = 1.0):
        self.app = app
        self.name = name
        self.handlers = dict(handlers)
        self.concurrency = max(1, concurrency)
        # A handler with a batch step shares one transaction per batch: claim more at once.
        self.batch = max(batch, BATCHED) if self._batch_step() else batch
        self.poll = poll
        self.owner = claims.lease_owner(f"inbound-{name}")
        self.lease = app.config.store.lease
        self._active = 0  # claim loops working on a batch (their claims are renewed)
        self._active_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._stager: ThreadPoolExecutor | None = None  # a batch step's stagings
        self._tasks: list[asyncio.Task] = []
        self._wake: asyncio.Event | None = None
        self._stopping = False

    async def start(self) -> None:
        self._stopping = False
        # Woken by ingress for the kinds it has just queued (and by "inbound": stop).
        self._wake = self.app.subscribe("inbound")
        for kind in self.handlers:
            self.app.subscribe(f"inbound:{kind}", self._wake)
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency,
                                            thread_name_prefix=f"inbound-{self.name}")
        n = await self._call(self._release_dead)
        if n:
            log.info("inbound-%s: took back %d tasks of dead processes", self.name, n)
        self.app.heartbeat.hold(self.app.store, leases.INBOUND, self.owner, self.lease,
                                busy=lambda: self._active > 0)
        self._tasks = [asyncio.create_task(self._run(), name=f"inbound-{self.name}-{i}")
                       for i in range(self.concurrency)]

    async def stop(self) -> None:
        self._stopping = True
        self.app.notify("inbound")
        for t in self._tasks:
            await t
        self._tasks = []
        await self.app.heartbeat.drop(leases.INBOUND, self.owner)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._stager is not None:
            self._stager.shutdown(wait=True)
            self._stager = None
        if self._wake is not None:
            self.app.unsubscribe("inbound", self._wake)
            for kind in self.handlers:
                self.app.unsubscribe(f"inbound:{kind}", self._wake)

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _release_dead(self) -> int:
        with self.app.store.session() as s:
            return inbound.release_dead(s)

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            try:
                n = await self._call(self.run_once)
            except Exception:
                log.exception("inbound-%s: claim failed", self.name)
                n = 0
            if n == 0 and not self._stopping:
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()

    def run_once(self) -> int:
        """Claim and process one batch; returns how many tasks were taken."""
        with self._active_lock:
            self._active += 1
        try:
            with self.app.store.session() as s:
                tasks = inbound.claim_snapshots(s, list(self.handlers), owner=self.owner,
                                                lease=self.lease, limit=self.batch)
            taken = len(tasks)
            batch = self._batch_step()
            if batch is not None and len(tasks) > 1 and not self._stopping:
                tasks = self.process_batch(batch(self.app), tasks)
            done = 0
            try:
                for task in tasks:
                    if self._stopping:
                        break
                    self.process(task)
                    done += 1
            finally:
                if done < len(tasks):  # stopping, or an error the handler could not record
                    with self.app.store.session() as s:
                        inbound.release(s, [t.id for t in tasks[done:]], self.owner)
            return taken
        finally:
            with self._active_lock:
                self._active -= 1

    def _batch_step(self):
        """The handlers' batch step, when this worker has one handler and it has one."""
        fns = set(self.handlers.values())
        return getattr(next(iter(fns)), "batch", None) if len(fns) == 1 else None

    def process_batch(self, batch, tasks: list[InboundTask]) -> list[InboundTask]:
        """Work claimed tasks with the handler's batch step: each staged with no transaction
        open, one sync, then one transaction that commits the handler's effects and marks
        every staged task done. Returns the tasks left to `process` one by one: those whose
        staging failed (so they are shunted or retried with their own error), or all of them
        when the batch's transaction failed (staging is idempotent)."""
        store, spool = self.app.store, self.app.spool
        staged: list[tuple[InboundTask, object]] = []
        rest: list[InboundTask] = []

        def stage(task: InboundTask) -> object:
            try:
                return batch.stage(task, task.message, spool.read(task.message.spool_path))
            except Exception as exc:
                return _Failed(exc)

        # Each staging fsyncs its own file: several at once keep the disk busy (one after
        # another, a batch of 100 waited out 100 fsyncs).
        for task, value in zip(tasks, self._stage_pool().map(stage, tasks)):
            if isinstance(value, _Failed):
                rest.append(task)
            else:
                staged.append((task, value))
        if not staged:
            return rest
        try:
            batch.sync()
            with store.session() as s:
                for _, value in staged:
                    batch.commit(s, value)
                finished = inbound.finish_many(s, [task for task, _ in staged], self.owner)
        except Exception as exc:
            log.warning("inbound-%s: batch of %d failed (%r); one by one", self.name,
                        len(staged), exc)
            return [task for task, _ in staged] + rest
        for task, _ in staged:
            log.info("%s task=%d kind=%s rcpt=<%s> result=done", task.message.queue_id,
                     task.id, task.kind, task.rcpt)
        if getattr(batch, "queued", True):
            self.app.notify("outbound")
        for path in finished:
            if path:
                spool.remove(path)
        return rest

    def _stage_pool(self) -> ThreadPoolExecutor:
        with self._active_lock:
            if self._stager is None:
                self._stager = ThreadPoolExecutor(max_workers=STAGE_THREADS,
                                                  thread_name_prefix=f"stage-{self.name}")
            return self._stager

    def process(self, task: InboundTask) -> None:
        store, spool = self.app.store, self.app.spool
        msg = task.message
        try:
            fn = self.handlers[task.kind]
            data = spool.read(msg.spool_path)  # before the transaction: no lock held
            prepare = getattr(fn, "prepare", None)
            if prepare is not None:
                prepared = prepare(self.app, task.target, msg, data)
                with store.session() as s:
                    # a handler with a `prepare` step takes its result as a sixth argument
                    cast(Callable[..., None], fn)(self.app, s, task, msg, data, prepared)
                    finished = inbound.finish(s, task, self.owner)
            else:
                with store.session() as s:
                    fn(self.app, s, task, msg, data)
                    finished = inbound.finish(s, task, self.owner)
        except inbound.NotOurs:
            log.info("%s task=%d kind=%s: finished elsewhere, rolled back here",
                     msg.queue_id, task.id, task.kind)
            return
        except Exception as exc:
            if is_transient(exc):
                self._retry_later(task, exc)
                return
            log.error("%s task=%d kind=%s result=shunted error=%r\n%s", msg.queue_id,
                      task.id, task.kind, exc, traceback.format_exc())
            with store.session() as s:
                inbound.shunt(s, task.id, f"{type(exc).__name__}: {exc}")
            return
        log.info("%s task=%d kind=%s rcpt=<%s> result=done", msg.queue_id, task.id,
                 task.kind, task.rcpt)
        self.app.notify("outbound")  # a handler may have queued mail
        if finished:
            spool.remove(finished)

    def _retry_later(self, task: InboundTask, exc: Exception) -> None:
        cfg = self.app.config.delivery
        delay = min(cfg.min_backoff * 2 ** min(task.attempts, 16), cfg.max_backoff)
        try:
            with self.app.store.session() as s:
                inbound.defer(s, task.id, f"{type(exc).__name__}: {exc}", delay)
            log.warning("%s task=%d kind=%s result=deferred (%s) retry in %ds",
                        task.message.queue_id, task.id, task.kind, exc, delay)
        except Exception:
            # The store cannot write either: the claim's lease runs out and it is retried.
            log.warning("%s task=%d kind=%s result=deferred (%s); the store is not writable",
                        task.message.queue_id, task.id, task.kind, exc)
