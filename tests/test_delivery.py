"""The outbound queue through a real server and a real remote MTA (the recording sink)."""

from __future__ import annotations

import email
import email.policy
import time

from flufl.bounce import all_failures, scan_message
from sqlalchemy import select

from listmgr.store.models import OutboundMessage, OutboundRecipient
from listmgr.store.outbound import enqueue

BODY = (b"From: alice@example.org\r\nTo: list@example.org\r\nSubject: hello\r\n"
        b"Message-ID: <m1@example.org>\r\n\r\nfirst line\r\n.leading dot\r\n"
        b"bare\nline feed\r\n..two dots\r\nlast\r\n")


def queue_mail(srv, mail_from, rcpts, data=BODY, **kw) -> str:
    with srv.app.store.session() as s:
        qid = enqueue(s, srv.app.spool, mail_from=mail_from, recipients=rcpts, data=data,
                      **kw).queue_id
    srv.app.notify("outbound")
    return qid


def states(srv, qid) -> dict[str, str]:
    with srv.app.store.session() as s:
        mid = s.scalar(select(OutboundMessage.id).where(OutboundMessage.queue_id == qid))
        return dict(s.execute(select(OutboundRecipient.rcpt, OutboundRecipient.state)
                              .where(OutboundRecipient.message_id == mid)).all())


def wait_until(pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def returned_to(sink, sender):
    return [m for m in sink.to(sender) if m.mail_from in ("", "<>")]


def test_delivers_in_transactions_of_max_recipients(server, sink):
    srv = server(delivery__max_recipients_per_transaction=50)
    rcpts = [f"user{i}@remote.example" for i in range(120)]
    qid = queue_mail(srv, "alice@example.org", rcpts)
    got = sink.wait_for(lambda r: sum(len(m.rcpt_tos) for m in r) >= 120)
    assert sorted(len(m.rcpt_tos) for m in got) == [20, 50, 50]
    assert sorted(r for m in got for r in m.rcpt_tos) == sorted(rcpts)
    assert all(m.mail_from == "alice@example.org" for m in got)
    # Canonical CRLF on the wire, dot-stuffing undone by the receiver: the body arrives as
    # queued (bare LF made CRLF).
    assert got[0].data == BODY.replace(b"bare\nline", b"bare\r\nline")
    wait_until(lambda: set(states(srv, qid).values()) == {"sent"}, what="all sent")
    with srv.app.store.session() as s:
        path = s.scalar(select(OutboundMessage.spool_path)
                        .where(OutboundMessage.queue_id == qid))
    assert path == ""  # every recipient final: the spool file is gone (removed just after
    # that commit)
    wait_until(lambda: not any((srv.app.spool.root / "spool" / "out").iterdir()),
               what="the spool file removed")


def test_user_unknown_is_returned_and_4xx_stays_queued(server, sink):
    sink.rules["nobody@remote.example"] = "550 5.1.1 <nobody@remote.example>... User unknown"
    sink.rules["later@remote.example"] = "450 4.2.0 <later@remote.example>... try later"
    srv = server(delivery__min_backoff="30s", delivery__max_backoff="60s")
    qid = queue_mail(srv, "alice@example.org",
                     ["bob@remote.example", "nobody@remote.example", "later@remote.example"])
    sink.wait_for(lambda r: any("bob@remote.example" in m.rcpt_tos for m in r))
    bounce = wait_until(lambda: returned_to(sink, "alice@example.org"), what="returned mail")[0]
    msg = bounce.message
    assert msg["Subject"] == "Returned mail: User unknown"
    assert msg["From"] == "Mail Delivery Subsystem <MAILER-DAEMON@example.org>"
    assert msg["Auto-Submitted"] == "auto-generated (failure)"
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    text = msg.get_payload()[0].get_content().replace("\r\n", "\n")
    assert "   ----- The following addresses had permanent fatal errors -----" in text
    assert "<nobody@remote.example>\n    (reason: 550 5.1.1 <nobody@remote.example>... " \
           "User unknown)" in text
    assert "   ----- Transcript of session follows -----" in text
    assert ">>> RCPT To:<nobody@remote.example>" in text
    assert "later@remote.example" not in text
    parsed = email.message_from_bytes(bounce.data)
    assert scan_message(parsed) == {b"nobody@remote.example"}
    st = states(srv, qid)
    assert st == {"bob@remote.example": "sent", "nobody@remote.example": "failed",
                  "later@remote.example": "queued"}
    # The original comes back whole (it is small).
    assert msg.get_payload()[2].get_content_type() == "message/rfc822"


def test_null_sender_never_gets_returned_mail(server, sink):
    sink.default_rule = "550 5.1.1 User unknown"
    srv = server()
    qid = queue_mail(srv, "", ["nobody@remote.example"])
    wait_until(lambda: states(srv, qid) == {"nobody@remote.example": "failed"}, what="failed")
    time.sleep(1.5)  # housekeeping runs every poll interval: still nothing may come
    assert sink.recipients() == []
    assert sink.transactions == 0


def test_too_many_hops_is_local_configuration_error(server, sink):
    srv = server()
    hops = b"".join(b"Received: from a by b; Sun, 29 Nov 2026 00:00:00 +0000\r\n"
                    for _ in range(31))
    queue_mail(srv, "alice@example.org", ["bob@remote.example"], data=hops + BODY)
    bounce = wait_until(lambda: returned_to(sink, "alice@example.org"), what="returned")[0]
    assert bounce.message["Subject"] == "Returned mail: Local configuration error"
    assert "bob@remote.example" not in sink.recipients()
    assert "Status: 5.4.6" in bounce.data.decode()
    assert scan_message(email.message_from_bytes(bounce.data)) == {b"bob@remote.example"}
    # Large originals come back as headers only; this one is small and whole.
    assert b"Subject: hello" in bounce.data


def test_several_reasons_say_see_transcript(server, sink):
    sink.rules["nobody@remote.example"] = "550 5.1.1 <nobody@remote.example>... User unknown"
    sink.rules["full@remote.example"] = "552 5.2.2 <full@remote.example>... Mailbox full"
    srv = server()
    queue_mail(srv, "alice@example.org", ["nobody@remote.example", "full@remote.example"])
    bounce = wait_until(lambda: returned_to(sink, "alice@example.org"), what="returned")[0]
    assert bounce.message["Subject"] == "Returned mail: see transcript for details"
    assert scan_message(email.message_from_bytes(bounce.data)) == {
        b"nobody@remote.example", b"full@remote.example"}
    assert all_failures(email.message_from_bytes(bounce.data))[0] == set()


def test_timeline_warning_then_give_up(manual_clock, server, sink):
    """The defaults, on listmgr's clock: a warning after 4 hours while it still tries, the
    final returned mail after 5 days for the recipient still pending; the delivered one is
    in neither."""
    sink.rules["later@remote.example"] = "451 4.3.0 <later@remote.example>... try later"
    srv = server(delivery__poll_interval="0.2s")  # how often it looks, not when
    qid = queue_mail(srv, "alice@example.org", ["bob@remote.example", "later@remote.example"])
    wait_until(lambda: states(srv, qid)["bob@remote.example"] == "sent", what="first try")
    srv.wait_settled()  # no attempt in flight when the clock moves
    manual_clock.advance(hours=3, minutes=59)
    time.sleep(1.0)  # housekeeping looks every poll interval: nothing is due yet
    assert returned_to(sink, "alice@example.org") == []

    manual_clock.advance(minutes=2)
    warning = wait_until(lambda: returned_to(sink, "alice@example.org"), what="warning")[0]
    msg = warning.message
    assert msg["Subject"] == "Warning: could not send message for past 4 hours"
    text = msg.get_payload()[0].get_content().replace("\r\n", "\n")
    assert "**      THIS IS A WARNING MESSAGE ONLY      **" in text
    assert "Warning: message still undelivered after 4 hours" in text
    assert "Will keep trying until message is 5 days old" in text
    assert "<later@remote.example>... Deferred: 451 4.3.0" in text
    assert "Action: delayed" in warning.data.decode()
    assert all_failures(email.message_from_bytes(warning.data)) == (
        {b"later@remote.example"}, set())
    assert states(srv, qid)["later@remote.example"] == "queued"

    srv.wait_settled()
    manual_clock.advance(days=5)
    final = wait_until(lambda: returned_to(sink, "alice@example.org")[1:],
                       what="final returned mail")[0]
    msg = final.message
    assert msg["Subject"] == "Returned mail: see transcript for details"
    text = msg.get_payload()[0].get_content().replace("\r\n", "\n")
    assert "Message could not be delivered for 5 days" in text
    assert "Message will be deleted from queue" in text
    assert "(reason: 451 4.3.0 <later@remote.example>... try later)" in text
    assert scan_message(email.message_from_bytes(final.data)) == {b"later@remote.example"}
    assert states(srv, qid) == {"bob@remote.example": "sent", "later@remote.example": "failed"}
    tries = len([r for r in sink.recipients() if r == "later@remote.example"])
    assert tries == 0  # refused at RCPT each time: never accepted
    manual_clock.advance(days=1)
    time.sleep(1.0)
    assert len(returned_to(sink, "alice@example.org")) == 2  # one warning, one return


def test_a_purged_messages_id_never_brings_back_its_body(manual_clock, server, sink):
    """SQLite hands the id of a purged message to the next one: the worker's cached body of
    the old message must not go out to the new message's recipients."""
    from listmgr.store import outbound_claims
    srv = server()
    first = queue_mail(srv, "alice@example.org", ["bob@remote.example"],
                       data=b"Subject: first\r\n\r\nold body\r\n")
    wait_until(lambda: states(srv, first) == {"bob@remote.example": "sent"}, what="first")
    manual_clock.advance(days=2)
    with srv.app.store.session() as s:
        assert outbound_claims.purge_finished(s, 86400) == 1
    queue_mail(srv, "alice@example.org", ["carol@remote.example"],
               data=b"Subject: second\r\n\r\nnew body\r\n")
    [got] = sink.wait_for(lambda r: any("carol@remote.example" in m.rcpt_tos for m in r))[1:]
    assert got.message["Subject"] == "second" and b"new body" in got.data


def test_relayed_by_smtp_then_delivered_or_returned(server, sink):
    """End to end: a client relays through listmgr's SMTP; one recipient is delivered, the
    other is unknown at the remote and comes back to the client's envelope sender."""
    import smtplib
    sink.rules["ghost@remote.example"] = "550 5.1.1 <ghost@remote.example>... User unknown"
    srv = server(smtp__relay_networks=["127.0.0.1/32"])
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, local_hostname="client.example") as c:
        refused = c.sendmail("alice@client.example", ["bob@remote.example",
                                                       "ghost@remote.example"], BODY)
    assert refused == {}
    [delivered] = sink.wait_for(lambda got: any("bob@remote.example" in m.rcpt_tos
                                                for m in got))
    assert delivered.mail_from == "alice@client.example"
    assert delivered.data.startswith(b"Received: from client.example")
    bounce = wait_until(lambda: returned_to(sink, "alice@client.example"), what="returned")[0]
    msg = bounce.message
    assert msg["Subject"] == "Returned mail: User unknown"
    text = msg.get_payload()[0].get_content().replace("\r\n", "\n")
    assert "from client.example [127.0.0.1]" in text
    assert scan_message(email.message_from_bytes(bounce.data)) == {b"ghost@remote.example"}


def test_one_connection_reused_for_several_transactions(server, sink):
    srv = server(delivery__per_host_concurrency=1)
    rcpts = [f"u{i}@remote.example" for i in range(150)]
    queue_mail(srv, "alice@example.org", rcpts)
    got = sink.wait_for(lambda r: sum(len(m.rcpt_tos) for m in r) >= 150)
    assert [len(m.rcpt_tos) for m in got] == [50, 50, 50]
    assert len({m.peer for m in got}) == 1  # same client port: one connection


def test_oversized_message_returned_with_headers_only(server, sink):
    sink.rules["small@remote.example"] = ("552 5.3.4 <small@remote.example>... Message size "
                                          "exceeds fixed maximum message size")
    srv = server()
    big = BODY + (b"y" * 998 + b"\r\n") * 200
    queue_mail(srv, "alice@example.org", ["small@remote.example"], data=big)
    bounce = wait_until(lambda: returned_to(sink, "alice@example.org"), what="returned")[0]
    msg = bounce.message
    assert msg["Subject"] == "Returned mail: see transcript for details"
    assert "Message size exceeds fixed maximum message size" in \
        msg.get_payload()[0].get_content()
    assert msg.get_payload()[2].get_content_type() == "text/rfc822-headers"
    assert b"Subject: hello" in bounce.data and b"y" * 998 not in bounce.data
    assert scan_message(email.message_from_bytes(bounce.data)) == {b"small@remote.example"}


def test_opportunistic_starttls(server, sink, tmp_path):
    import ssl
    import subprocess

    from tests.support import _PortZeroController, _SinkHandler
    crt, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=mx.remote.example", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(crt), str(key))
    tls_sink = type(sink)()
    # The remote refuses MAIL before STARTTLS (530): delivery works only over TLS.
    tls_sink.controller = _PortZeroController(_SinkHandler(tls_sink), hostname="127.0.0.1",
                                              port=0, tls_context=ctx, require_starttls=True)
    tls_sink.start()
    try:
        srv = server(delivery__smarthost=f"127.0.0.1:{tls_sink.port}")
        queue_mail(srv, "alice@example.org", ["bob@remote.example"])
        [got] = tls_sink.wait_count(1)
        assert got.rcpt_tos == ["bob@remote.example"]
    finally:
        tls_sink.stop()
