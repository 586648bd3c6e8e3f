"""Fan-out: decorate an accepted post once, store it once, queue every member.

Members are streamed from the store `fanout_batch` at a time (never the whole roster in
memory), each batch sorted by destination domain and added to ONE outbound message with
one multi-row INSERT, as BULK recipients (delivery sends interactive mail first).

The first batch is queued in the caller's transaction (the inbound worker's), so a list of up to
`fanout_batch` members is queued whole or not at all, together with the post's task. A
bigger list leaves a `fanouts` row (a per-post cursor: the last member id queued) and the
fan-out worker queues the rest one batch per transaction, the cursor moving in the same
commit as the batch's recipients. Its members are read before that transaction, and a batch
is sized by time (`TX_SECONDS`, at most `fanout_batch` members), so no transaction holds
SQLite's write lock for long (ingress 250s and command replies go on between batches; a
group commit goes before a waiting batch, store.writergate), and a fan-out resumed after a
crash (by this host's next process at once, by any process on any host once the
`[store] lease` has run out) neither repeats nor skips anyone. On PostgreSQL the fan-out
row is claimed, so two `listmgr serve` processes never queue one post twice. The envelope sender is owner-LIST@domain, so bounces reach
the list, not the poster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from operator import itemgetter

from listmgr import metrics
from listmgr.app import App
from listmgr.listconfig import sender_address
from listmgr.mail.addresses import AddressError, domain_of, domains_if_valid, parse_single
from listmgr.posting import archive, digest, mitigation
from listmgr.posting.decorate import ListInfo, decorate
from listmgr.posting.message import RawMessage
from listmgr.store import claims, fanouts, hooks, leases, outbound_claims
from listmgr.store.claims import claim, lease_owner
from listmgr.store.db import Session
from listmgr.store.lists import iter_member_batches
from listmgr.store.models import BULK, Fanout, MailingList, OutboundMessage
from listmgr.store.outbound import add_recipients, enqueue
from listmgr.store.settings import ListSettings, take_post_sequence

log = logging.getLogger(__name__)

RETRY = 60  # seconds before a fan-out whose batch failed is tried again
TX_SECONDS = 0.05  # what a batch's transaction should take at most (SQLite's write lock): at 20 ms the plain 100,000-member fan-out took 35% longer
MIN_BATCH = 100  # members a batch queues at least, however slow its transaction


@dataclass(frozen=True)
class Distributed:
    queue_id: str
    recipients: int
    seq: int


def _bare(stored: str) -> str:
    """The address of a member row; "" (left out, logged) if it no longer parses."""
    try:
        return parse_single(stored)  # a bare address returns at once
    except AddressError:
        log.warning("member address %r does not parse: left out of the post", stored)
        return ""


def distribute(app, s: Session, mlist: ListSettings, msg: RawMessage) -> Distributed:
    """Decorate `msg`, queue it to the members with delivery on (the first batch now, the
    rest by the fan-out worker), archive it on commit. `recipients` counts the members with
    delivery on at this moment."""
    t0 = time.monotonic()
    info = ListInfo.of(mlist, app.config)
    # Before the first write: a DNS lookup must not hold the store's write lock (SQLite).
    mode = mitigation.decide(app.txt_lookup, info, msg, app.config.local_domains)
    seq = take_post_sequence(s, mlist)
    data = decorate(msg, info, seq=seq, mitigation=mode)
    if app.config.dkim.arc and app.signer is not None:
        data = app.signer.arc_seal(data, app.config.domain, app.config.hostname)
    envelope = sender_address(mlist, app.config.domain)
    # Per-recipient parts (VERP, one-click unsubscribe) are added at send time.
    personal = mlist.name if mlist.verp != "off" or app.config.web.base_url else ""
    out = enqueue(s, app.spool, mail_from=envelope, recipients=(), data=data,
                  origin=f"post:{mlist.name}", personal=personal, priority=BULK)
    size = app.config.posting.fanout_batch
    batches = iter_member_batches(s, mlist, batch=size, digest=False)
    first = next(batches, [])
    total = _queue_batch(s, out.id, first)
    digests: bool | None = None
    if len(first) >= size:
        # More members than one batch: the fan-out worker goes on from the last one queued.
        s.add(Fanout(message_id=out.id, list_id=mlist.id, cursor=first[-1][0], queued=total))
        # One pass over the roster for both questions (on SQLite this transaction holds
        # the write lock: at a million members each pass takes the best part of a second).
        delivering, digests = fanouts.roster_summary(s, mlist.id)
        total = delivering or total
        hooks.after_commit(s, lambda: app.notify("fanout"))
    elif total == 0:
        # Nobody to send to: keep no empty message in the queue.
        fanouts.drop_message(s, out.id)
        hooks.after_commit(s, lambda: app.spool.remove(out.spool_path))
    hooks.after_commit(s, lambda: _archive(app, mlist.name, data, envelope))
    if digests if digests is not None else digest.has_digest_members(s, mlist):
        digest.queue_post(app, s, mlist, data)
    elapsed = time.monotonic() - t0
    metrics.FANOUT.observe(elapsed)
    log.info("%s list=%s seq=%d recipients=%d size=%d dmarc=%s fanout=%.3fs%s", out.queue_id,
             mlist.name, seq, total, len(data), mode, elapsed,
             " (first batch; the rest in batches)" if len(first) >= size else "")
    return Distributed(out.queue_id, total, seq)


def _addresses(batch: list[tuple[int, str]]) -> list[str]:
    """The addresses of (id, stored address) member rows, sorted by domain."""
    stored = [a for _, a in batch]
    domains = domains_if_valid(stored) if stored else None
    if domains is not None:
        # Every row a bare address (the usual case): one scan of the batch checks them all
        # and finds their domains, as parse_single and domain_of would one by one.
        keyed = list(zip(stored, map(str.lower, domains)))
        keyed.sort(key=itemgetter(1))  # stable: members of one domain stay in id order
        return [a for a, _ in keyed]
    addrs = [b for a in stored if (b := _bare(a))]  # strip = no keeps "Name <addr>"
    addrs.sort(key=domain_of)
    return addrs


def _queue_batch(s: Session, message_id: int, batch: list[tuple[int, str]]) -> int:
    return add_recipients(s, message_id, _addresses(batch), priority=BULK)


class FanoutWorker:
    """Queues the rest of big posts, one batch of members per transaction (see the module
    docstring); one per `listmgr serve`. Its claim is renewed by the process's heartbeat
    (store.leases) and with every batch."""

    def __init__(self, app: App, *, poll: float = 1.0):
        self.app = app
        self.poll = poll
        self.batch = app.config.posting.fanout_batch  # members a batch queues at most
        self.size = self.batch  # members the next batch queues (resize())
        self.tx_seconds = TX_SECONDS
        self.owner = lease_owner("fanout")
        self.lease = app.config.store.lease
        self.held: list[int] = []  # fan-outs claimed and being queued
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        try:
            n = await asyncio.to_thread(self.release_dead)
            if n:
                log.info("fanout: took back %d post(s) of a dead process", n)
        except Exception:
            log.exception("fanout: could not take back dead processes' posts")
        self.app.heartbeat.hold(self.app.store, leases.FANOUT, self.owner, self.lease,
                                busy=lambda: bool(self.held))
        self._task = asyncio.create_task(self._run(), name="fanout")

    async def stop(self) -> None:
        self._stopping = True
        self.app.notify("fanout")
        if self._task:
            await self._task
        await self.app.heartbeat.drop(leases.FANOUT, self.owner)

    def release_dead(self) -> int:
        """Fan-outs leased by dead processes of this host: free to take at once."""
        with self.app.store.session() as s:
            return fanouts.release_dead_local(s)

    async def _run(self) -> None:
        """Round-robin over the fan-outs held, one batch each per round, looking for one more
        every `poll` seconds: a fan-out left by a dead process is taken over as soon as its lease
        runs out, even while this process is busy with a big one of its own."""
        loop = asyncio.get_running_loop()
        looked = 0.0
        while not self._stopping:
            fid = None
            if not self.held or loop.time() - looked >= self.poll:
                looked = loop.time()
                try:
                    fid = await asyncio.to_thread(self._claim)
                except Exception:
                    log.exception("fanout: claim failed")
            if fid is not None:
                self.held.append(fid)
            if not self.held:
                if not self._stopping:
                    await self.app.wait("fanout", self.poll)
                continue
            for fid in list(self.held):
                if self._stopping:
                    break
                try:
                    more = await asyncio.to_thread(self.step, fid)
                    self.app.notify("outbound")
                except Exception:
                    log.exception("fanout=%d: batch failed; retried in %ds", fid, RETRY)
                    more = False
                    try:
                        await asyncio.to_thread(self._defer, fid)
                    except Exception:
                        log.exception("fanout=%d: could not give it back", fid)
                    await asyncio.sleep(self.poll)
                if not more:
                    self.held.remove(fid)

    def _defer(self, fid: int) -> None:
        with self.app.store.session() as s:
            claims.defer(s, Fanout, [fid], self.owner, RETRY)

    def _claim(self) -> int | None:
        with self.app.store.session() as s:
            ids = claim(s, Fanout, where=[], owner=self.owner, lease=self.lease, limit=1)
        return ids[0] if ids else None

    def run_all(self) -> int:
        """Queue every pending fan-out to the end, here and now; returns how many."""
        n = 0
        while (fid := self._claim()) is not None:
            while self.step(fid):
                pass
            n += 1
        return n

    def step(self, fid: int) -> bool:
        """Queue the next batch of fan-out `fid` in one transaction (recipients and the
        cursor together); returns whether there is more to do.

        The members are read and their addresses prepared before that transaction, in a
        read-only one (on SQLite it takes no write lock), so the writing transaction only
        inserts; its duration sizes the next batch (see `resize`)."""
        with self.app.store.read_session() as s:
            at = fanouts.position(s, fid, self.owner)
            if at is None:
                return False  # finished, or the lease lapsed and someone else has it
            mlist = s.get(MailingList, at.list_id)
            batch = next(iter_member_batches(s, mlist, batch=self.size, after_id=at.cursor,
                                             digest=False),
                         []) if mlist is not None else []
        if not batch:
            return self._finish(fid)
        addrs = _addresses(batch)
        started = time.monotonic()
        with self.app.store.session() as s:
            if not fanouts.advance(s, fid, self.owner, cursor=at.cursor, to=batch[-1][0],
                                   queued=len(addrs), lease=self.lease):
                # Finished or taken over meanwhile; or moved, then read again.
                return fanouts.position(s, fid, self.owner) is not None
            add_recipients(s, at.message_id, addrs, priority=BULK)
        self.resize(len(batch), time.monotonic() - started)
        return True

    def resize(self, rows: int, took: float) -> None:
        """Size the next batch from the time the last one's transaction took: on SQLite it
        held the write lock all along, and an ingress group commit arriving meanwhile
        waited for its end. Too long: shrink to fit `tx_seconds` (by half at most: one
        slow transaction may be the machine's, not the batch's); under half of it: grow
        by a quarter; within [MIN_BATCH, fanout_batch]."""
        if took > self.tx_seconds:
            fit = int(rows * self.tx_seconds / took)
            self.size = max(min(MIN_BATCH, self.batch), fit, min(self.size, rows) // 2)
        elif took < self.tx_seconds / 2 and rows >= self.size:
            self.size = min(self.batch, self.size + self.size // 4 + 1)

    def _finish(self, fid: int) -> bool:
        """Every member is queued: drop the cursor, finish the message if all is sent."""
        removed: list[str] = []
        with self.app.store.session() as s:
            f = s.get(Fanout, fid, with_for_update=True)
            if f is None or f.lease_owner != self.owner:
                return False
            out = s.get(OutboundMessage, f.message_id)
            s.delete(f)
            s.flush()
            if out is not None:
                removed = outbound_claims.finish(s, [out.id])
                log.info("%s fanout done: recipients=%d", out.queue_id, f.queued)
        for path in removed:
            self.app.spool.remove(path)
        return False


def components(service) -> list:
    return [FanoutWorker(service.app)]


def _archive(app, list_name: str, data: bytes, envelope: str) -> None:
    try:
        archive.append(app.config, list_name, data, envelope_from=envelope)
    except OSError:
        log.exception("list=%s archive append failed", list_name)
