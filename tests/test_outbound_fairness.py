"""Outbound fairness: interactive mail (a command reply) sent after a big post reaches the
smarthost before the post's bulk deliveries are done, and is claimed first."""

from __future__ import annotations

import asyncio
import smtplib
import time

import pytest

from listmgr.store import lists as repo
from listmgr.store import outbound_claims
from listmgr.store.models import BULK, INTERACTIVE
from listmgr.store.outbound import enqueue
from tests.support import RecordingSink, _SinkHandler

MEMBERS = 3_000


class _SlowData(_SinkHandler):
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.1)  # a remote taking its time over each transaction
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def sink():
    s = RecordingSink()
    s.controller.handler = _SlowData(s)
    s.start()
    yield s
    s.stop()


def test_claims_take_interactive_before_bulk_however_old(app):
    with app.store.session() as s:
        enqueue(s, app.spool, mail_from="owner-big@example.org",
                recipients=[f"m{i}@d.example.net" for i in range(300)], data=b"Subject: p\r\n\r\n",
                priority=BULK)
    with app.store.session() as s:
        enqueue(s, app.spool, mail_from="", recipients=["joe@example.net"],
                data=b"Subject: reply\r\n\r\n")
    with app.store.session() as s:
        first = outbound_claims.claim(s, "test:1:x", 60, 50)
        assert first[0].rcpt == "joe@example.net" and first[0].priority == INTERACTIVE
        assert [i.priority for i in first[1:]] == [BULK] * 49
    with app.store.session() as s:
        assert outbound_claims.claim(s, "test:1:x", 60, 50, interactive_only=True) == []


def test_a_command_reply_sent_after_a_big_post_arrives_before_the_post_is_delivered(
        server, sink):
    srv = server(delivery__per_host_concurrency=2, delivery__max_recipients_per_transaction=50,
                 delivery__poll_interval="1s")
    members = [f"m{i:05d}@d{i % 7}.example.net" for i in range(MEMBERS)]

    def make(s):
        ml = repo.create_list(s, "big", ["owner@example.org"], password="pw")
        repo.set_setting(s, ml, "post_policy", "open")
        repo.set_setting(s, ml, "verp", "off")  # shared transactions: the timing below
        repo.add_members(s, ml, members)
    srv.call(make)

    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
        c.sendmail("poster@outside.example", ["big@example.org"],
                   b"From: poster@outside.example\r\nTo: big@example.org\r\n"
                   b"Subject: big news\r\n\r\nHello everyone.\r\n")
    # The post's deliveries are under way (60 transactions at 0.1 s each, two at a time).
    sink.wait_for(lambda got: len(got) >= 2, timeout=60)
    t0 = time.monotonic()
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
        c.sendmail("joe@example.net", ["majordomo@example.org"],
                   b"From: joe@example.net\r\nTo: majordomo@example.org\r\nSubject: x\r\n\r\n"
                   b"lists\r\n")
    got = sink.wait_for(lambda got: any("joe@example.net" in m.rcpt_tos for m in got),
                        timeout=60)
    waited = time.monotonic() - t0
    post_rcpts = sum(len(m.rcpt_tos) for m in got if "joe@example.net" not in m.rcpt_tos)
    # Without priorities the reply would be claimed after every member (its due time is
    # the latest): it would come after all 3,000.
    assert post_rcpts < MEMBERS * 0.75, (post_rcpts, waited)
    sink.wait_for(lambda got: sum(len(m.rcpt_tos) for m in got) >= MEMBERS + 1, timeout=120)
    print(f"reply after {waited:.2f} s, with {post_rcpts} of {MEMBERS} post recipients sent")
