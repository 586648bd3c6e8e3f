"""The SMTP front door, driven with smtplib over 127.0.0.1: routing, storage, the relay gate."""

from __future__ import annotations

import smtplib
import time

import pytest
from sqlalchemy import select

from listmgr.store.lists import create_list, get_list
from listmgr.store.models import InboundMessage, OutboundMessage, OutboundRecipient
from tests.smtp_support import add_grant, add_user, connect, make_ingress_fixture, rcpt_reply

ingress = make_ingress_fixture()

MSG = b"From: a@outside.example\r\nSubject: hello\r\n\r\nHello.\r\n"


def test_ehlo_advertises_extensions(ingress):
    srv = ingress(hostname="mx.example.org")
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as c:
        code, banner = c.ehlo("client.example")
        assert code == 250
        lines = banner.decode().splitlines()
        assert lines[0] == "mx.example.org"
        assert set(lines[1:]) == {"SIZE 5242880", "8BITMIME", "PIPELINING",
                                  "ENHANCEDSTATUSCODES"}
        assert c.docmd("NOOP") == (250, b"2.0.0 OK")


def test_greeting_names_hostname(ingress):
    srv = ingress(hostname="mx.example.org")
    c = smtplib.SMTP(timeout=10)
    code, text = c.connect("127.0.0.1", srv.smtp_port)
    assert code == 220 and text.decode().startswith("mx.example.org ESMTP")
    assert c.docmd("QUIT") == (221, b"2.0.0 mx.example.org closing connection")
    c.close()


def test_local_addresses_are_routed_and_stored(ingress):
    srv = ingress()
    srv.call(lambda s: create_list(s, "demo", ["owner@outside.example"]))
    srv.call(add_user, "alice")
    rcpts = ["majordomo@example.org", "demo@example.org", "Demo-Request@EXAMPLE.ORG",
             "owner-demo@example.org", "demo-approval@example.org", "postmaster@example.org",
             "alice@example.org."]
    with connect(srv.smtp_port) as c:
        code, text = c.docmd("MAIL FROM:<a@outside.example>")
        assert code == 250
        for r in rcpts:
            assert c.docmd(f"RCPT TO:<{r}>") == (250, b"2.1.5 Recipient ok"), r
        code, text = c.data(MSG)
        assert code == 250 and text.startswith(b"2.0.0 Ok: queued as ")
        queue_id = text.split()[-1].decode()
    [(msg, tasks)] = srv.messages()
    assert msg.queue_id == queue_id and msg.mail_from == "a@outside.example"
    assert msg.client_ip == "127.0.0.1" and msg.client_helo == "client.example"
    assert [(t.kind, t.target, t.rcpt) for t in tasks] == [
        ("command", "", "majordomo@example.org"),
        ("post", "demo", "demo@example.org"),
        ("command", "demo", "Demo-Request@EXAMPLE.ORG"),
        ("bounce", "demo", "owner-demo@example.org"),
        ("approval", "demo", "demo-approval@example.org"),
        ("admins", "", "postmaster@example.org"),
        ("local", "alice", "alice@example.org"),
    ]
    assert srv.app.spool.read(msg.spool_path) == MSG
    assert msg.size == len(MSG)


def test_unknown_local_user_is_refused_at_rcpt(ingress):
    srv = ingress()
    assert rcpt_reply(srv.smtp_port, "<nobody@example.org>") == (
        550, "5.1.1 <nobody@example.org>... User unknown")
    assert srv.messages() == []


def test_null_sender_is_stored_as_empty(ingress):
    srv = ingress()
    with connect(srv.smtp_port) as c:
        c.sendmail("<>", ["postmaster@example.org"], MSG)
    [(msg, _)] = srv.messages()
    assert msg.mail_from == ""


def test_relay_denied_without_grant(ingress):
    srv = ingress()
    assert rcpt_reply(srv.smtp_port, "<someone@outside.example>") == (
        550, "5.7.1 <someone@outside.example>... Relaying denied")


def test_relay_allowed_with_pop3_grant(ingress):
    srv = ingress()
    srv.call(add_grant, "127.0.0.1")
    with connect(srv.smtp_port) as c:
        refused = c.sendmail("a@example.org", ["someone@outside.example"], MSG)
    assert refused == {}
    assert srv.tasks() == [("relay", "someone@outside.example", "someone@outside.example")]


def test_expired_grant_does_not_open_relay(ingress):
    srv = ingress()
    srv.call(add_grant, "127.0.0.1", -1)
    srv.call(add_grant, "192.0.2.9", 30)  # another client's grant
    code, text = rcpt_reply(srv.smtp_port, "<someone@outside.example>")
    assert code == 550 and "Relaying denied" in text


def test_relay_networks_allow_relay(ingress):
    srv = ingress(smtp__relay_networks=["127.0.0.0/8"])
    assert rcpt_reply(srv.smtp_port, "<someone@outside.example>")[0] == 250


# --------------------------------------------------------------------------- full server

def _outbound(s):
    rows = s.execute(select(OutboundMessage, OutboundRecipient).join(
        OutboundRecipient, OutboundRecipient.message_id == OutboundMessage.id)
        .order_by(OutboundRecipient.id)).all()
    return [(m.mail_from, r.rcpt, m.origin, m.spool_path) for m, r in rows]


def test_relayed_mail_is_queued_with_original_sender(server, sink):
    srv = server()
    srv.call(add_grant, "127.0.0.1")
    with connect(srv.smtp_port) as c:
        c.sendmail("alice@example.org", ["Someone@Outside.example"], MSG)
    srv.wait_idle()
    [(mail_from, rcpt, origin, path)] = srv.call(_outbound)
    assert (mail_from, rcpt, origin) == ("alice@example.org", "Someone@Outside.example", "relay")
    # The delivery worker sends it on (to the sink, the smarthost) and removes the spool file.
    [got] = sink.wait_count(1)
    assert (got.mail_from, got.rcpt_tos) == ("alice@example.org", ["Someone@Outside.example"])
    data = got.data
    assert data.startswith(b"Received: from client.example ([127.0.0.1])\r\n\tby example.org")
    assert b"for <Someone@Outside.example>" in data.split(b"\r\n\r\n")[0]
    assert data.endswith(MSG)


def test_several_remote_recipients_share_one_queued_copy(server, sink):
    srv = server()
    srv.call(add_grant, "127.0.0.1")
    rcpts = ["a@outside.example", "b@other.example", "c@outside.example"]
    with connect(srv.smtp_port) as c:
        c.sendmail("alice@example.org", rcpts + ["postmaster@example.org"], MSG)
    srv.wait_idle()
    queued = srv.call(_outbound)
    relayed = [(r, p) for _, r, origin, p in queued if origin == "relay"]
    assert sorted(r for r, _ in relayed) == sorted(rcpts)
    assert len({p for _, p in relayed}) == 1  # one spool copy for every remote recipient
    got = sink.wait_for(lambda m: sorted(r for x in m for r in x.rcpt_tos
                                         if r in rcpts) == sorted(rcpts))
    assert sorted(r for x in got for r in x.rcpt_tos if r in rcpts) == sorted(rcpts)
    relayed_copy = next(x for x in got if rcpts[0] in x.rcpt_tos)
    assert b"for <" not in relayed_copy.data.split(b"\r\n\r\n")[0]  # no single "for"


def test_owner_and_approval_mail_go_to_owners_and_moderator(server, sink):
    srv = server()

    def setup(s):
        create_list(s, "demo", ["o1@outside.example", "o2@outside.example"])
        create_list(s, "mod", ["o3@outside.example"])
        get_list(s, "mod").moderator = "m@outside.example"
    srv.call(setup)
    with connect(srv.smtp_port) as c:
        c.sendmail("a@outside.example", ["demo-owner@example.org"], MSG)
        c.sendmail("a@outside.example", ["demo-approval@example.org"], MSG)
        c.sendmail("a@outside.example", ["mod-approval@example.org"], MSG)
        c.sendmail("", ["majordomo-owner@example.org"], MSG)
    srv.wait_idle()
    got = sorted((m, r, o) for m, r, o, _ in srv.call(_outbound))
    assert got == sorted([
        ("a@outside.example", "o1@outside.example", "owner:demo"),
        ("a@outside.example", "o2@outside.example", "owner:demo"),
        ("a@outside.example", "o1@outside.example", "approval:demo"),
        ("a@outside.example", "o2@outside.example", "approval:demo"),
        ("a@outside.example", "m@outside.example", "approval:mod"),
        ("", "admin@example.org", "admins"),
    ])
    # ... and the delivery worker hands them to the smarthost (the sink), senders kept.
    want = {"o1@outside.example", "o2@outside.example", "m@outside.example", "admin@example.org"}
    got_mail = sink.wait_for(lambda r: want <= {x.lower() for m in r for x in m.rcpt_tos})
    senders = {x.lower(): m.mail_from for m in got_mail for x in m.rcpt_tos}
    assert senders["m@outside.example"] == "a@outside.example"
    assert senders["admin@example.org"] in ("", "<>")
    # Done tasks leave nothing behind in the inbound queue (cleaned just after "done").
    deadline = time.monotonic() + 10
    while srv.call(lambda s: s.scalars(select(InboundMessage)).all()) != []:
        assert time.monotonic() < deadline, "inbound messages were not cleaned up"
        time.sleep(0.05)


@pytest.mark.parametrize("rcpt", ["someone@outside.example"])
def test_swaks_without_login_is_denied(server, rcpt):
    import subprocess
    srv = server()
    out = subprocess.run(["swaks", "--server", f"127.0.0.1:{srv.smtp_port}", "--to", rcpt,
                          "--timeout", "10"],
                         capture_output=True, text=True, timeout=60)
    assert "Relaying denied" in out.stdout
    assert f"<** 550 5.7.1 <{rcpt}>... Relaying denied" in out.stdout
