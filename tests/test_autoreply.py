"""The mailbox auto-responder: who gets a reply, how often, and what it looks like."""

from __future__ import annotations

import email
import email.policy

import pytest
from sqlalchemy import select

from listmgr.pipeline import InboundWorker
from listmgr.service import INBOUND_HANDLERS
from listmgr.mailbox.autoreply import skip_reason
from listmgr.mailbox.maildir import Maildir
from listmgr.store import mailboxes
from listmgr.store.models import OutboundMessage, OutboundRecipient
from tests.support import run_cli
from tests.test_local_delivery import queue_local


def msg(extra: str = "", subject: str = "Lunch?") -> bytes:
    return (f"From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <m1@example.net>\r\n{extra}\r\nAre you free?\r\n").encode()


def replies(app):
    with app.store.session() as s:
        rows = s.execute(select(OutboundMessage, OutboundRecipient.rcpt).join(
            OutboundRecipient, OutboundRecipient.message_id == OutboundMessage.id)).all()
        return [(m.mail_from, rcpt, app.spool.read(m.spool_path)) for m, rcpt in rows]


@pytest.fixture
def alice(app):
    with app.store.session() as s:
        mailboxes.add_user(s, "alice", "pw")
        mailboxes.set_autoreply(s, "alice", enabled=True, subject="Out of office",
                                body="I am away until Monday.\n")
    return app


def deliver(app, data: bytes, mail_from: str = "bob@example.net") -> None:
    queue_local(app, "alice", data=data, mail_from=mail_from)
    InboundWorker(app, "all", INBOUND_HANDLERS).run_once()


def test_one_reply_per_sender_per_day_from_the_null_sender(alice):
    deliver(alice, msg())
    deliver(alice, msg(subject="again"))
    assert len(Maildir.for_user(alice.config.data_dir, "alice").entries()) == 2
    [(mail_from, rcpt, data)] = replies(alice)
    assert mail_from == "" and rcpt == "bob@example.net"
    reply = email.message_from_bytes(data, policy=email.policy.default)
    assert reply["Subject"] == "Out of office"
    assert reply["From"] == "alice@example.org" and reply["To"] == "bob@example.net"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<m1@example.net>"
    assert reply.get_content().replace("\r\n", "\n") == "I am away until Monday.\n"
    deliver(alice, msg(), mail_from="carol@example.net")  # another sender: a reply
    assert [r[1] for r in replies(alice)] == ["bob@example.net", "carol@example.net"]


@pytest.mark.parametrize("extra,mail_from", [
    ("", ""),
    ("Precedence: bulk\r\n", "bob@example.net"),
    ("Precedence: list\r\n", "bob@example.net"),
    ("Precedence: junk\r\n", "bob@example.net"),
    ("List-Id: <demo.example.net>\r\n", "bob@example.net"),
    ("Auto-Submitted: auto-generated\r\n", "bob@example.net"),
    ("Auto-Submitted: auto-replied\r\n", "bob@example.net"),
    ("", "MAILER-DAEMON@example.net"),
    ("", "owner-demo@example.net"),
    ("", "demo-request@example.net"),
    ("", "alice@example.org"),
])
def test_never_replies_to_automatic_or_list_mail(alice, extra, mail_from):
    deliver(alice, msg(extra), mail_from=mail_from)
    assert len(Maildir.for_user(alice.config.data_dir, "alice").entries()) == 1
    assert replies(alice) == []


def test_auto_submitted_no_gets_a_reply_and_default_subject():
    assert skip_reason("bob@x.example", "a@example.org",
                       email.message_from_string("Auto-Submitted: no\n\n")) is None


def test_off_means_no_reply(alice):
    with alice.store.session() as s:
        mailboxes.set_autoreply(s, "alice", enabled=False)
    deliver(alice, msg())
    assert replies(alice) == []


def test_cli_sets_and_clears_the_autoreply(config_file, db_url):
    cfg = config_file()
    run_cli(cfg, "init")
    run_cli(cfg, "user", "add", "erin", "--password-stdin", stdin="pw\n")
    r = run_cli(cfg, "user", "autoreply", "erin", "--subject", "Away", "--body", "Back soon.")
    assert r.status == 0 and r.out == "auto-reply on for erin\n"
    r = run_cli(cfg, "users")
    assert "auto-reply on" in r.out
    from listmgr.store.db import Store
    store = Store(db_url)
    with store.session() as s:
        u = mailboxes.get_user(s, "erin")
        assert (u.autoreply_enabled, u.autoreply_subject, u.autoreply_body) == \
            (True, "Away", "Back soon.")
    r = run_cli(cfg, "user", "autoreply", "erin", "--off")
    assert r.status == 0 and r.out == "auto-reply off for erin\n"
    with store.session() as s:
        assert not mailboxes.get_user(s, "erin").autoreply_enabled
    store.dispose()
    r = run_cli(cfg, "user", "autoreply", "erin")
    assert r.status == 1 and "--body" in r.err
    r = run_cli(cfg, "user", "autoreply", "nobody", "--off")
    assert r.status == 1 and "no mailbox user 'nobody'" in r.err
