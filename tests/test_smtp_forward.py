"""Forwarding handlers (relay, owner, approval, admins) against the store, without sockets."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select

from listmgr.forward import worker as forward
from listmgr.store.lists import create_list, delete_list
from listmgr.store.models import InboundMessage, InboundTask, OutboundMessage, OutboundRecipient

DATA = b"Subject: hi\r\n\r\nbody\r\n"


def message(mail_from="a@outside.example", helo="client.example") -> InboundMessage:
    return InboundMessage(queue_id="0190ABCDEF0123456789", spool_path="", mail_from=mail_from,
                          client_ip="192.0.2.7", client_helo=helo, size=len(DATA),
                          received_at=dt.datetime(2026, 1, 2, 3, 4, 5))


def queued(s) -> list[tuple[str, str, str]]:
    rows = s.execute(select(OutboundMessage, OutboundRecipient).join(
        OutboundRecipient, OutboundRecipient.message_id == OutboundMessage.id)
        .order_by(OutboundRecipient.id)).all()
    return [(m.mail_from, r.rcpt, m.origin) for m, r in rows]


def test_received_header_names_our_hop(app):
    head = forward.received_header(app, message(helo="evil\r\nX-Injected: 1"), "b@x.example")
    assert head == (b"Received: from evilX-Injected:1 ([192.0.2.7])\r\n"
                    b"\tby example.org (listmgr) with ESMTP id 0190ABCDEF0123456789\r\n"
                    b"\tfor <b@x.example>; Fri, 02 Jan 2026 03:04:05 +0000\r\n")


def test_owner_mail_for_a_deleted_list_goes_to_the_site_admins(app):
    with app.store.session() as s:
        create_list(s, "gone", ["o@outside.example"])
        delete_list(s, "gone")
        forward.owner(app, s, InboundTask(kind="owner", target="gone", rcpt="gone-owner@x"),
                      message(), DATA)
        assert queued(s) == [("a@outside.example", "admin@example.org", "owner:gone")]
        [out] = s.scalars(select(OutboundMessage)).all()
        body = app.spool.read(out.spool_path)
        assert body.startswith(b"Received: from client.example") and body.endswith(DATA)


def test_null_sender_stays_null(app):
    with app.store.session() as s:
        forward.admins(app, s, InboundTask(kind="admins", target="", rcpt="postmaster"),
                       message(mail_from=""), DATA)
        assert queued(s) == [("", "admin@example.org", "admins")]


def test_no_site_admins_is_an_error_for_the_shunt_queue(app):
    app.config = dataclasses.replace(app.config, site_admins=())
    with app.store.session() as s:
        with pytest.raises(forward.NowhereToSend):
            forward.admins(app, s, InboundTask(kind="admins", target="", rcpt="postmaster"),
                           message(), DATA)
