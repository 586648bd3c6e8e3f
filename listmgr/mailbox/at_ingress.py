"""Delivery at DATA: a message whose recipients are all local mailboxes, none of them with
an auto-reply on, goes straight into their Maildirs before the client is answered 250: no
spool file, no queue rows, no mailbox worker (`[smtp] mailbox_at_ingress`, on by default;
up to smtp/handler.AT_INGRESS_MAX_OCTETS in all its copies).

Each copy gets what the mailbox worker would give it (mailbox/delivery.py: our Received:,
Return-Path:, Delivered-To:) and is written to its mailbox's tmp/ and fsynced. Only when
every copy is written are they renamed into new/ and the new/ directories fsynced, so a 250
means every recipient has the message, durably; a failure before that takes every copy back
and the client is answered 451/452 (it sends again). Other mail (lists, commands, relay,
auto-replies) takes the spool and the inbound queue.

Small messages (smtp/handler.BATCH_MAX_OCTETS in all copies) are written by one thread per
listener, a batch at a time (BatchWriter); bigger ones by the listener's thread pool.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from listmgr.durable import fsync_dir
from listmgr.mail import trace
from listmgr.mailbox.delivery import trace_headers
from listmgr.mailbox.maildir import Maildir, Staged

log = logging.getLogger("listmgr.mailbox.delivery")


class Copies:
    """A message's copies, written and renamed into their mailboxes' new/, the names not yet
    durable (sync, or the BatchWriter's one fsync per directory for many messages)."""

    __slots__ = ("queue_id", "staged", "mailboxes")

    def __init__(self, queue_id: str, staged: list[tuple[str, str, Staged, int]],
                 mailboxes: dict[str, Maildir]):
        self.queue_id = queue_id
        self.staged = staged  # (address, user, copy, octets)
        self.mailboxes = mailboxes

    @property
    def size(self) -> int:
        return sum(size for *_, size in self.staged)

    def new_dirs(self) -> list[str]:
        return [f"{m.root}/new" for m in self.mailboxes.values()]

    def sync(self) -> None:
        for path in self.new_dirs():
            fsync_dir(path)

    def discard(self) -> None:
        for _, _, copy, _ in self.staged:
            copy.discard()

    def log(self) -> None:
        for rcpt, user, copy, size in self.staged:
            log.info("%s to=<%s> mailbox=%s uid=%s size=%d status=delivered", self.queue_id,
                     rcpt, user, copy.uid, size)


def write(data_dir: str, hostname: str, domain: str, queue_id: str, *, mail_from: str,
          helo: str, ip: str, when: dt.datetime, protocol: str,
          recipients: Sequence[tuple[str, str]], data: bytes) -> Copies:
    """Put `data` (line ends already CRLF) into the mailbox of each (address, user) of
    `recipients`, once per user however many of the addresses name it (as the inbound
    queue makes one task of them): every copy written, fsynced and renamed into new/. The
    caller makes the names durable (Copies.sync, or the BatchWriter's fsync per directory)
    before answering 250, and takes the copies back (Copies.discard) if that fails. Raises
    with nothing delivered."""
    once: dict[str, str] = {}  # user -> the first address naming it
    for rcpt, user in recipients:
        once.setdefault(user, rcpt)
    recipients = [(rcpt, user) for user, rcpt in once.items()]
    mailboxes: dict[str, Maildir] = {}
    staged: list[tuple[str, str, Staged, int]] = []
    # LMTP's trace names the recipient only when there is one (the copies are one
    # receipt); over SMTP each copy is a delivery of its own, with its recipient.
    shared = trace.received(hostname, helo, ip, queue_id, when, protocol,
                            recipients[0][0] if len(recipients) == 1 else None) \
        if protocol == "LMTP" else None
    try:
        for i, (rcpt, user) in enumerate(recipients):
            received = shared if shared is not None else \
                trace.received(hostname, helo, ip, queue_id, when, protocol, rcpt)
            head = trace_headers(mail_from, user, domain) + received
            mailbox = mailboxes.get(user)
            if mailbox is None:
                mailbox = mailboxes[user] = Maildir.for_user(data_dir, user)
            # the head and the message written as they are, not joined into one more copy
            staged.append((rcpt, user, mailbox.stage(data, f"{queue_id}.R{i}", head=head),
                           len(head) + len(data)))
        for _, _, copy, _ in staged:
            copy.publish()
    except BaseException:
        for _, _, copy, _ in staged:
            copy.discard()
        raise
    return Copies(queue_id, staged, mailboxes)


class BatchWriter:
    """One thread that writes the copies of small messages delivered at DATA, a batch at a
    time: each message's files written and fsynced, then one fsync per new/ directory for
    the whole batch, then one wake-up of the event loop that answers all of them.

    Sixteen pool threads each doing a message's nine system calls fight the event loop
    for the GIL at every call (dozens of futex calls per message); one thread taking
    whatever has queued while it was busy does the same writes with one hand-off per batch,
    and the directory fsyncs of a batch are one. A batch is what arrived while the previous
    one was written, so a lone message is not delayed. Big messages go to the pool (a 5 MB
    write must not hold up the small ones behind it)."""

    MAX_BATCH = 64

    def __init__(self, name: str = "mailbox-writer"):
        self.name = name
        self._jobs: list = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batches = 0  # for tests
        self.largest = 0

    def submit(self, fn: Callable[..., Copies], *args: Any) -> asyncio.Future:
        """A future for fn(*args)'s Copies made durable: its size, or fn's exception (or
        the directory fsync's, with the copies taken back)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the mailbox writer is closed")
            self._jobs.append((loop, fut, fn, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return fut

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                batch = self._jobs[:self.MAX_BATCH]
                del self._jobs[:len(batch)]
            self.batches += 1
            self.largest = max(self.largest, len(batch))
            done: list[tuple[Any, asyncio.Future, Copies | None, BaseException | None]] = []
            for loop, fut, fn, args in batch:
                try:
                    done.append((loop, fut, fn(*args), None))
                except BaseException as failure:  # noqa: BLE001 - the session's answer
                    done.append((loop, fut, None, failure))
            # the names of the whole batch made durable: each new/ directory once
            synced = {path: _sync_error(path) for path in
                      {p for _, _, copies, _ in done if copies is not None
                       for p in copies.new_dirs()}}
            outcomes: dict[Any, list] = {}
            for loop, fut, copies, error in done:
                result = None
                if copies is not None:
                    error = next((synced[p] for p in copies.new_dirs() if synced[p]), None)
                    if error is not None:
                        copies.discard()
                    else:
                        copies.log()
                        result = copies.size
                outcomes.setdefault(loop, []).append((fut, result, error))
            for loop, settled in outcomes.items():
                try:
                    loop.call_soon_threadsafe(_settle, settled)
                except RuntimeError:
                    pass  # the loop is closed: nobody waits


def _sync_error(path: str) -> OSError | None:
    try:
        fsync_dir(path)
    except OSError as failure:
        return failure
    return None


def _settle(settled: list) -> None:
    for fut, result, exc in settled:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
