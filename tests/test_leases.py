"""Claims kept alive by the heartbeat (store/leases.py): renewed while the claimer lives,
taken over by another claimer once they lapse, and a late result of the old owner is not
written over the new owner's."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import event, func, select

from listmgr import clock
from listmgr.store import inbound, leases, outbound_claims
from listmgr.store.claims import claim
from listmgr.store.leases import Heartbeat
from listmgr.store.models import Fanout, InboundTask, MailingList, OutboundRecipient
from listmgr.store.outbound import enqueue
from listmgr.store.outbound_types import SENT, Outcome
from tests.test_inbound_workers import store_message

LEASE = 30.0


def _statements(app):
    """Count the statements the engine runs (to show a beat is one UPDATE per kind)."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement.split()[0].upper())
    event.listen(app.store.engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(app.store.engine, "before_cursor_execute", record)


def test_a_renewed_inbound_claim_is_not_taken_a_lapsed_one_is(app):
    with clock.use(clock.ManualClock()) as c:
        for _ in range(3):
            store_message(app, [inbound.Destination("command", "", "majordomo@example.org")])
        with app.store.session() as s:
            held = inbound.claim(s, ["command"], owner="h:1:a", lease=LEASE, limit=10)
        assert len(held) == 3
        c.advance(LEASE - 5)
        with app.store.session() as s:
            assert leases.renew(s, leases.INBOUND, ["h:1:a"], LEASE) == 3
        c.advance(LEASE - 5)  # past the first lease, within the renewed one
        with app.store.session() as s:
            assert inbound.claim(s, ["command"], owner="h:2:b", lease=LEASE, limit=10) == []
        c.advance(10)  # no beat since: the claims lapsed, another process takes them
        with app.store.session() as s:
            assert sorted(inbound.claim(s, ["command"], owner="h:2:b", lease=LEASE,
                                        limit=10)) == sorted(held)
            # the old owner's renewal no longer touches them
            assert leases.renew(s, leases.INBOUND, ["h:1:a"], LEASE) == 0


def test_outbound_renewal_moves_the_due_time_and_a_lost_lease_writes_nothing(app):
    with clock.use(clock.ManualClock()) as c:
        with app.store.session() as s:
            out = enqueue(s, app.spool, mail_from="a@example.org",
                          recipients=[f"r{i}@remote.example" for i in range(5)],
                          data=b"Subject: x\r\n\r\nbody\r\n")
        with app.store.session() as s:
            mine = outbound_claims.claim(s, "h:1:delivery", LEASE, 2)
        c.advance(LEASE - 1)
        with app.store.session() as s:
            assert leases.renew(s, leases.OUTBOUND, ["h:1:delivery"], LEASE) == 2
        c.advance(5)
        with app.store.session() as s:  # the renewed two are not due; the other three are
            theirs = outbound_claims.claim(s, "h:2:delivery", LEASE, 10)
        assert {i.rid for i in theirs}.isdisjoint({i.rid for i in mine})
        assert len(theirs) == 3
        c.advance(LEASE - 10)
        with app.store.session() as s:  # h:2 beats, h:1 does not (it died)
            assert leases.renew(s, leases.OUTBOUND, ["h:2:delivery"], LEASE) == 3
        c.advance(10)
        with app.store.session() as s:  # h:1's two lapsed: h:2 takes them over
            taken = outbound_claims.claim(s, "h:2:delivery", LEASE, 10)
        assert {i.rid for i in taken} == {i.rid for i in mine}
        with app.store.session() as s:  # h:2 delivers them ...
            outbound_claims.mark(s, "h:2:delivery", [outbound_claims.Marked(
                out.id, False, clock.now() + dt.timedelta(days=1), {},
                [Outcome(i.rid, SENT, "2.0.0", "250 ok", "mx-b") for i in taken])],
                min_backoff=1, max_backoff=2)
        with app.store.session() as s:  # ... and h:1's late result is not written over it
            outbound_claims.mark(s, "h:1:delivery", [outbound_claims.Marked(
                out.id, False, clock.now() + dt.timedelta(days=1), {},
                [Outcome(i.rid, SENT, "2.0.0", "250 ok", "mx-a") for i in mine])],
                min_backoff=1, max_backoff=2)
            mtas = set(s.scalars(select(OutboundRecipient.remote_mta).where(
                OutboundRecipient.id.in_([i.rid for i in mine]))))
        assert mtas == {"mx-b"}


def test_fanout_claims_are_renewed(app):
    with clock.use(clock.ManualClock()) as c:
        with app.store.session() as s:
            s.add(MailingList(name="demo"))
            s.flush()
            lid = s.scalar(select(MailingList.id))
            out = enqueue(s, app.spool, mail_from="owner-demo@example.org", recipients=(),
                          data=b"Subject: x\r\n\r\nbody\r\n")
            s.add(Fanout(message_id=out.id, list_id=lid))
        with app.store.session() as s:
            assert len(claim(s, Fanout, where=[], owner="h:1:fanout", lease=LEASE,
                             limit=1)) == 1
        c.advance(LEASE - 1)
        with app.store.session() as s:
            assert leases.renew(s, leases.FANOUT, ["h:1:fanout"], LEASE) == 1
        c.advance(5)
        with app.store.session() as s:
            assert claim(s, Fanout, where=[], owner="h:2:fanout", lease=LEASE, limit=1) == []


def test_the_heartbeat_renews_every_holder_with_one_update_per_kind(app):
    for _ in range(4):
        store_message(app, [inbound.Destination("command", "", "majordomo@example.org"),
                            inbound.Destination("relay", "x@remote.example", "x@remote.example")])
    with app.store.session() as s:
        inbound.claim(s, ["command"], owner="h:1:inbound-commands", lease=LEASE, limit=10)
        inbound.claim(s, ["relay"], owner="h:1:inbound-forward", lease=LEASE, limit=10)
        before = {r[0]: r[1] for r in s.execute(select(InboundTask.id, InboundTask.lease_until))}

    async def run() -> tuple[int, list[str]]:
        hb = Heartbeat()
        hb.hold(app.store, leases.INBOUND, "h:1:inbound-commands", 0.6)
        hb.hold(app.store, leases.INBOUND, "h:1:inbound-forward", 0.6)
        hb.hold(app.store, leases.OUTBOUND, "h:1:delivery", 0.6)
        seen, stop = _statements(app)
        try:
            while hb.beats < 2:
                await asyncio.sleep(0.05)
        finally:
            stop()
        await hb.drop(leases.INBOUND, "h:1:inbound-commands")
        await hb.drop(leases.INBOUND, "h:1:inbound-forward")
        assert hb._task is not None  # still one holder
        await hb.drop(leases.OUTBOUND, "h:1:delivery")
        assert hb._task is None
        return hb.beats, seen

    beats, seen = asyncio.run(run())
    updates = [st for st in seen if st == "UPDATE"]
    # per beat: one UPDATE for both inbound owners, one for outbound
    assert len(updates) <= 2 * beats + 2 and len(updates) >= 4
    with app.store.session() as s:
        after = {r[0]: r[1] for r in s.execute(select(InboundTask.id, InboundTask.lease_until))}
        assert s.scalar(select(func.count()).select_from(InboundTask)) == 8
    assert all(after[k] != before[k] for k in before)


def test_an_idle_worker_does_not_keep_claims_it_lost_track_of(app):
    """A worker with nothing in hand (busy() false) has its rows left to run out: a claim
    an error path could not give back is not held forever by the heartbeat."""
    store_message(app, [inbound.Destination("command", "", "majordomo@example.org")])
    with app.store.session() as s:
        inbound.claim(s, ["command"], owner="h:1:inbound-commands", lease=LEASE, limit=10)
    busy = [False]

    async def beat() -> int:
        hb = Heartbeat()
        hb.hold(app.store, leases.INBOUND, "h:1:inbound-commands", LEASE,
                busy=lambda: busy[0])
        try:
            return await asyncio.to_thread(hb.beat)
        finally:
            await hb.drop(leases.INBOUND, "h:1:inbound-commands")

    assert asyncio.run(beat()) == 0
    busy[0] = True
    assert asyncio.run(beat()) == 1
