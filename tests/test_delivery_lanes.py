"""A delivery lane that fails gives its transaction back and lets go of the message body."""

from __future__ import annotations

from sqlalchemy import select

from listmgr.delivery import worker as worker_mod
from listmgr.store.models import OutboundMessage
from tests.test_delivery import queue_mail, states, wait_until


def _worker(srv) -> worker_mod.DeliveryWorker:
    return next(c for c in srv.service.components if isinstance(c, worker_mod.DeliveryWorker))


def _message_id(srv, qid: str) -> int:
    with srv.app.store.session() as s:
        return s.scalar(select(OutboundMessage.id).where(OutboundMessage.queue_id == qid))


def test_a_failed_lane_lets_go_of_its_message(manual_clock, server, sink, monkeypatch):
    """A bug in a lane (here: recording the outcome's log line fails once) gives the
    transaction back; it is delivered on the next try. The lane must also let go of the
    message, or the worker keeps its body for good: it is never evicted from the cache,
    and when SQLite gives the purged message's id to a new one, the old body would go out
    to the new message's recipients."""
    from listmgr.store import outbound_claims
    monkeypatch.setattr(worker_mod, "CACHE_BYTES", 0)  # keep no body nobody uses
    real_log = worker_mod.DeliveryWorker._log
    failed: list[str] = []

    def log_once(self, msg, tx, outcomes):
        if not failed:
            failed.append(msg.queue_id)
            raise RuntimeError("injected fault in a lane")
        return real_log(self, msg, tx, outcomes)

    monkeypatch.setattr(worker_mod.DeliveryWorker, "_log", log_once)
    srv = server()
    first = queue_mail(srv, "alice@example.org", ["bob@remote.example"],
                       data=b"Subject: first\r\n\r\nold body\r\n")
    wait_until(lambda: states(srv, first) == {"bob@remote.example": "sent"}, what="first")
    assert failed == [first]
    first_id = _message_id(srv, first)
    manual_clock.advance(days=2)
    with srv.app.store.session() as s:
        assert outbound_claims.purge_finished(s, 86400) == 1
    second = queue_mail(srv, "alice@example.org", ["carol@remote.example"],
                        data=b"Subject: second\r\n\r\nnew body\r\n")
    got = sink.wait_for(lambda r: any("carol@remote.example" in m.rcpt_tos for m in r))
    [carol] = [m for m in got if "carol@remote.example" in m.rcpt_tos]
    assert carol.message["Subject"] == "second" and b"new body" in carol.data
    wait_until(lambda: states(srv, second) == {"carol@remote.example": "sent"}, what="second")
    worker = _worker(srv)
    if first_id != _message_id(srv, second):
        assert first_id not in worker._msgs  # the finished message's body was let go
    # no transaction holds a message any more (the lane lets go just after the marker's
    # commit, which the state above already shows)
    wait_until(lambda: not +worker._msg_refs, what="no message held")
