"""The delivery SMTP client against a sink that offers PIPELINING (RFC 2920): the pipelined
path, a refused MAIL whose pipelined RCPTs get 503, and the timeout per reply."""

from __future__ import annotations

import asyncio
import time

import pytest

from listmgr.delivery.smtpclient import SMTPClient, SMTPClientError, prepare_payload
from tests.support import RecordingSink

PAYLOAD = prepare_payload(b"Subject: pipelined\r\n\r\nbody\r\n")


@pytest.fixture
def psink():
    s = RecordingSink(pipelining=True)
    s.start()
    yield s
    s.stop()


def _run(sink: RecordingSink, steps, timeout: float = 30.0):
    async def main():
        client, greeting = await SMTPClient.connect(
            "127.0.0.1", sink.port, host="sink.test", helo="client.test", timeout=timeout,
            connect_timeout=10, starttls=False)
        assert greeting.code == 220
        try:
            return await steps(client)
        finally:
            await client.quit()
    return asyncio.run(main())


def test_pipelined_transaction_keeps_replies_in_order(psink):
    psink.rules["r3@remote.example"] = "550 5.1.1 <r3@remote.example>... User unknown"
    psink.rules["r7@remote.example"] = "450 4.2.1 mailbox busy"
    rcpts = [f"r{i}@remote.example" for i in range(10)]

    async def steps(client):
        assert "PIPELINING" in client.extensions
        first = await client.transaction("a@example.org", rcpts, PAYLOAD)
        second = await client.transaction("b@example.org", ["r0@remote.example"], PAYLOAD)
        return first, second

    first, second = _run(psink, steps)
    assert first.mail.code == 250
    assert [r.code for r in first.rcpts] == [250, 250, 250, 550, 250, 250, 250, 450, 250, 250]
    assert first.rcpts[3].text.startswith("5.1.1") and first.data.code == 250
    assert second.data.code == 250
    got = psink.wait_count(2)
    assert got[0].rcpt_tos == [r for r in rcpts if r not in ("r3@remote.example",
                                                                "r7@remote.example")]
    assert got[1].mail_from == "b@example.org"


def test_refused_mail_gives_its_reply_to_every_recipient_and_the_session_goes_on(psink):
    """RFC 2920: the pipelined RCPTs after a refused MAIL are answered 503 by the server;
    what each recipient gets is MAIL's refusal, and the next transaction on the same
    connection starts clean (the 503s were read, not left in the stream)."""
    psink.mail_rule = "550 5.7.1 Sender blocked by policy"
    rcpts = ["x@remote.example", "y@remote.example", "z@remote.example"]

    async def steps(client):
        refused = await client.transaction("spammer@example.org", rcpts, PAYLOAD)
        psink.mail_rule = None
        accepted = await client.transaction("alice@example.org", rcpts, PAYLOAD)
        return refused, accepted

    refused, accepted = _run(psink, steps)
    assert (refused.mail.code, refused.data) == (550, None)
    assert [(r.code, r.text) for r in refused.rcpts] == \
        [(550, "5.7.1 Sender blocked by policy")] * 3
    assert accepted.mail.code == 250 and [r.code for r in accepted.rcpts] == [250] * 3
    assert accepted.data.code == 250
    [got] = psink.wait_count(1)
    assert got.mail_from == "alice@example.org" and got.rcpt_tos == rcpts


def test_without_pipelining_a_refused_mail_sends_no_rcpt():
    sink = RecordingSink()
    sink.start()
    try:
        sink.mail_rule = "550 5.7.1 Sender blocked by policy"

        async def steps(client):
            assert "PIPELINING" not in client.extensions
            return await client.transaction("spammer@example.org", ["x@remote.example"],
                                            PAYLOAD)

        res = _run(sink, steps)
        assert res.mail.code == 550 and res.rcpts[0].code == 550 and res.data is None
    finally:
        sink.stop()


def test_each_reply_has_its_own_timeout(psink):
    """A server answering a pipelined batch steadily (each reply well within the timeout,
    the whole batch longer than it) is waited for."""
    psink.rcpt_delay = 0.25
    rcpts = [f"r{i}@remote.example" for i in range(12)]  # ~3 s of replies, timeout 2 s

    async def steps(client):
        return await client.transaction("a@example.org", rcpts, PAYLOAD)

    res = _run(psink, steps, timeout=2.0)
    assert [r.code for r in res.rcpts] == [250] * 12 and res.data.code == 250


def test_a_stalled_reply_times_out_after_one_timeout_not_one_per_command(psink):
    """MAIL plus 30 pipelined RCPTs with a 1 s timeout: a server that stalls on MAIL is
    given up on after about 1 s, not after 31 s."""
    psink.mail_delay = 12.0
    rcpts = [f"r{i}@remote.example" for i in range(30)]

    async def steps(client):
        t0 = time.monotonic()
        with pytest.raises(SMTPClientError, match="timeout"):
            await client.transaction("a@example.org", rcpts, PAYLOAD)
        return time.monotonic() - t0

    elapsed = _run(psink, steps, timeout=1.0)
    assert elapsed < 8.0, elapsed
