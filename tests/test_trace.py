"""Our Received: header: once per receipt, `with LMTP` for mail that came over LMTP, added
on local delivery and relaying for mail that came over SMTP."""

from __future__ import annotations

import datetime as dt
import smtplib
import time

from listmgr.mail import trace
from listmgr.mailbox.maildir import Maildir
from tests.pop3_support import add_user


def test_received_header_shape_and_recognition():
    when = dt.datetime(2026, 1, 2, 3, 4, 5)
    h = trace.received("mx.example.org", "evil\r\nX-Injected: 1", "192.0.2.1", "Q1", when,
                       "LMTP", "a@example.org")
    assert h == (b"Received: from evilX-Injected:1 ([192.0.2.1])\r\n"
                 b"\tby mx.example.org (listmgr) with LMTP id Q1\r\n"
                 b"\tfor <a@example.org>; Fri, 02 Jan 2026 03:04:05 +0000\r\n")
    data = h + b"Subject: x\r\n\r\nbody\r\n"
    assert trace.ours_length(data, "mx.example.org", "Q1") == len(h)
    assert not trace.has_ours(data, "mx.example.org", "Q2")
    assert not trace.has_ours(data, "other.example.org", "Q1")
    assert not trace.has_ours(b"Subject: x\r\n\r\n", "mx.example.org", "Q1")


def _wait_mail(srv, user, timeout=30):
    box = Maildir.for_user(srv.config.data_dir, user)
    deadline = time.monotonic() + timeout
    while not box.entries():
        assert time.monotonic() < deadline, "no mail delivered"
        time.sleep(0.1)
    return box.entries()[0].path.read_bytes()


def _ours(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n")[0].decode()
    return [h for h in head.split("\r\nReceived: ")[1:] if "(listmgr)" in h]


def test_lmtp_and_smtp_deliveries_carry_one_received_each(server):
    srv = server(lmtp__listen="127.0.0.1:0")
    add_user(srv, "carol", "pw")
    add_user(srv, "dave", "pw")
    with smtplib.LMTP("127.0.0.1", srv.ports["lmtp"], timeout=30) as c:
        c.sendmail("a@remote.example", ["carol@example.org"],
                   b"From: a@remote.example\r\nSubject: lmtp\r\n\r\nhi\r\n")
    ours = _ours(_wait_mail(srv, "carol"))
    assert len(ours) == 1 and "with LMTP id" in ours[0] and "for <carol@example.org>" in ours[0]
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
        c.sendmail("a@remote.example", ["dave@example.org"],
                   b"From: a@remote.example\r\nSubject: smtp\r\n\r\nhi\r\n")
    ours = _ours(_wait_mail(srv, "dave"))
    assert len(ours) == 1 and "with ESMTP id" in ours[0] and "for <dave@example.org>" in ours[0]
