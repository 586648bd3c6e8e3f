"""The SMTP wire as a client sees it: size limits, line limits, smuggling, recipient and
connection caps, timeouts, internal errors, STARTTLS and AUTH, LMTP, logging, durability."""

from __future__ import annotations

import base64
import email.policy
import logging
import smtplib
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from listmgr.passwords import hash_password
from listmgr.smtp.handler import IngressHandler
from listmgr.store.directory import AsyncNames, InlineNames
from listmgr.store.lists import create_list
from listmgr.store.models import InboundTask, MailboxUser, OutboundRecipient
from tests.smtp_support import connect, make_ingress_fixture, rcpt_reply

ingress = make_ingress_fixture()

LIMIT = 5 * 1024 * 1024
HEAD = b"From: a@outside.example\r\nSubject: big\r\n\r\n"


def body_of_size(total: int) -> bytes:
    """A message that is exactly `total` octets on the wire (CRLF lines, no dot-stuffing)."""
    line = b"x" * 76 + b"\r\n"
    need = total - len(HEAD)
    n, rest = divmod(need, len(line))
    tail = b"y" * (rest - 2) + b"\r\n" if rest >= 2 else b""
    data = HEAD + line * n + tail
    if len(data) < total:  # rest was 1: lengthen one line
        data = HEAD + line * (n - 1) + b"x" * 77 + b"\r\n"
    assert len(data) == total
    return data


def send_without_size(c: smtplib.SMTP, rcpt: str, data: bytes) -> tuple[int, bytes]:
    """MAIL/RCPT/DATA without the SIZE= hint smtplib's sendmail adds: the DATA check."""
    assert c.mail("a@outside.example")[0] == 250
    assert c.rcpt(rcpt)[0] == 250
    return c.data(data)


class Raw:
    """A line-level SMTP client for what smtplib will not send."""

    def __init__(self, port: int, timeout: float = 10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self) -> str:
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return b"\n".join(lines).decode()

    def cmd(self, text: str | bytes) -> str:
        self.send((text.encode() if isinstance(text, str) else text) + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- greetings

def test_greeting_lines_carry_no_status_codes(ingress):
    """HELO and EHLO lines are ours (no enhanced codes, no HELP); errors get codes."""
    srv = ingress(lmtp__listen="127.0.0.1:0")
    r = Raw(srv.smtp_port)
    assert r.cmd("HELO client.example") == "250 example.org"
    for _ in range(3):  # a repeated EHLO gives the same lines
        assert r.cmd("EHLO client.example").split("\n") == [
            "250-example.org", "250-SIZE 5242880", "250-8BITMIME", "250-PIPELINING",
            "250 ENHANCEDSTATUSCODES"]
    assert r.cmd("HELO").startswith("501 5.5.4")
    # SIZE's 26 extra octets are allowed on MAIL once, however many EHLOs came before
    addr = "a" * 64 + "@" + "b" * 60 + ".example"
    assert r.cmd(f"MAIL FROM:<{addr}> SIZE=10 " + "X" * (512 + 26 - 40 - len(addr))
                 ).startswith("555")
    assert r.cmd(f"MAIL FROM:<{addr}> " + "X" * (512 + 40 - len(addr))).startswith("500")
    r.close()
    lm = Raw(srv.ports["lmtp"])
    assert lm.cmd("LHLO mta.example").split("\n")[-2:] == [
        "250-PIPELINING", "250 ENHANCEDSTATUSCODES"]
    assert lm.cmd("EHLO mta.example").startswith("500 5.5.2")
    lm.close()


# --------------------------------------------------------------------------- size

def test_size_at_mail_is_refused_with_552(ingress):
    srv = ingress()
    with connect(srv.smtp_port) as c:
        assert c.docmd(f"MAIL FROM:<a@outside.example> SIZE={LIMIT + 1}") == (
            552, b"5.3.4 Message size exceeds fixed maximum message size")
        assert c.docmd(f"MAIL FROM:<a@outside.example> SIZE={LIMIT}")[0] == 250


def test_oversize_data_is_refused_and_session_stays_usable(ingress):
    srv = ingress()
    srv.call(lambda s: create_list(s, "demo", ["o@outside.example"]))
    with connect(srv.smtp_port) as c:
        assert send_without_size(c, "demo@example.org", body_of_size(LIMIT + 1)) == (
            552, b"5.3.4 Message size exceeds fixed maximum message size")
        assert srv.messages() == []
        assert c.rset()[0] == 250
        # The next message in the same session, exactly at the limit, is accepted.
        assert c.sendmail("a@outside.example", ["demo@example.org"], body_of_size(LIMIT)) == {}
    [(msg, _)] = srv.messages()
    assert msg.size == LIMIT


def test_limit_counts_base64_attachments_as_transmitted(ingress):
    from email.message import EmailMessage
    srv = ingress(smtp__max_message_size=100_000)
    srv.call(lambda s: create_list(s, "demo", ["o@outside.example"]))
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "a@outside.example", "demo@example.org", "att"
    m.set_content("see attachment")
    m.add_attachment(b"\0" * 80_000, maintype="application", subtype="octet-stream")
    # 80,000 raw octets become ~110,000 in base64: over the limit as transmitted.
    with connect(srv.smtp_port) as c:
        wire = m.as_bytes(policy=email.policy.SMTP)
        assert 100_000 < len(wire) < 120_000
        assert send_without_size(c, "demo@example.org", wire)[0] == 552
        with pytest.raises(smtplib.SMTPSenderRefused):  # with SIZE=: refused at MAIL
            c.send_message(m)


# --------------------------------------------------------------------------- lines

def test_long_command_line_is_refused(ingress):
    srv = ingress()
    r = Raw(srv.smtp_port)
    assert r.cmd("EHLO client.example").startswith("250-")
    assert r.cmd("MAIL FROM:<" + "a" * 600 + "@outside.example>").startswith("500 5.5.2")
    assert r.cmd("NOOP").startswith("250")
    r.close()


def test_long_text_lines_are_accepted(ingress):
    """Lines over RFC 5321's 1000 octets are accepted, as real MTAs do; the message size
    limit bounds them."""
    srv = ingress()
    r = Raw(srv.smtp_port)
    r.cmd("EHLO client.example")
    for n in (5000, 200_000):
        r.cmd("MAIL FROM:<a@outside.example>")
        assert r.cmd("RCPT TO:<postmaster@example.org>").startswith("250")
        assert r.cmd("DATA").startswith("354")
        assert r.cmd(b"Subject: x\r\n\r\n" + b"z" * n + b"\r\n.").startswith("250 2.0.0")
    assert len(srv.messages()) == 2
    r.close()


@pytest.mark.parametrize("payload", [
    b"Subject: a\r\n\r\nbody\n.\nMAIL FROM:<evil@outside.example>\r\n",
    b"Subject: a\r\n\r\nbody\r.\rMAIL FROM:<evil@outside.example>\r\n",
    b"Subject: a\r\n\r\nbody\r\n.\nMAIL FROM:<evil@outside.example>\r\n",
    b"Subject: a\r\n\r\nbody\n.\r\nMAIL FROM:<evil@outside.example>\r\n",
    b"Subject: a\nX-Injected: yes\r\n\r\nbody\r\n",
])
def test_bare_lf_and_cr_never_end_data_and_are_normalised(ingress, payload):
    """SMTP smuggling (CVE-2023-51766 family): only CRLF.CRLF ends a message."""
    srv = ingress()
    r = Raw(srv.smtp_port)
    r.cmd("EHLO client.example")
    r.cmd("MAIL FROM:<a@outside.example>")
    r.cmd("RCPT TO:<postmaster@example.org>")
    assert r.cmd("DATA").startswith("354")
    assert r.cmd(payload + b".").startswith("250 2.0.0 Ok: queued as")
    assert r.cmd("QUIT").startswith("221")
    [(msg, tasks)] = srv.messages()
    stored = srv.app.spool.read(msg.spool_path)
    assert b"\r" not in stored.replace(b"\r\n", b"")
    assert b"\n" not in stored.replace(b"\r\n", b"")
    # Only the CRLF-delimited wire lines count: one starting with "." loses that dot
    # (RFC 5321 4.5.2), whatever bare LF or CR it holds.
    unstuffed = b"\r\n".join(line[1:] if line.startswith(b".") else line
                              for line in payload.split(b"\r\n"))
    assert stored.replace(b"\r\n", b"\n") == unstuffed.replace(b"\r\n", b"\n").replace(
        b"\r", b"\n")
    assert len(tasks) == 1


# --------------------------------------------------------------------------- caps

def test_too_many_recipients_get_452(ingress):
    srv = ingress(smtp__max_recipients=3)
    with connect(srv.smtp_port) as c:
        c.docmd("MAIL FROM:<a@outside.example>")
        for _ in range(3):
            assert c.docmd("RCPT TO:<postmaster@example.org>")[0] == 250
        assert c.docmd("RCPT TO:<postmaster@example.org>") == (452, b"4.5.3 Too many recipients")
        code, _ = c.data(b"Subject: x\r\n\r\nx\r\n")
        assert code == 250
    [(_, tasks)] = srv.messages()
    assert len(tasks) == 1  # the same destination three times is stored once


def test_connection_cap(ingress):
    srv = ingress(smtp__max_connections=2)
    a, b = connect(srv.smtp_port), connect(srv.smtp_port)
    c = smtplib.SMTP(timeout=10)
    code, text = c.connect("127.0.0.1", srv.smtp_port)
    assert code == 421 and b"4.7.0" in text and b"Too many connections" in text
    a.quit()
    deadline = time.monotonic() + 5
    while True:  # the freed slot is usable again
        d = smtplib.SMTP(timeout=10)
        code, _ = d.connect("127.0.0.1", srv.smtp_port)
        d.close()
        if code == 220 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert code == 220
    b.quit()


def test_data_sessions_are_capped(ingress):
    srv = ingress(smtp__max_data_sessions=1)
    first, second = Raw(srv.smtp_port), Raw(srv.smtp_port)
    for r in (first, second):
        r.cmd("EHLO client.example")
        r.cmd("MAIL FROM:<a@outside.example>")
        r.cmd("RCPT TO:<postmaster@example.org>")
    assert first.cmd("DATA").startswith("354")
    assert second.cmd("DATA") == "451 4.3.2 Too many messages arriving at once, try again later"
    assert first.cmd(b"Subject: 1\r\n\r\nx\r\n.").startswith("250 2.0.0")
    assert second.cmd("DATA").startswith("354")  # the slot is free again
    assert second.cmd(b"Subject: 2\r\n\r\nx\r\n.").startswith("250 2.0.0")
    first.close()
    second.close()
    assert len(srv.messages()) == 2


def test_idle_connection_is_closed_after_timeout(ingress):
    srv = ingress(smtp__timeout="1s")
    r = Raw(srv.smtp_port)
    r.cmd("EHLO client.example")
    time.sleep(1.6)
    with pytest.raises((EOFError, ConnectionError)):
        r.cmd("NOOP")


def test_slow_data_is_not_cut_off_by_the_idle_timer(ingress):
    # A slow but steady upload (about 80 bytes/s, above min_data_rate) is never cut off.
    srv = ingress(smtp__timeout="1s", smtp__min_data_rate=50)
    r = Raw(srv.smtp_port)
    r.cmd("EHLO client.example")
    r.cmd("MAIL FROM:<a@outside.example>")
    r.cmd("RCPT TO:<postmaster@example.org>")
    assert r.cmd("DATA").startswith("354")
    r.send(b"Subject: slow\r\n\r\n")
    for i in range(8):  # 2.4 s in all, never 1 s without a byte
        r.send(b"line %d, still typing" % i)
        time.sleep(0.3)
        r.send(b"\r\n")
    assert r.cmd(b".").startswith("250 2.0.0")
    assert len(srv.messages()) == 1


# --------------------------------------------------------------------------- errors

def test_internal_error_answers_451_without_traceback(ingress, monkeypatch, caplog):
    def broken(self, *args):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(IngressHandler, "_spool", broken)
    srv = ingress()
    with caplog.at_level(logging.INFO, logger="listmgr.smtp"):
        with connect(srv.smtp_port) as c:
            c.docmd("MAIL FROM:<a@outside.example>")
            c.docmd("RCPT TO:<postmaster@example.org>")
            code, text = c.data(b"Subject: x\r\n\r\nx\r\n")
            assert (code, text) == (451, b"4.3.0 Internal error, please try again later")
            assert c.noop()[0] == 250 and c.rset()[0] == 250
    assert any("disk on fire" in (r.exc_text or "") for r in caplog.records)


def test_internal_error_at_rcpt_answers_451(ingress, monkeypatch):
    def broken(self, *args):
        raise RuntimeError("database gone")
    monkeypatch.setattr(IngressHandler, "_route", broken)
    monkeypatch.setattr(InlineNames, "read", broken)  # SQLite's lookup on the event loop

    async def broken_async(self, *args):
        raise RuntimeError("database gone")
    monkeypatch.setattr(AsyncNames, "read", broken_async)  # PostgreSQL's
    srv = ingress()
    assert rcpt_reply(srv.smtp_port, "<postmaster@example.org>") == (
        451, "4.3.0 Internal error, please try again later")


def test_malformed_commands_get_500_and_501(ingress):
    srv = ingress()
    r = Raw(srv.smtp_port)
    assert r.cmd("EHLO").startswith("501 5.5.4")
    r.cmd("EHLO client.example")
    assert r.cmd("FROB").startswith("500 5.5.2")
    assert r.cmd("MAIL FROM:a@b@c").startswith("553 5.1.3")
    assert r.cmd("MAIL TO:<a@outside.example>").startswith("501 5.5.4")
    assert r.cmd("RCPT TO:<postmaster@example.org>").startswith("503 5.5.1")
    assert r.cmd("MAIL FROM:<root>").startswith("553 5.1.8")
    assert r.cmd("MAIL FROM:<a@outside.example> BOGUS=1").startswith("555 5.5.4")
    r.close()


def test_control_characters_and_long_addresses_are_refused_cleanly(ingress):
    srv = ingress()
    r = Raw(srv.smtp_port)
    assert r.cmd(b"EHLO bad\0helo\x01.example").startswith("250-")
    assert r.cmd(b"MAIL FROM:<a\0b@outside.example>") == "553 5.1.7 Bad sender address syntax"
    assert r.cmd("MAIL FROM:<a@" + "d" * 330 + ".example>").startswith("553 5.1.7")
    assert r.cmd("MAIL FROM:<a@outside.example>").startswith("250")
    assert r.cmd(b"RCPT TO:<post\x01master@example.org>") == "553 5.1.3 Bad address syntax"
    assert r.cmd("RCPT TO:<a@" + "d" * 330 + ".example>").startswith("553 5.1.3")
    assert r.cmd("RCPT TO:<postmaster@example.org>").startswith("250")
    assert r.cmd("DATA").startswith("354")
    assert r.cmd(b"Subject: x\r\n\r\nx\r\n.").startswith("250 2.0.0")
    r.close()
    [(msg, _)] = srv.messages()
    assert msg.client_helo == "bad?helo?.example"


def test_non_ascii_address_is_refused(ingress):
    srv = ingress()
    r = Raw(srv.smtp_port)
    r.cmd("EHLO client.example")
    r.cmd("MAIL FROM:<a@outside.example>")
    assert r.cmd("RCPT TO:<user@exämple.org>".encode()).startswith("500 5.6.7")
    r.close()


def test_mail_loop_is_refused(ingress):
    srv = ingress()
    hops = b"".join(b"Received: from h%d by h%d; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % (i, i)
                    for i in range(31))
    with connect(srv.smtp_port) as c:
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail("a@outside.example", ["postmaster@example.org"],
                       hops + b"Subject: loop\r\n\r\nx\r\n")
        assert err.value.smtp_code == 554 and b"5.4.6" in err.value.smtp_error
    assert srv.messages() == []


# --------------------------------------------------------------------------- logging

def test_one_log_line_per_transaction(ingress, caplog):
    srv = ingress()
    with caplog.at_level(logging.INFO, logger="listmgr.smtp"):
        with connect(srv.smtp_port) as c:
            c.sendmail("a@outside.example", ["postmaster@example.org",
                                             "majordomo@example.org"], b"Subject: x\r\n\r\nx\r\n")
    [(msg, _)] = srv.messages()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(msg.queue_id)]
    assert lines == [f"{msg.queue_id} client=client.example[127.0.0.1] from=<a@outside.example> "
                     f"to=<postmaster@example.org>,<majordomo@example.org> size={msg.size} "
                     f"result=queued"]


# --------------------------------------------------------------------------- durability

def test_stored_before_250_and_processed_after_restart(ingress, server):
    first = ingress()
    first.call(lambda s: create_list(s, "demo", ["o@outside.example"]))
    with connect(first.smtp_port) as c:
        code, text = c.docmd("MAIL FROM:<a@outside.example>")
        c.docmd("RCPT TO:<demo-owner@example.org>")
        code, text = c.data(b"Subject: survive\r\n\r\nx\r\n")
        assert code == 250
        # At the moment of 250: the file is on disk and the row committed.
        [(msg, [task])] = first.messages()
        assert text.decode().endswith(msg.queue_id)
        assert first.app.spool.path(msg.spool_path).exists()
        assert task.state == "new"
    first.stop()  # no pipeline ran: a "crash" before processing
    srv = server()  # same database and data dir, everything running
    srv.wait_idle()
    rcpts = srv.call(lambda s: [r.rcpt for r in s.scalars(select(OutboundRecipient))])
    assert rcpts == ["o@outside.example"]
    # Once done, the message is removed (in its own transaction, just after).
    deadline = time.monotonic() + 10
    while srv.call(lambda s: [t.state for t in s.scalars(select(InboundTask))]) != []:
        assert time.monotonic() < deadline, "inbound task was not cleaned up"
        time.sleep(0.05)


# --------------------------------------------------------------------------- TLS, AUTH

@pytest.fixture
def cert(tmp_path: Path) -> tuple[str, str]:
    crt, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=mx.example.org", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    return str(crt), str(key)


def _client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_commands_injected_before_starttls_are_discarded(ingress, cert):
    """STARTTLS command injection (CVE-2011-0411 family): plaintext sent after STARTTLS in
    the same packet must never be executed inside the TLS session."""
    srv = ingress(smtp__tls_cert=cert[0], smtp__tls_key=cert[1])
    r = Raw(srv.smtp_port)
    r.cmd("EHLO client.example")
    r.send(b"STARTTLS\r\nMAIL FROM:<injected@outside.example>\r\n")
    assert r.reply().startswith("220 2.0.0")
    tls = _client_tls().wrap_socket(r.sock)
    f = tls.makefile("rwb")
    f.write(b"EHLO client.example\r\n")
    f.flush()
    while True:
        line = f.readline()
        if line[3:4] == b" ":
            break
    f.write(b"MAIL FROM:<real@outside.example>\r\n")
    f.flush()
    assert f.readline().startswith(b"250 2.1.0")  # not "503 nested MAIL"
    tls.close()


def test_pipelined_commands_get_their_replies_in_order(ingress):
    srv = ingress()
    r = Raw(srv.smtp_port)
    r.cmd("EHLO client.example")
    r.send(b"MAIL FROM:<a@outside.example>\r\nRCPT TO:<nobody@example.org>\r\n"
           b"RCPT TO:<postmaster@example.org>\r\nDATA\r\n")
    assert [r.reply()[:3] for _ in range(4)] == ["250", "550", "250", "354"]
    assert r.cmd(b"Subject: p\r\n\r\nx\r\n.").startswith("250 2.0.0")
    r.close()
    assert srv.tasks() == [("admins", "", "postmaster@example.org")]


def test_starttls_offered_only_with_cert(ingress, cert):
    plain = ingress()
    with connect(plain.smtp_port) as c:
        assert not c.has_extn("starttls")
        assert c.docmd("AUTH PLAIN")[0] == 538  # never over plain text
    tls = ingress(smtp__tls_cert=cert[0], smtp__tls_key=cert[1])
    with connect(tls.smtp_port) as c:
        assert c.has_extn("starttls") and not c.has_extn("auth")
        assert c.starttls(context=_client_tls())[0] == 220
        c.ehlo("client.example")
        assert c.has_extn("auth") and not c.has_extn("starttls")
        assert c.sendmail("a@outside.example", ["postmaster@example.org"],
                          b"Subject: tls\r\n\r\nx\r\n") == {}
    assert len(tls.messages()) == 1


def test_smtp_auth_over_tls_opens_the_relay(ingress, cert):
    srv = ingress(smtp__tls_cert=cert[0], smtp__tls_key=cert[1])
    srv.call(lambda s: s.add(MailboxUser(name="alice", password_hash=hash_password("pw1"))))
    with connect(srv.smtp_port) as c:
        c.starttls(context=_client_tls())
        c.ehlo("client.example")
        bad = base64.b64encode(b"\0alice\0wrong").decode()
        assert c.docmd("AUTH PLAIN " + bad)[0] == 535
        c.docmd("MAIL FROM:<alice@example.org>")
        assert c.docmd("RCPT TO:<someone@outside.example>")[0] == 550
        c.rset()
        assert c.login("alice@example.org", "pw1")[0] == 235
        assert c.sendmail("alice@example.org", ["someone@outside.example"],
                          b"Subject: out\r\n\r\nx\r\n") == {}
    assert srv.tasks() == [("relay", "someone@outside.example", "someone@outside.example")]


# --------------------------------------------------------------------------- LMTP

def test_lmtp_gives_one_reply_per_recipient(ingress):
    srv = ingress(lmtp__listen="127.0.0.1:0")
    r = Raw(srv.ports["lmtp"])
    assert r.cmd("LHLO mta.example").startswith("250-")
    r.cmd("MAIL FROM:<a@outside.example>")
    assert r.cmd("RCPT TO:<postmaster@example.org>").startswith("250")
    assert r.cmd("RCPT TO:<nobody@example.org>").startswith("550 5.1.1")
    assert r.cmd("RCPT TO:<majordomo@example.org>").startswith("250")
    assert r.cmd("DATA").startswith("354")
    r.send(b"Subject: lmtp\r\n\r\nx\r\n.\r\n")
    first, second = r.line().decode(), r.line().decode()
    assert first.startswith("250 2.1.5 <postmaster@example.org> Ok: queued as")
    assert second.startswith("250 2.1.5 <majordomo@example.org> Ok: queued as")
    # Oversize: 552 once per recipient as well.
    r.cmd(f"MAIL FROM:<a@outside.example>")
    r.cmd("RCPT TO:<postmaster@example.org>")
    r.cmd("RCPT TO:<majordomo@example.org>")
    r.cmd("DATA")
    r.send(body_of_size(LIMIT + 10) + b".\r\n")
    assert [r.line()[:9], r.line()[:9]] == [b"552 5.3.4"] * 2
    r.close()
    assert len(srv.messages()) == 1


def test_mail_and_rcpt_paths_parse_alike_on_the_fast_path_and_the_full_parser():
    """Plain <local@domain> paths skip the RFC 5322 parser; the result is the same."""
    from aiosmtpd.smtp import SMTP as Base

    from listmgr.smtp.server import ListmgrSMTP

    class Probe(ListmgrSMTP):
        def __init__(self):  # no connection needed to parse
            self.local_part_limit = 64

    p = Probe()
    for arg in ["<a.b+c@ex.org> SIZE=5", "<a@b>", '<"q x"@b.org>', "<a@[1.2.3.4]>",
                "<A@B.ORG>  ", " <a@b.c>", "<a..b@c>", "<.a@c>", "<%s@b>" % ("x" * 65),
                "<%s@b>" % ("x" * 64), "<a@b>SIZE=1", "<a@b> (c) X", "<a@b>\tBODY=8BITMIME",
                "a@b", "<>", "<a@b c>", "<a@b"]:
        assert p._getaddr(arg) == Base._getaddr(p, arg), arg


@pytest.mark.parametrize("raw, stored", [
    (b"a\r\nb\r\n", b"a\r\nb\r\n"),
    (b"a\nb\r\n", b"a\r\nb\r\n"),  # bare LF
    (b"a\rb\r\n", b"a\r\nb\r\n"),  # bare CR
    (b"a\r\rb\n\n", b"a\r\n\r\nb\r\n\r\n"),
    (b"\r\n\n\r", b"\r\n\r\n\r\n"),
    (b"", b""),
])
def test_line_ends_are_made_crlf_and_canonical_mail_is_kept_as_is(raw, stored):
    from listmgr.mail.compose import normalise_line_ends
    assert normalise_line_ends(raw) == stored
    big = b"Subject: x\r\n\r\n" + b"y" * 70 * 1000 + b"\r\n"
    assert normalise_line_ends(big) is big  # nothing to change: no copy
