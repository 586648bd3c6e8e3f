"""The delivery worker: drains due recipients from the outbound queue to remote MTAs.

One claimer takes hundreds of due rows per store transaction, groups them into SMTP
transactions by route and message, and hands them to lanes (one SMTP connection each, at
most `per_host_concurrency` per route and `concurrency` in all, shared out among the
delivery processes: `processes`). A lane waits until its
transaction's outcomes are committed before it starts the next one, so a crash can repeat
only the transactions in flight; the marker commits the outcomes of all lanes together
(group commit). Housekeeping sends returned mail and delay warnings and removes finished
spool files.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import gc
import logging
from collections.abc import Set
from dataclasses import dataclass, field

from listmgr import metrics
from listmgr.app import App
from listmgr.config import japanese_charset, split_hostport
from listmgr.delivery import dsn
from listmgr.auth.dns import make_resolver
from listmgr.delivery.mx import MXResolver
from listmgr.delivery.queue import (
    DEFERRED,
    FAILED,
    SENT,
    Item,
    Outcome,
    Transaction,
    plan,
)
from listmgr.delivery.smtpclient import SMTPClient, prepare_payload
from listmgr.mail.hops import MAX_HOPS, hop_count
from listmgr.delivery.transport import (
    LOCAL,
    SMARTHOST,
    Message,
    Transport,
    route_outcomes,
    unreachable_outcomes,
)
from listmgr import site_secret
from listmgr.bounces import processor as bounce_processor
from listmgr.delivery import personal as copies
from listmgr.delivery.personal import ListParts
from listmgr.mail.addresses import normalise
from listmgr.store import bounces as bounce_store
from listmgr.store import leases, outbound_claims
from listmgr.store.models import INTERACTIVE
from listmgr.store.outbound import enqueue

log = logging.getLogger(__name__)

CACHE_BYTES = 64 * 1024 * 1024  # prepared message bodies kept between batches
LANE_IDLE = 0.5                 # seconds a connection waits for more work before QUIT


_frozen = False


def _freeze_startup_objects() -> None:
    """What the process has made by the time delivery starts (modules, tables, templates:
    some 150,000 objects) lives as long as it does: out of the collector's full passes,
    which the per-member objects of a big post would otherwise make every few seconds.
    Once per process, after a collection (so no garbage is kept for good)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def share(total: int, index: int, count: int) -> int:
    """Process `index`'s part of a limit of `total` shared by `count` processes (count <=
    total: at least 1 each; the first ones take the remainder)."""
    return max(1, total // count + (1 if index < total % count else 0))


def components(service) -> list:
    if not service.config.delivery.workers:
        return []
    from listmgr.delivery.processes import DeliveryProcesses
    cfg = service.config.delivery
    # never more processes than connections allowed to one host: each needs one
    count = max(1, min(cfg.process_count, cfg.per_host_concurrency, cfg.concurrency))
    return [DeliveryWorker(service.app, local_port=lambda: service.ports.get("smtp"),
                           part=(0, count)),
            *([DeliveryProcesses(service, count)] if count > 1 else [])]


@dataclass
class _RouteQueue:
    txs: collections.deque = field(default_factory=collections.deque)
    lanes: int = 0
    more: asyncio.Event = field(default_factory=asyncio.Event)


class DeliveryWorker:
    def __init__(self, app: App, *, local_port=None, owner: str | None = None,
                 part: tuple[int, int] = (0, 1)):
        """`part`: (index, count) of this worker among the delivery processes, which share
        the connection limits."""
        self.app = app
        self.config = app.config
        self.cfg = app.config.delivery
        index, count = part
        self.per_host = share(self.cfg.per_host_concurrency, index, count)
        self.concurrency = share(self.cfg.concurrency, index, count)
        self.owner = owner or outbound_claims.lease_owner_name()
        # Renewed by the process's heartbeat while this worker runs (store.leases).
        self.lease = self.cfg.lease or app.config.store.lease
        self._local_port = local_port
        self.stopping = False
        self.inflight = 0                 # claimed recipients not yet marked
        self.max_inflight = max(self.cfg.batch_size * 2, self.cfg.max_recipients_per_transaction)
        # Members' own transactions go in groups small enough that the recipients in flight
        # keep every connection to a route busy (each group is one connection's work).
        self.per_group = max(1, min(self.cfg.max_recipients_per_transaction,
                                    self.max_inflight // (2 * self.per_host)))
        self._room = asyncio.Event()
        self._routes: dict[str, _RouteQueue] = {}
        self._msgs: collections.OrderedDict[int, Message] = collections.OrderedDict()
        self._msg_refs: collections.Counter[int] = collections.Counter()
        self._cache_bytes = 0
        self._marks: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._lanes: set[asyncio.Task] = set()
        self._sem = asyncio.Semaphore(self.concurrency)
        self._idle = asyncio.Event()
        self.transport: Transport | None = None
        self._secret: bytes | None = None  # the site secret, read when first needed

    # ------------------------------------------------------------------ lifecycle

    def _make_transport(self) -> Transport:
        cfg = self.cfg
        smarthost = split_hostport(cfg.smarthost) if cfg.smarthost else None
        port = self._local_port() if self._local_port else None
        local = ("127.0.0.1", port) if port else None
        if local is None:
            host, lport = split_hostport(self.config.smtp.listen)
            if lport:
                local = (host if host not in ("0.0.0.0", "::", "") else "127.0.0.1", lport)
        resolver = MXResolver(make_resolver(cfg.nameservers, cfg.nameserver_port,
                                            timeout=min(cfg.connect_timeout, 10.0)),
                              self_names={self.config.hostname, "localhost"})
        return Transport(resolver=resolver, helo=self.config.hostname, port=cfg.port,
                         smarthost=smarthost, local=local, timeout=cfg.timeout,
                         connect_timeout=cfg.connect_timeout, starttls=cfg.starttls)

    async def start(self) -> None:
        self.transport = self._make_transport()
        _freeze_startup_objects()
        try:
            n = await asyncio.to_thread(self._in_tx, outbound_claims.release_dead_leases)
            if n:
                log.info("delivery: took back %d recipient(s) claimed by a dead process", n)
        except Exception:
            log.exception("delivery: could not release dead leases")
        self.app.heartbeat.hold(self.app.store, leases.OUTBOUND, self.owner, self.lease,
                                busy=lambda: self.inflight > 0)
        self._tasks = [asyncio.create_task(self._claimer(), name="delivery-claimer"),
                       asyncio.create_task(self._marker(), name="delivery-marker"),
                       asyncio.create_task(self._housekeeper(), name="delivery-housekeeping")]

    async def stop(self) -> None:
        self.stopping = True
        self.app.notify("outbound")
        self._room.set()
        for rq in self._routes.values():
            rq.more.set()
        if self._lanes:
            await asyncio.wait(list(self._lanes), timeout=self.cfg.timeout + 5)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        unstarted = [it.rid for rq in self._routes.values() for tx in rq.txs for it in tx.items]
        if unstarted:
            try:
                await asyncio.to_thread(self._in_tx, outbound_claims.release, unstarted)
            except Exception:
                log.exception("delivery: could not release claims at stop")
        await self.app.heartbeat.drop(leases.OUTBOUND, self.owner)

    def _in_tx(self, fn, *args, **kw):
        with self.app.store.session() as s:
            return fn(s, *args, **kw)

    async def drain(self, timeout: float = 60.0) -> None:
        """Run until nothing is due and nothing is in flight (`listmgr deliver --once`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet = 0
        while loop.time() < deadline:
            await asyncio.sleep(0.1)
            busy = self.inflight or any(rq.txs for rq in self._routes.values())
            if busy:
                quiet = 0
                continue
            due = await asyncio.to_thread(self._in_tx, outbound_claims.due_count)
            pending = await asyncio.to_thread(self._in_tx, outbound_claims.returns_pending)
            quiet = quiet + 1 if not due and not pending else 0
            if quiet >= 3:
                return

    # ------------------------------------------------------------------ claiming

    async def _claimer(self) -> None:
        cfg = self.cfg
        while not self.stopping:
            room = self.max_inflight - self.inflight
            interactive_only = False
            if room < min(cfg.batch_size, self.max_inflight) // 2 + 1:
                # Full of claimed work (a big post): wait for room, but look for interactive
                # mail at every poll meanwhile, so a reply never waits behind the post.
                self._room.clear()
                try:
                    await asyncio.wait_for(self._room.wait(), cfg.poll_interval)
                    continue
                except asyncio.TimeoutError:
                    interactive_only = True
                    room = cfg.max_recipients_per_transaction
            known = {mid: m.queue_id for mid, m in self._msgs.items()}
            try:
                items, current = await asyncio.to_thread(
                    self._claim, min(cfg.batch_size, room), interactive_only, known)
            except Exception:
                log.exception("delivery: claim failed")
                items, current = [], {}
                await asyncio.sleep(cfg.poll_interval)
            if self.stopping:
                if items:
                    await asyncio.to_thread(self._in_tx, outbound_claims.release, [i.rid for i in items])
                return
            if not items:
                if not interactive_only:
                    await self.app.wait("outbound", cfg.poll_interval)
                continue
            self.inflight += len(items)
            try:
                await self._dispatch(items, current)
            except Exception:
                log.exception("delivery: dispatch failed; giving the claims back")
                self.inflight -= len(items)
                try:
                    await asyncio.to_thread(self._in_tx, outbound_claims.release,
                                            [i.rid for i in items])
                except Exception:
                    log.exception("delivery: could not give claims back; they return when "
                                  "their lease runs out")
                await asyncio.sleep(cfg.poll_interval)

    def _claim(self, limit: int, interactive_only: bool, known: dict[int, str]
               ) -> tuple[list[Item], dict[int, str]]:
        """Claim due recipients and, in the same store transaction, read the queue ids of
        their messages whose bodies are cached (`known`: id -> queue id)."""
        with self.app.store.session() as s:
            items = outbound_claims.claim(s, self.owner, self.lease, limit,
                                          interactive_only=interactive_only)
            cached = {it.message_id for it in items} & known.keys()
            return items, outbound_claims.queue_ids(s, cached) if cached else {}

    async def _dispatch(self, items: list[Item], current: dict[int, str]) -> None:
        """`current`: the queue ids of the claimed messages whose bodies were cached."""
        ids = {it.message_id for it in items}
        cached = ids & self._msgs.keys()
        if cached:
            # SQLite gives a purged message's id to the next new one: a cached body is used
            # only for the message it was loaded for.
            for mid in cached:
                if current.get(mid) != self._msgs[mid].queue_id and not self._msg_refs[mid]:
                    self._cache_bytes -= len(self._msgs.pop(mid).payload)
                    del self._msg_refs[mid]
        missing = ids - self._msgs.keys()
        if missing:
            loaded = await asyncio.to_thread(self._load, missing)
            for loaded_msg in loaded.values():
                self._cache_put(loaded_msg)
        smarthost = bool(self.cfg.smarthost)
        local = set(self.config.local_domains)

        def route_of(domain: str) -> str:
            if smarthost:
                return SMARTHOST
            return LOCAL if domain in local else domain

        ready: list[Item] = []
        personal: list[Item] = []
        for it in items:
            msg = self._msgs.get(it.message_id)
            if msg is None:  # its row vanished (deleted from the queue meanwhile)
                self.inflight -= 1
                continue
            if msg.hops > MAX_HOPS:
                diag = (f"554 5.4.6 Too many hops {msg.hops} ({MAX_HOPS} max): from "
                        f"<{msg.mail_from}> via {self.config.hostname}, to <{it.rcpt}>")
                self._submit_now(msg, [it], [Outcome(it.rid, FAILED, "5.4.6", diag, "",
                                                     (diag,))])
                continue
            if not msg.payload:
                diag = "451 4.3.0 queue file missing"
                self._submit_now(msg, [it], [Outcome(it.rid, DEFERRED, "4.3.0", diag)])
                continue
            ready.append(it)
            if msg.personal is not None:
                personal.append(it)
        if personal:
            await self._personalise(personal)
        for route, txs in plan(ready, route_of=route_of,
                               per_transaction=self.cfg.max_recipients_per_transaction,
                               per_group=self.per_group).items():
            rq = self._routes.get(route)
            if rq is None:
                rq = self._routes[route] = _RouteQueue()
            for tx in txs:
                self._msg_refs[tx.message_id] += 1
            # Interactive mail goes ahead of the bulk transactions already waiting here.
            rq.txs.extend(tx for tx in txs if tx.items[0].priority != INTERACTIVE)
            rq.txs.extendleft(reversed([tx for tx in txs if tx.items[0].priority == INTERACTIVE]))
            rq.more.set()
            want = min(self.per_host, len(rq.txs)) - rq.lanes
            for _ in range(max(0, want)):
                rq.lanes += 1
                task = asyncio.create_task(self._lane(route, rq), name=f"lane {route}")
                self._lanes.add(task)
                task.add_done_callback(self._lanes.discard)

    async def _personalise(self, items: list[Item]) -> None:
        """Give each item its per-recipient parts (one member lookup per list per batch)."""
        wanted: dict[str, set[str]] = {}
        for it in items:
            lp = self._msgs[it.message_id].personal
            if lp is not None and lp.needs_members:
                wanted.setdefault(lp.name, set()).add(normalise(it.rcpt))
        infos = {}
        if wanted:
            infos = await asyncio.to_thread(self._member_infos, wanted)
        work = [(it, self._msgs[it.message_id]) for it in items]
        if any(msg.copy_signer is not None for _, msg in work):
            # A DKIM signature per copy is CPU work (RSA): off the event loop.
            await asyncio.to_thread(self._give_parts, work, infos)
        else:
            self._give_parts(work, infos)

    @staticmethod
    def _give_parts(work: list[tuple[Item, Message]], infos: dict) -> None:
        for it, msg in work:
            lp = msg.personal
            if lp is None:
                continue
            member = infos.get(lp.name, {}).get(normalise(it.rcpt)) if lp.needs_members \
                else None
            it.mail_from, head = lp.parts(it.rcpt, member)
            it.head = copies.final_head(msg.copy_signer, head)

    def _member_infos(self, wanted: dict[str, set[str]]) -> dict:
        with self.app.store.session() as s:
            return {name: bounce_store.member_infos(s, name, keys)
                    for name, keys in wanted.items()}

    def _list_parts(self, s, name: str) -> ListParts | None:
        mode = bounce_store.list_parts_settings(s, name)
        if mode is None:
            return None  # the list is gone: its copies go out as they are
        base_url = self.config.web.base_url
        if mode == "off" and not base_url:
            return None
        if base_url and self._secret is None:
            self._secret = site_secret.load(self.config.data_dir)
        return ListParts(name=name, domain=self.config.domain, verp=mode, base_url=base_url,
                         secret=self._secret or b"", base=bounce_store.list_bounce_base(s, name))

    def _load(self, ids: set[int]) -> dict[int, Message]:
        with self.app.store.session() as s:
            rows = outbound_claims.messages(s, ids)
            parts = {name: self._list_parts(s, name)
                     for name in {r.personal for r in rows.values() if r.personal}}
        out = {}
        give_up = dt.timedelta(seconds=self.cfg.give_up_after)
        for mid, row in rows.items():
            try:
                data = self.app.spool.read(row.spool_path) if row.spool_path else None
            except OSError:
                log.error("%s queue file %s missing", row.queue_id, row.spool_path)
                data = None
            lp = parts.get(row.personal) if row.personal else None
            payload, copy_signer = copies.shared_payload(
                self.app.signer, lp, prepare_payload(data) if data is not None else b"")
            out[mid] = Message(id=mid, queue_id=row.queue_id, mail_from=row.mail_from,
                               payload=payload, hops=hop_count(data) if data else 0,
                               size=row.size, arrival_at=row.arrival_at,
                               deadline=row.arrival_at + give_up, personal=lp,
                               copy_signer=copy_signer)
        return out

    def _cache_put(self, msg: Message) -> None:
        self._msgs[msg.id] = msg
        self._cache_bytes += len(msg.payload)
        while self._cache_bytes > CACHE_BYTES:
            victim = next((k for k in self._msgs if not self._msg_refs[k]), None)
            if victim is None or victim == msg.id:
                break
            self._cache_bytes -= len(self._msgs.pop(victim).payload)
            del self._msg_refs[victim]

    # ------------------------------------------------------------------ lanes

    async def _lane(self, route: str, rq: _RouteQueue) -> None:
        """One connection's worth of work on a route. Every transaction taken off the
        route's queue is let go of exactly once (`_let_go`): its outcomes recorded, or its
        claims given back, whichever way the lane ends."""
        transport = self.transport
        assert transport is not None, "lanes run only after start()"
        client: SMTPClient | None = None
        taken: collections.deque[Transaction] = collections.deque()  # not yet let go of
        try:
            async with self._sem:
                while not self.stopping:
                    if not rq.txs:
                        rq.more.clear()
                        try:
                            await asyncio.wait_for(rq.more.wait(), LANE_IDLE)
                        except asyncio.TimeoutError:
                            pass
                        if not rq.txs:
                            return
                        continue
                    taken.append(rq.txs.popleft())
                    tx = taken[0]
                    msg = self._msgs[tx.message_id]
                    if client is None or not client.usable:
                        client, route_info, reason = await transport.connect(route)
                        if client is None:
                            # Nobody to talk to: every transaction now queued for this route
                            # shares the verdict (no reconnect per transaction).
                            taken.extend(rq.txs)
                            rq.txs.clear()
                            while taken:
                                t = taken[0]
                                m = self._msgs[t.message_id]
                                outs = (route_outcomes(route_info, t) if route_info is not None
                                        else unreachable_outcomes(reason, t))
                                self._log(m, t, outs)
                                await self._submit(m, t, outs, taken)
                            return
                    try:
                        outcomes, keep = await transport.send(client, tx, msg)
                    except Exception as exc:  # a bug: defer this transaction, keep going
                        log.exception("%s delivery bug; deferring the transaction", msg.queue_id)
                        diag = f"451 4.3.0 internal error ({type(exc).__name__})"
                        outcomes = [Outcome(it.rid, DEFERRED, "4.3.0", diag, client.host)
                                    for it in tx.items]
                        keep = False
                    self._log(msg, tx, outcomes)
                    await self._submit(msg, tx, outcomes, taken)
                    if not keep:
                        await client.quit()
                        client = None
        except Exception:
            log.exception("delivery: lane %s failed; giving its transaction back", route)
        finally:
            if taken:  # taken, never submitted: due again at once
                rids = [it.rid for t in taken for it in t.items]
                self.inflight -= len(rids)
                for t in taken:
                    self._let_go(t)
                taken.clear()
                await self._give_back(rids)
            rq.lanes -= 1
            if client is not None:
                await client.quit()
            if not rq.txs and rq.lanes == 0 and self._routes.get(route) is rq:
                del self._routes[route]
            elif rq.txs and rq.lanes == 0 and not self.stopping:
                # Work arrived while this lane was leaving: hand it to a fresh lane.
                rq.lanes += 1
                task = asyncio.create_task(self._lane(route, rq), name=f"lane {route}")
                self._lanes.add(task)
                task.add_done_callback(self._lanes.discard)

    def _let_go(self, tx: Transaction) -> None:
        """A transaction no longer needs its message (taken once per transaction queued; the
        marker lets go of the transactions handed to it)."""
        self._msg_refs[tx.message_id] -= 1

    def _log(self, msg: Message, tx: Transaction, outcomes: list[Outcome]) -> None:
        sent = [o for o in outcomes if o.result == SENT]
        metrics.DELIVERIES.labels("sent").inc(len(sent))
        if sent:
            log.info("%s to=%d rcpt(s) relay=%s status=sent", msg.queue_id, len(sent),
                     sent[0].remote_mta or tx.route)
        for o, it in zip(outcomes, tx.items):
            if o.result != SENT:
                metrics.DELIVERIES.labels("bounced" if o.result == FAILED else "deferred").inc()
                log.warning("%s to=<%s> relay=%s tries=%d status=%s (%s)", msg.queue_id, it.rcpt,
                         o.remote_mta or tx.route, it.attempts + 1,
                         "bounced" if o.result == FAILED else "deferred", o.diagnostic)

    # ------------------------------------------------------------------ marking

    async def _submit(self, msg: Message, tx: Transaction, outcomes: list[Outcome],
                      taken: collections.deque[Transaction]) -> None:
        """Hand `tx`'s outcomes to the marker (from then on the marker answers for its
        claims and lets go of `tx`: it leaves the lane's `taken`) and wait until they are
        recorded, or given back (then this raises)."""
        marked = self._marked(msg, tx.items, outcomes)
        fut = asyncio.get_running_loop().create_future()
        self._marks.put_nowait((marked, fut, True))
        taken.remove(tx)
        await fut

    def _submit_now(self, msg: Message, items: list[Item], outcomes: list[Outcome]) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._marks.put_nowait((self._marked(msg, items, outcomes), fut, False))

    async def _give_back(self, rids: list[int]) -> None:
        """Release claims whose outcome could not be recorded: due again at once, for any
        process (the heartbeat must not keep them; best effort, else their lease runs out)."""
        try:
            await asyncio.to_thread(self._in_tx, outbound_claims.release, rids)
        except Exception:
            log.exception("delivery: could not give claims back; they return when their "
                          "lease runs out")

    def _marked(self, msg: Message, items: list[Item], outcomes: list[Outcome]
                ) -> outbound_claims.Marked:
        return outbound_claims.Marked(message_id=msg.id, null_sender=not msg.mail_from,
                               deadline=msg.deadline,
                               attempts={it.rid: it.attempts for it in items},
                               outcomes=outcomes)

    async def _marker(self) -> None:
        while True:
            first = await self._marks.get()
            batch = [first]
            while not self._marks.empty():
                batch.append(self._marks.get_nowait())
            # A message with more of its transactions here, taken and not yet recorded, has
            # recipients pending: the store is not asked whether it is finished (a VERP post
            # records a group of members at a time); the record of its last one asks.
            held = collections.Counter(m.message_id for m, _, ref in batch if ref)
            unfinished = {mid for mid, n in held.items() if self._msg_refs[mid] > n}
            try:
                paths = await asyncio.to_thread(self._mark, [m for m, _, _ in batch],
                                                unfinished)
                err = None
            except Exception as exc:
                log.exception("delivery: could not record outcomes; giving the claims back")
                paths, err = [], exc
                await self._give_back([o.rid for m, _, _ in batch for o in m.outcomes])
            for path in paths:
                self.app.spool.remove(path)
            n = 0
            for m, fut, ref in batch:
                if ref:  # recorded or given back: the transaction no longer needs its message
                    self._msg_refs[m.message_id] -= 1
                n += len(m.outcomes)
                if not fut.done():
                    if err is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(err)
                        fut.exception()  # retrieved: the lane logs it
            self.inflight -= n
            self._room.set()
            if any(o.result != SENT for m, _, _ in batch for o in m.outcomes):
                self._kick_housekeeping()

    def _mark(self, batch: list[outbound_claims.Marked], unfinished: Set[int] = frozenset()
              ) -> list[str]:
        """Record `batch`; the spool files of the messages it finished, to remove. The
        messages in `unfinished` are known to have recipients pending."""
        with self.app.store.session() as s:
            touched = outbound_claims.mark(s, self.owner, batch, min_backoff=self.cfg.min_backoff,
                                    max_backoff=self.cfg.max_backoff)
            return outbound_claims.finish(s, touched - unfinished)

    # ------------------------------------------------------------------ housekeeping

    def _kick_housekeeping(self) -> None:
        self._idle.set()

    async def _housekeeper(self) -> None:
        ticks = 0
        while True:
            try:
                await asyncio.wait_for(self._idle.wait(), self.cfg.poll_interval)
            except asyncio.TimeoutError:
                pass
            self._idle.clear()
            try:
                queued = await asyncio.to_thread(self.housekeeping, ticks % 60 == 0)
                if queued:
                    self.app.notify("outbound")
            except Exception:
                log.exception("delivery: housekeeping failed")
            ticks += 1

    def housekeeping(self, purge: bool = False) -> int:
        """Returned mail and warnings due now; returns how many notices were queued."""
        n = 0
        with self.app.store.session() as s:
            mids = outbound_claims.messages_to_return(s)
        for mid in mids:
            n += self._return_one(mid)
        if self.cfg.warn_after < self.cfg.give_up_after:
            with self.app.store.session() as s:
                mids = outbound_claims.messages_to_warn(s, self.cfg.warn_after)
            for mid in mids:
                n += self._warn_one(mid)
        if purge:
            with self.app.store.session() as s:
                outbound_claims.purge_finished(s, self.cfg.keep_finished)
        return n

    def _notice(self, s, kind: str, row: outbound_claims.MessageRow, rcpts: list) -> None:
        try:
            data = self.app.spool.read(row.spool_path) if row.spool_path else None
        except OSError:
            data = None
        original = dsn.Original(row.queue_id, row.mail_from, row.arrival_at,
                                row.received_from, row.size)
        failures = [dsn.Failed(r.rcpt, r.status, r.diagnostic, r.remote_mta, r.last_attempt_at,
                               r.transcript) for r in rcpts]
        body = dsn.build(kind, original, failures, data, hostname=self.config.hostname,
                         language=self.config.language, warn_after=self.cfg.warn_after,
                         give_up_after=self.cfg.give_up_after,
                         return_size_limit=self.cfg.return_size_limit,
                         charset=japanese_charset(self.config))
        out = enqueue(s, self.app.spool, mail_from="", recipients=[row.mail_from], data=body,
                      origin="dsn")
        log.info("%s sender=<%s> notice=%s queued=%s rcpts=%d", row.queue_id, row.mail_from,
                 kind, out.queue_id, len(rcpts))

    def _return_one(self, mid: int) -> int:
        paths: list[str] = []
        with self.app.store.session() as s:
            row, rcpts = outbound_claims.take_returns(s, mid)
            if row is None:
                return 0
            sent = False
            if row.personal or row.origin.startswith("post:"):
                # A list post: our own failures are hard bounces of those members, scored
                # directly (no returned mail to parse back in).
                name = row.personal or row.origin[len("post:"):]
                bounce_processor.delivery_failures(
                    self.app, s, name, [(r.rcpt, r.diagnostic or r.status) for r in rcpts])
            elif row.mail_from:
                self._notice(s, dsn.FAILURE, row, rcpts)
                sent = True
            paths = outbound_claims.finish(s, [mid])
        for p in paths:
            self.app.spool.remove(p)
        return int(sent)

    def _warn_one(self, mid: int) -> int:
        with self.app.store.session() as s:
            row, rcpts = outbound_claims.take_warning(s, mid)
            if row is None:
                return 0
            self._notice(s, dsn.WARNING, row, rcpts)
        return 1

