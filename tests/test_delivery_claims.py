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


def test_bulk_rows_keep_every_address_exactly_and_in_order(app):
    """The fan-out's bulk insert (over 5,000 rows: two statements) and the claim's read
    give back each address as queued (non-ASCII, quotes, backslashes, JSON-looking text),
    with its domain, in the order queued."""
    odd = ['"a.b\\c"@example.net', "j\u00f6rg@b\u00fccher.example", "x'y@example.org",
           '["not","json"]@example.com', "\u65e5\u672c@\u4f8b.jp", "plain@example.com"]
    rcpts = [f"m{i}@r{i % 7}.example" for i in range(5003)] + odd
    with app.store.session() as s:
        msg = enqueue(s, app.spool, mail_from="owner-l@example.org", recipients=rcpts,
                      data=b"Subject: x\r\n\r\nx\r\n")
        mid = msg.id
    with app.store.session() as s:
        rows = s.execute(select(OutboundRecipient.id, OutboundRecipient.rcpt,
                                OutboundRecipient.domain, OutboundRecipient.state)
                         .where(OutboundRecipient.message_id == mid)
                         .order_by(OutboundRecipient.id)).all()
    assert [r.rcpt for r in rows] == rcpts
    assert [r.domain for r in rows[-6:]] == ["example.net", "b\u00fccher.example",
                                             "example.org", "example.com", "\u4f8b.jp",
                                             "example.com"]
    assert {r.state for r in rows} == {"queued"}
    claimed = []
    while True:
        with app.store.session() as s:
            got = outbound_claims.claim(s, "w1", 600, 2000)
        if not got:
            break
        claimed.extend(got)
    assert sorted((i.rid, i.rcpt, i.domain, i.attempts, i.message_id) for i in claimed) == \
        [(r.id, r.rcpt, r.domain, 0, mid) for r in rows]
