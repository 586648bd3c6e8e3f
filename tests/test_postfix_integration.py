"""listmgr behind a real Postfix: Postfix receives on its SMTP port, asks listmgr's socketmap
server at RCPT time whether the recipient exists, hands accepted mail to `listmgr serve` over
LMTP, and relays listmgr's outbound mail (as its smarthost) to the recording sink.

The main.cf lines are those of docs/postfix.md (with test ports). One Postfix (and one
listmgr) per database for the whole module.
"""

from __future__ import annotations

import os
import smtplib
import time

import pytest

from listmgr.store import lists as repo
from listmgr.store import mailboxes
from tests.conftest import DATABASES
from tests.postfix_support import PrivatePostfix, available
from tests.support import RecordingSink, ServerThread, scratch_database, write_config

pytestmark = pytest.mark.skipif(available() is not None
                                and not os.environ.get("LISTMGR_TEST_REQUIRE_TOOLS"),
                                reason=str(available()))

OWNER = "owner@owners.example"
MEMBERS = ["alice@example.com", "bob@example.net"]
SIZE_LIMIT = 5 * 1024 * 1024


@pytest.fixture(scope="module", params=DATABASES)
def stack(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("postfix")
    sink = RecordingSink()
    sink.start()
    pf = PrivatePostfix()
    with scratch_database(request.param, tmp) as url:
        cfg = write_config(tmp, url, lmtp__listen="127.0.0.1:0", maps__listen="127.0.0.1:0",
                           delivery__smarthost=f"127.0.0.1:{pf.port}",
                           smtp__max_message_size=SIZE_LIMIT)
        srv = ServerThread(cfg)
        srv.start()
        try:
            pf.start({  # docs/postfix.md, with this test's ports
                "relay_domains": "example.org",
                "relay_recipient_maps": f"socketmap:inet:127.0.0.1:{srv.ports['maps']}:rcpt",
                "transport_maps": f"inline:{{ example.org=lmtp:inet:127.0.0.1:"
                                  f"{srv.ports['lmtp']} }}",
                "message_size_limit": str(SIZE_LIMIT),
                "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
                "relayhost": f"[127.0.0.1]:{sink.port}",
            })

            def setup(s):
                ml = repo.create_list(s, "demo", [OWNER], password="s3cret")
                repo.add_members(s, ml, MEMBERS)
                mailboxes.add_user(s, "carol", "secret-pw")
            srv.call(setup)
            yield srv, pf, sink
        finally:
            pf.stop()
            srv.stop()
            sink.stop()


def via_postfix(pf, mail_from, rcpts, text, options=()):
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as c:
        return c.sendmail(mail_from, rcpts, data, list(options))


def wait(sink, pf, predicate, what, timeout=60.0):
    try:
        return sink.wait_for(predicate, timeout)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}\n--- Postfix log ---\n{pf.log_text()[-4000:]}")


def test_list_post_goes_in_over_lmtp_and_out_through_postfix(stack):
    srv, pf, sink = stack
    mid = f"<{time.time_ns()}@example.com>"
    via_postfix(pf, MEMBERS[0], ["demo@example.org"],
                f"From: {MEMBERS[0]}\nTo: demo@example.org\nSubject: through postfix\n"
                f"Message-ID: {mid}\n\nHello list.\n")
    got = wait(sink, pf, lambda got: sorted(r for m in got if m.message["Message-ID"] == mid
                                           for r in m.rcpt_tos) == sorted(MEMBERS),
               "the post reaches every member")
    copy = next(m for m in got if m.message["Message-ID"] == mid)
    # The list's bounce address, with the member's VERP part (list setting verp, default on).
    assert copy.mail_from == "owner-demo+" + copy.rcpt_tos[0].replace("@", "=") + "@example.org"
    assert copy.message["List-Id"]
    received = [str(h) for h in copy.message.get_all("Received")]
    # Newest first: Postfix relaying listmgr's copy, listmgr's LMTP hop, Postfix receiving.
    assert "by relay.example.test" in received[0]
    assert sum("(listmgr) with LMTP id" in h for h in received) == 1
    assert "from client.example" in received[-1] or "by relay.example.test" in received[-1]
    assert sum("by relay.example.test" in h for h in received) >= 2
    assert pf.queue_empty()


def test_command_mail_is_answered_through_postfix(stack):
    srv, pf, sink = stack
    asker = "asker@elsewhere.example"
    via_postfix(pf, asker, ["majordomo@example.org"],
                f"From: {asker}\nTo: majordomo@example.org\nSubject: x\n\nlists\n")
    got = wait(sink, pf, lambda got: any(asker in m.rcpt_tos for m in got),
               "the command reply comes back")
    reply = next(m for m in got if asker in m.rcpt_tos)
    assert "demo" in reply.message.get_body(("plain",)).get_content()


def test_unknown_user_refused_by_postfix_at_rcpt_without_bounce(stack):
    srv, pf, sink = stack
    sink.clear()
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as c:
        c.ehlo("client.example")
        assert c.mail("someone@elsewhere.example")[0] == 250
        code, text = c.rcpt("nobody@example.org")
        assert code == 550, text
        assert b"nobody@example.org" in text
        # Known addresses of every kind are accepted by the same Postfix lookup.
        for ok in ("demo@example.org", "demo-request@example.org", "owner-demo@example.org",
                   "carol@example.org", "postmaster@example.org", "DEMO@Example.org"):
            assert c.rcpt(ok)[0] == 250, ok
        c.rset()
    assert "reject: RCPT" in pf.log_text()
    time.sleep(2)  # nothing may be queued for a bounce: the client was told at RCPT
    assert pf.queue_empty(), pf.queue_listing()
    assert not any(m.rcpt_tos == ["someone@elsewhere.example"] for m in sink.received)


def test_oversize_refused_by_postfix_at_mail(stack):
    srv, pf, sink = stack
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=30) as c:
        c.ehlo("client.example")
        assert c.does_esmtp and "size" in c.esmtp_features
        assert int(c.esmtp_features["size"]) == SIZE_LIMIT
        code, text = c.mail("someone@elsewhere.example", [f"SIZE={SIZE_LIMIT + 1}"])
        assert code == 552, text
        assert c.mail("someone@elsewhere.example", [f"SIZE={SIZE_LIMIT // 2}"])[0] == 250


def test_mailbox_user_receives_through_postfix(stack):
    srv, pf, sink = stack
    from listmgr.mailbox.maildir import Maildir
    via_postfix(pf, "friend@elsewhere.example", ["carol@example.org"],
                "From: friend@elsewhere.example\nTo: carol@example.org\nSubject: hi\n\nhi\n")
    box = Maildir.for_user(srv.config.data_dir, "carol")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not box.entries():
        time.sleep(0.2)
    assert box.entries(), pf.log_text()[-3000:]
    data = box.entries()[0].path.read_bytes()
    head = data.split(b"\r\n\r\n")[0].decode()
    ours = [h for h in head.split("\r\nReceived: ")[1:] if "(listmgr)" in h]
    assert len(ours) == 1 and "with LMTP id" in ours[0] and "for <carol@example.org>" in ours[0]
    assert "by relay.example.test" in head  # Postfix's own hop below ours
