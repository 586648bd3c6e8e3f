"""List posts end to end: SMTP in, the real server's pipeline and delivery, the sink out.

Members and owners live outside the served domain, so everything that leaves goes through
the smarthost: the recording sink.
"""

from __future__ import annotations

import re
import smtplib
import time

import pytest
from sqlalchemy import select

from listmgr.store import lists as repo
from listmgr.store.models import HeldPost
from tests.support import run_cli

OWNER = "owner@owners.example"
MEMBERS = ["alice@example.com", "bob@example.net", "carol@example.com"]
STRANGER = "stranger@elsewhere.example"


def setup_list(srv, name="demo", members=MEMBERS, **settings):
    def make(s):
        ml = repo.create_list(s, name, [OWNER], password="s3cret")
        for k, v in settings.items():
            repo.set_setting(s, ml, k, v)
        repo.add_members(s, ml, members)
    srv.call(make)


def send(srv, mail_from, rcpt, text: str) -> None:
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as c:
        refused = c.sendmail(mail_from, [rcpt], data)
        assert not refused


def post_text(frm, subject="hello", body="Hi all.\n", extra=""):
    return (f"From: {frm}\nTo: demo@example.org\nSubject: {subject}\n"
            f"Message-ID: <{time.time_ns()}@example.com>\n{extra}\n{body}")


def is_list_copy(m, name="demo") -> bool:
    """A copy of a post: from the list's bounce address (each member's own with VERP)."""
    sender = m.mail_from
    return (sender == f"owner-{name}@example.org" or (
        sender.startswith(f"owner-{name}+") and sender.endswith("@example.org"))) \
        and bool(m.message["List-Id"])


def list_copies(sink):
    return [m for m in sink.received if is_list_copy(m)]


def wait_list_copies(sink, n_rcpts, timeout=20):
    sink.wait_for(lambda got: sum(len(m.rcpt_tos) for m in got if is_list_copy(m))
                  >= n_rcpts, timeout)
    return list_copies(sink)


def notice_to(sink, addr, subject_start, timeout=20):
    got = sink.wait_for(lambda got: any(addr in m.rcpt_tos and str(
        m.message["Subject"]).strip().startswith(subject_start) for m in got), timeout)
    return [m for m in got if addr in m.rcpt_tos
            and str(m.message["Subject"]).strip().startswith(subject_start)][-1]


def token_of(notice, verb="accept"):
    text = notice.message.get_body(("plain",)).get_content()
    return re.search(rf"^\s*{verb} ([0-9a-f]{{32}})\s*$", text, re.M).group(1)


# RFC 2919 list-id: a dot-atom-text "list-label.namespace" in angle brackets.
LIST_ID = re.compile(r"^(?:.*\s)?<[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
                     r"(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)+>$")
# RFC 2369: one or more angle-bracketed URIs separated by commas (or NO for List-Post).
URI_LIST = re.compile(r"^<[^<>\s]+>(?:\s*,\s*<[^<>\s]+>)*$")


@pytest.mark.parametrize("policy,poster,delivered", [
    ("open", MEMBERS[0], True),
    ("open", STRANGER, True),
    ("members", MEMBERS[0], True),
    ("members", STRANGER, False),
    ("moderated", MEMBERS[0], False),
    ("announce", OWNER, True),
    ("announce", MEMBERS[0], False),
])
def test_posting_policies_over_smtp(server, sink, policy, poster, delivered):
    srv = server(web__base_url="https://lists.example.org")
    setup_list(srv, post_policy=policy, subject_prefix="[$LIST]")
    send(srv, poster, "demo@example.org", post_text(poster))
    if delivered:
        copies = wait_list_copies(sink, len(MEMBERS))
        assert sorted(r for m in copies for r in m.rcpt_tos) == sorted(MEMBERS)
        msg = copies[0].message
        assert msg["Subject"] == "[demo] hello"
        assert msg["Sender"] == "owner-demo@example.org"
        assert msg["Precedence"] == "bulk"
        assert msg["X-Loop"] == "demo@example.org"
        assert LIST_ID.match(msg["List-Id"]) and "<demo.example.org>" in msg["List-Id"]
        for h in ("List-Help", "List-Subscribe", "List-Unsubscribe", "List-Owner"):
            assert URI_LIST.match(msg[h]), (h, msg[h])
        expected_post = "NO" if policy == "announce" else "<mailto:demo@example.org>"
        assert msg["List-Post"].startswith(expected_post)
        assert "<mailto:demo-request@example.org?subject=unsubscribe>" in \
            msg["List-Unsubscribe"]
        assert msg["List-Unsubscribe"].startswith("<https://lists.example.org/u/")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        for copy in copies:  # each member's own envelope sender (VERP)
            [rcpt] = copy.rcpt_tos
            assert copy.mail_from == "owner-demo+" + rcpt.replace("@", "=") + "@example.org"
        assert msg.get_content().replace("\r\n", "\n") == "Hi all.\n"
    else:
        notice = notice_to(sink, OWNER, "BOUNCE demo@example.org:")
        assert notice.mail_from == "owner-demo@example.org"
        srv.wait_idle()
        assert list_copies(sink) == []


def test_hold_then_accept_by_token_mail(server, sink):
    srv = server()
    setup_list(srv, post_policy="members")
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER, subject="from outside"))
    notice = notice_to(sink, OWNER, "BOUNCE demo@example.org:")
    assert "Non-member submission from [stranger@elsewhere.example]" in \
        str(notice.message["Subject"])
    send(srv, OWNER, "majordomo@example.org",
         f"From: {OWNER}\nSubject: x\n\naccept {token_of(notice)}\n")
    copies = wait_list_copies(sink, len(MEMBERS))
    assert copies[0].message["Subject"] == "from outside"
    reply = notice_to(sink, OWNER, "Majordomo results")
    assert "approved and sent to 3 members" in reply.message.get_content()
    # the token is single-use
    sink.clear()
    send(srv, OWNER, "majordomo@example.org",
         f"From: {OWNER}\nSubject: x\n\naccept {token_of(notice)}\n")
    notice_to(sink, OWNER, "Majordomo results")
    srv.wait_idle()
    assert list_copies(sink) == []


def test_reject_by_token_mail_tells_the_poster(server, sink):
    srv = server()
    setup_list(srv, post_policy="moderated")
    send(srv, MEMBERS[0], "demo@example.org", post_text(MEMBERS[0], subject="maybe"))
    notice = notice_to(sink, OWNER, "BOUNCE demo@example.org:")
    send(srv, OWNER, "majordomo@example.org",
         f"From: {OWNER}\nSubject: x\n\nreject {token_of(notice)} off topic\n")
    told = notice_to(sink, MEMBERS[0], "Your post to demo@example.org was rejected")
    assert told.mail_from in ("", "<>")  # the null sender
    assert "off topic" in told.message.get_content()
    assert list_copies(sink) == []


def test_approved_resend_over_smtp(server, sink):
    srv = server()
    setup_list(srv, post_policy="moderated")
    original = post_text(MEMBERS[1], subject="resend me")
    send(srv, MEMBERS[1], "demo@example.org", original)
    notice_to(sink, OWNER, "BOUNCE demo@example.org:")
    send(srv, OWNER, "demo@example.org", "Approved: s3cret\n" + original)
    copies = wait_list_copies(sink, len(MEMBERS))
    assert copies[0].message["Subject"] == "resend me"
    assert copies[0].message["Approved"] is None
    assert b"s3cret" not in copies[0].data
    assert srv.call(lambda s: [h.state for h in s.scalars(select(HeldPost))]) == ["approved"]


def test_approve_by_cli_while_serving(server, sink):
    srv = server()
    setup_list(srv, post_policy="moderated")
    send(srv, MEMBERS[0], "demo@example.org", post_text(MEMBERS[0], subject="via cli"))
    notice_to(sink, OWNER, "BOUNCE demo@example.org:")
    (hid,) = srv.call(lambda s: list(s.scalars(select(HeldPost.id))))
    r = run_cli(srv.config_path, "approve", str(hid))
    assert r.status == 0, r.err
    copies = wait_list_copies(sink, len(MEMBERS))
    assert copies[0].message["Subject"] == "via cli"


def test_expiry_tells_the_poster(manual_clock, server, sink):
    """The default 14 days, on listmgr's clock (expiry looks every 0.2 s here)."""
    srv = server(posting__expiry_interval="0.2s")
    setup_list(srv, post_policy="moderated")
    send(srv, MEMBERS[0], "demo@example.org", post_text(MEMBERS[0], subject="too late"))
    notice_to(sink, OWNER, "BOUNCE demo@example.org:")
    manual_clock.advance(days=13, hours=23)
    time.sleep(1.0)
    assert srv.call(lambda s: [h.state for h in s.scalars(select(HeldPost))]) == ["held"]
    manual_clock.advance(hours=2)
    try:
        notice_to(sink, MEMBERS[0], "Your post to demo@example.org expired", timeout=5)
    except AssertionError:
        print("DEBUG", [(m.rcpt_tos, str(m.message["Subject"]), m.data[:300]) for m in sink.received])
    told = notice_to(sink, MEMBERS[0], "Your post to demo@example.org expired", timeout=30)
    assert "too late" in told.message.get_content()
    assert srv.call(lambda s: [h.state for h in s.scalars(select(HeldPost))]) == ["expired"]


def test_loop_is_not_redistributed(server, sink):
    srv = server()
    setup_list(srv, post_policy="open")
    send(srv, MEMBERS[0], "demo@example.org",
         post_text(MEMBERS[0], extra="X-Loop: demo@example.org\n"))
    srv.wait_idle()
    time.sleep(0.5)
    assert sink.received == []


@pytest.mark.slow
def test_ten_thousand_members_each_get_it_once(server, sink):
    members = [f"m{i:05d}@d{i % 13}.example.net" for i in range(10_000)]
    srv = server(delivery__max_recipients_per_transaction=500)
    setup_list(srv, members=members, post_policy="open", verp="off")
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    copies = wait_list_copies(sink, 10_000, timeout=120)
    time.sleep(0.5)
    rcpts = [r for m in list_copies(sink) for r in m.rcpt_tos]
    assert len(rcpts) == 10_000
    assert set(rcpts) == set(members)
    assert all(m.mail_from == "owner-demo@example.org" for m in copies)
