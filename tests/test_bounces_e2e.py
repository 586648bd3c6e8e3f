"""Bounce processing end to end: posts out through the sink, bounces back in over SMTP.

The sink refuses `unknown*` with 550 and `defer*` with 451 at RCPT; asynchronous bounces,
auto-replies and feedback reports are sent to the server's bounce addresses as a remote
MTA would send them.
"""

from __future__ import annotations

import re
import smtplib
import time

from sqlalchemy import select

from listmgr.store.models import Member, MailingList
from tests.test_posting_e2e import OWNER, STRANGER, is_list_copy, notice_to, post_text, \
    send, setup_list, wait_list_copies

ALICE = "alice@example.com"
UNKNOWN = "unknown-ann@example.net"
DEFER = "defer-dan@example.net"


def send_raw(srv, mail_from: str, rcpt: str, text: str) -> None:
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as c:
        assert not c.sendmail(mail_from, [rcpt], data)


def dsn(to: str, failed: str, status: str = "5.1.1", action: str = "failed") -> str:
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.example.com>
To: {to}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain

This is the mail system at host mx.example.com. Your message could not be delivered.

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; {failed}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 {status} <{failed}>: Recipient address rejected

--BOUNDARY
Content-Type: text/rfc822-headers

From: someone@example.com
To: demo@example.org
Subject: hello

--BOUNDARY--
"""


def member(srv, address: str, name: str = "demo") -> Member | None:
    def get(s):
        m = s.scalars(select(Member).join(MailingList, Member.list_id == MailingList.id)
                      .where(MailingList.name == name, Member.key == address.lower())).first()
        if m is not None:
            s.expunge(m)
        return m
    return srv.call(get)


def wait_member(srv, address: str, predicate, timeout: float = 30.0) -> Member | None:
    deadline = time.monotonic() + timeout
    while True:
        m = member(srv, address)
        if predicate(m):
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"member {address} never reached the state: {m and vars(m)}")
        time.sleep(0.1)


def body(received) -> str:
    return received.message.get_body(("plain",)).get_content()


def test_verp_bounce_disables_then_the_notice_key_turns_delivery_back_on(server, sink):
    srv = server(bounces__check_interval="1s")
    setup_list(srv, post_policy="open", bounce_score_threshold="1.0")
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    copies = wait_list_copies(sink, 3)
    [copy] = [c for c in copies if c.rcpt_tos == [ALICE]]
    assert copy.mail_from == "owner-demo+alice=example.com@example.org"

    # alice's server bounces the post later, to the envelope sender of her copy.
    send_raw(srv, "", copy.mail_from, dsn(copy.mail_from, ALICE))
    notice = notice_to(sink, ALICE, "Your delivery from the demo list is turned off")
    owners = notice_to(sink, OWNER, f"BOUNCES demo@example.org: delivery to {ALICE} turned off")
    assert "bounce score" in body(owners) and "550 5.1.1" in body(owners)
    m = member(srv, ALICE)
    assert not m.delivery_enabled and m.disabled_reason == "bounces"
    assert m.bounce_score == 1.0

    # Delivery is off: the next post does not go to her.
    sink.clear()
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER, subject="second"))
    copies = wait_list_copies(sink, 2)
    time.sleep(0.5)
    assert ALICE not in [r for c in copies for r in c.rcpt_tos]

    token = re.search(r"^\s*accept ([0-9a-f]{32})\s*$", body(notice), re.M).group(1)
    send(srv, ALICE, "majordomo@example.org",
         f"From: {ALICE}\nTo: majordomo@example.org\nSubject: x\n\naccept {token}\n")
    reply = notice_to(sink, ALICE, "Majordomo results")
    assert f"Delivery from demo to {ALICE} is on again." in body(reply)
    m = member(srv, ALICE)
    assert m.delivery_enabled and m.bounce_score == 0 and m.disabled_reason == ""

    sink.clear()
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER, subject="third"))
    copies = wait_list_copies(sink, 3)
    assert ALICE in [r for c in copies for r in c.rcpt_tos]


def test_our_own_550_counts_and_451_does_not(server, sink):
    sink.prefix_rules = {"unknown": "550 5.1.1 User unknown", "defer": "451 4.2.0 Try later"}
    sink.pipelining = True  # each member's transaction pipelined after the previous one
    srv = server(bounces__check_interval="1s")
    setup_list(srv, post_policy="open", members=[ALICE, UNKNOWN, DEFER])
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    wait_list_copies(sink, 1)
    m = wait_member(srv, UNKNOWN, lambda m: m.bounce_score > 0)
    assert m.bounce_score == 1.0 and m.delivery_enabled  # threshold 5.0: one of five
    assert "550 5.1.1 User unknown" in m.last_bounce_reason
    sink.wait_for(lambda got: any(r[1] == DEFER for r in sink.refused))
    time.sleep(1.5)
    assert member(srv, DEFER).bounce_score == 0
    # The owners get no returned mail for the post: the bounce was scored instead.
    assert sink.to(OWNER) == []


def test_disabled_member_gets_warnings_then_is_removed(server, sink):
    sink.prefix_rules = {"unknown": "550 5.1.1 User unknown"}
    srv = server(bounces__check_interval="1s")
    setup_list(srv, post_policy="open", members=[ALICE, UNKNOWN], bounce_score_threshold="1",
               bounce_warnings="2", bounce_warning_interval="1s")
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    notice_to(sink, OWNER, f"BOUNCES demo@example.org: delivery to {UNKNOWN} turned off")
    removed = notice_to(sink, OWNER, f"BOUNCES demo@example.org: {UNKNOWN} removed", timeout=40)
    assert "2 notice(s)" in body(removed)
    assert member(srv, UNKNOWN) is None
    assert member(srv, ALICE).delivery_enabled
    # Both notices were tried (and refused by the member's server).
    notices = [r for r in sink.refused if r[1] == UNKNOWN and "+" not in r[0]]
    assert len(notices) == 2


def test_vacation_reply_to_the_bounce_address_is_dropped(server, sink):
    srv = server()
    setup_list(srv, post_policy="open")
    send_raw(srv, ALICE, "owner-demo+alice=example.com@example.org",
             f"From: Alice <{ALICE}>\nTo: owner-demo+alice=example.com@example.org\n"
             "Subject: Out of office: hello\nAuto-Submitted: auto-replied\n\n"
             "I am away until Monday.\n")
    send_raw(srv, "", "owner-demo@example.org",
             f"From: Alice <{ALICE}>\nTo: owner-demo@example.org\n"
             "Subject: Automatic reply: hello\nX-Autoreply: yes\n\nAway.\n")
    srv.wait_idle()
    time.sleep(1.0)
    assert sink.received == []
    assert member(srv, ALICE).bounce_score == 0


def arf(member_verp: str, complainant: str) -> str:
    return f"""From: Feedback Loop <fbl@isp.example>
To: abuse@example.org
Subject: FW: hello
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.1.

--ARF
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <{member_verp}>
Original-Rcpt-To: <{complainant}>
Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT
Source-IP: 192.0.2.1

--ARF
Content-Type: message/rfc822

Return-Path: <{member_verp}>
From: someone@example.com
To: demo@example.org
List-Id: <demo.example.org>
Subject: hello

Hi all.
--ARF--
"""


def test_feedback_report_unsubscribes_and_tells_the_owners(server, sink):
    srv = server()
    setup_list(srv, post_policy="open")
    send_raw(srv, "fbl@isp.example", "abuse@example.org",
             arf("owner-demo+alice=example.com@example.org", ALICE))
    notice = notice_to(sink, OWNER, f"COMPLAINT demo@example.org: {ALICE} unsubscribed")
    assert "abuse" in body(notice)
    assert member(srv, ALICE) is None


def test_unrecognised_bounce_goes_to_the_owners_once(server, sink):
    srv = server()
    setup_list(srv, post_policy="open", verp="off")
    send_raw(srv, "", "owner-demo@example.org",
             dsn("owner-demo@example.org", "stranger@nowhere.example"))
    got = notice_to(sink, OWNER, "BOUNCE demo@example.org: not recognised")
    assert "stranger@nowhere.example" in body(got)
    srv.wait_idle()
    time.sleep(0.5)
    assert len(sink.to(OWNER)) == 1


def test_without_verp_the_bounce_is_read_for_members(server, sink):
    srv = server()
    setup_list(srv, post_policy="open", verp="off")
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    copies = wait_list_copies(sink, 3)
    assert all(c.mail_from == "owner-demo@example.org" for c in copies if is_list_copy(c))
    send_raw(srv, "", "owner-demo@example.org", dsn("owner-demo@example.org", ALICE))
    m = wait_member(srv, ALICE, lambda m: m.bounce_score > 0)
    assert m.bounce_score == 1.0
    # A delay warning (temporary failure) counts as a soft bounce, once a day.
    send_raw(srv, "", "owner-demo@example.org",
             dsn("owner-demo@example.org", "bob@example.net", "4.2.2", "delayed"))
    m = wait_member(srv, "bob@example.net", lambda m: m.bounce_score > 0)
    assert m.bounce_score == 0.5


def test_mail_from_a_person_to_the_bounce_address_reaches_the_owners(server, sink):
    srv = server()
    setup_list(srv)
    send_raw(srv, STRANGER, "owner-demo@example.org",
             f"From: {STRANGER}\nTo: owner-demo@example.org\nSubject: question\n\nHello?\n")
    got = notice_to(sink, OWNER, "question")
    assert got.mail_from == STRANGER


def test_pipelined_per_member_transactions_with_refusals_in_between(server, sink):
    # Refused recipients between accepted ones: each member still gets exactly one copy
    # with their own envelope sender, and the refused ones are scored.
    sink.pipelining = True
    sink.prefix_rules = {"unknown": "550 5.1.1 User unknown", "defer": "451 4.2.0 Try later"}
    members = [f"{'unknown' if i % 3 == 0 else 'defer' if i % 7 == 0 else 'm'}{i:03d}@d.example"
               for i in range(60)]
    srv = server(delivery__max_recipients_per_transaction=25)
    setup_list(srv, post_policy="open", members=members)
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    good = [m for m in members if m.startswith("m")]
    copies = wait_list_copies(sink, len(good))
    time.sleep(0.5)
    got = sorted(r for c in list_copies_of(sink) for r in c.rcpt_tos)
    assert got == sorted(good)
    for c in list_copies_of(sink):
        [rcpt] = c.rcpt_tos
        assert c.mail_from == "owner-demo+" + rcpt.replace("@", "=") + "@example.org"
    assert len(copies) == len(good)
    wait_member(srv, "unknown000@d.example", lambda m: m.bounce_score == 1.0)
    assert member(srv, "defer007@d.example").bounce_score == 0


def list_copies_of(sink):
    return [m for m in sink.received if is_list_copy(m)]
