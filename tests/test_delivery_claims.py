"""Claims: two workers never take the same recipient; a lapsed lease is taken again."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt

from sqlalchemy import select, update

from listmgr.delivery.worker import DeliveryWorker
from listmgr.store import outbound_claims
from listmgr.store.models import OutboundRecipient, utcnow
from listmgr.store.outbound import enqueue


def _queue(app, n: int) -> None:
    with app.store.session() as s:
        enqueue(s, app.spool, mail_from="alice@example.org",
                recipients=[f"r{i}@remote.example" for i in range(n)],
                data=b"Subject: x\r\n\r\nx\r\n")


def test_concurrent_claims_are_disjoint(app):
    _queue(app, 30)
    if app.store.is_sqlite:
        # One writer at a time: the second claim starts after the first commits.
        with app.store.session() as s:
            first = outbound_claims.claim(s, "w1", 600, 20)
        with app.store.session() as s:
            second = outbound_claims.claim(s, "w2", 600, 20)
    else:
        # Both transactions open at once: SKIP LOCKED hands the second the other rows.
        with app.store.session() as s1, app.store.session() as s2:
            first = outbound_claims.claim(s1, "w1", 600, 20)
            second = outbound_claims.claim(s2, "w2", 600, 20)
    a, b = {i.rid for i in first}, {i.rid for i in second}
    assert len(a) == 20 and len(b) == 10 and not a & b
    with app.store.session() as s:
        assert outbound_claims.claim(s, "w3", 600, 20) == []  # everything is leased
        # A worker died: its lease lapses and the rows are due again for the next claimer.
        s.execute(update(OutboundRecipient).where(OutboundRecipient.lease_owner == "w1")
                  .values(lease_until=utcnow() - dt.timedelta(seconds=1),
                          next_attempt_at=utcnow() - dt.timedelta(seconds=1)))
    with app.store.session() as s:
        assert {i.rid for i in outbound_claims.claim(s, "w3", 600, 50)} == a


def test_two_workers_deliver_each_recipient_once(app, sink):
    n = 600
    _queue(app, n)
    cfg = app.config.with_overrides(delivery__smarthost=f"127.0.0.1:{sink.port}",
                                    delivery__batch_size=50)
    app.config = cfg

    async def run() -> None:
        app.loop = asyncio.get_running_loop()
        workers = [DeliveryWorker(app, owner=f"test:{i}:delivery") for i in range(2)]
        for w in workers:
            await w.start()
        try:
            await asyncio.gather(*(w.drain(timeout=60) for w in workers))
        finally:
            for w in workers:
                await w.stop()

    asyncio.run(run())
    counts = collections.Counter(sink.recipients())
    assert len(counts) == n and set(counts.values()) == {1}
    with app.store.session() as s:
        assert set(s.scalars(select(OutboundRecipient.state))) == {"sent"}
