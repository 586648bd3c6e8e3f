"""Pure delivery policy: backoff, reply classification, grouping, payload, returned mail."""

from __future__ import annotations

import datetime as dt
import email

from flufl.bounce import all_failures, scan_message

from listmgr.delivery import dsn
from listmgr.delivery.queue import (
    DEFERRED,
    FAILED,
    SENT,
    Item,
    Reply,
    backoff,
    next_attempt,
    plan,
    reason_class,
    subject_class,
    validate_address,
)
from listmgr.delivery.smtpclient import prepare_payload


def test_backoff_is_postfix_doubling_with_a_ceiling():
    assert [backoff(n, 300, 4000) for n in range(1, 7)] == [300, 600, 1200, 2400, 4000, 4000]
    now = dt.datetime(2026, 1, 1)
    deadline = now + dt.timedelta(seconds=100)
    assert next_attempt(now, 1, 300, 4000, deadline) == deadline  # never past the give-up


def test_replies_classify_per_code():
    assert Reply(250, "2.1.5 OK").outcome == SENT
    assert Reply(450, "4.2.0 later").outcome == DEFERRED
    assert Reply(421, "closing").outcome == DEFERRED
    assert Reply(550, "5.1.1 <x>... User unknown").outcome == FAILED
    assert Reply(550, "5.1.1 <x>... User unknown").status == "5.1.1"
    assert Reply(554, "no enhanced code").status == "5.0.0"
    assert Reply(451, "5.1.1 mismatched class").status == "4.0.0"
    assert Reply(550, "5.1.1 a\nsecond line").line() == "550 5.1.1 a second line"


def test_reason_classes_choose_the_subject():
    assert reason_class("5.1.1", "550 ...") == "user-unknown"
    assert reason_class("5.0.0", "550 <x>... User Unknown") == "user-unknown"
    assert reason_class("5.1.2", "") == "host-unknown"
    assert reason_class("5.1.10", "") == "host-unknown"
    assert reason_class("5.3.5", "") == "local-config"
    assert reason_class("5.4.6", "") == "local-config"
    assert subject_class(["user-unknown", "user-unknown"]) == "user-unknown"
    assert subject_class(["user-unknown", "host-unknown"]) == "other"
    assert subject_class(["expired"]) == "other"


def test_addresses_safe_on_a_command_line():
    assert validate_address("a@b.example")
    for bad in ("a@b\r\nRCPT TO:<c@d>", "a\0@b", "", "a b@c", "<a@b>"):
        assert not validate_address(bad)


def test_plan_groups_by_route_then_message_in_chunks():
    items = [Item(i, 1 if i < 7 else 2, f"u{i}@{'a' if i % 2 else 'b'}.example",
                  "a.example" if i % 2 else "b.example", 0) for i in range(10)]
    routes = plan(items, route_of=lambda d: d, per_transaction=2)
    assert set(routes) == {"a.example", "b.example"}
    for route, txs in routes.items():
        for tx in txs:
            assert 1 <= len(tx.items) <= 2
            assert {it.message_id for it in tx.items} == {tx.message_id}
            assert {it.domain for it in tx.items} == {route}
    assert sorted(it.rid for txs in routes.values() for tx in txs for it in tx.items) == \
        list(range(10))


def test_payload_is_crlf_dot_stuffed_and_terminated():
    assert prepare_payload(b".a\nb\r\n.\r\nc\rd") == b"..a\r\nb\r\n..\r\nc\r\nd\r\n.\r\n"
    assert prepare_payload(b"x\r\n") == b"x\r\n.\r\n"


ORIG = dsn.Original("QID1", "alice@example.org", dt.datetime(2026, 11, 29, 1, 2, 3),
                    "client.example [192.0.2.1]", 100)
DATA = b"From: alice@example.org\r\nSubject: hi\r\n\r\nbody line\r\n"


def _build(kind, failures, data=DATA, **kw):
    opts = dict(hostname="mail.example.org", language="en", warn_after=14400,
                give_up_after=432000, return_size_limit=50000)
    opts.update(kw)
    return dsn.build(kind, ORIG, failures, data, **opts)


def test_returned_mail_layout_and_flufl_bounce():
    out = _build(dsn.FAILURE, [
        dsn.Failed("bob@remote.example", "5.1.2", "550 5.1.2 <bob@remote.example>... Host "
                   "unknown (Name server: remote.example: host not found)")])
    msg = email.message_from_bytes(out)
    assert msg["Subject"] == "Returned mail: Host unknown"
    text = msg.get_payload()[0].get_payload()
    assert text.startswith("The original message was received at Sun, 29 Nov 2026 "
                           "01:02:03 GMT\r\nfrom client.example [192.0.2.1]\r\n")
    status = msg.get_payload()[1]
    assert status.get_content_type() == "message/delivery-status"
    blocks = status.get_payload()
    assert blocks[0]["Reporting-MTA"] == "dns; mail.example.org"
    assert blocks[1]["Final-Recipient"] == "RFC822; bob@remote.example"
    assert blocks[1]["Action"] == "failed" and blocks[1]["Status"] == "5.1.2"
    assert scan_message(msg) == {b"bob@remote.example"}


def test_large_original_comes_back_as_headers_only():
    big = DATA + b"x" * 60000
    out = _build(dsn.FAILURE, [dsn.Failed("b@r.example", "5.3.4", "552 5.3.4 too big")], big)
    msg = email.message_from_bytes(out)
    part = msg.get_payload()[2]
    assert part.get_content_type() == "text/rfc822-headers"
    assert b"x" * 100 not in out and b"Subject: hi" in out


def test_warning_says_it_is_only_a_warning():
    out = _build(dsn.WARNING, [dsn.Failed("b@r.example", "4.2.0", "450 4.2.0 later")])
    msg = email.message_from_bytes(out)
    assert msg["Subject"] == "Warning: could not send message for past 4 hours"
    text = msg.get_payload()[0].get_payload()
    assert "**      THIS IS A WARNING MESSAGE ONLY      **" in text
    assert "Warning: message still undelivered after 4 hours" in text
    assert "Will keep trying until message is 5 days old" in text
    assert msg.get_payload()[1].get_payload()[1]["Action"] == "delayed"
    assert all_failures(msg) == ({b"b@r.example"}, set())


def test_expired_message_and_japanese_text():
    out = _build(dsn.FAILURE, [dsn.Failed("b@r.example", "4.4.7", "450 4.2.0 later")],
                 language="ja")
    msg = email.message_from_bytes(out)
    assert msg["Subject"] == "Returned mail: see transcript for details"
    text = msg.get_payload()[0].get_payload(decode=True).decode("utf-8")
    assert "配送できませんでした" in text
    # Japanese throughout: the give-up time too; bounce processors read the RFC 3464 part
    assert "5日のあいだ配送できなかった" in text and "Message could not" not in text
    assert scan_message(msg) == {b"b@r.example"}
