"""Item 2: a hostile SMTP server cannot grow our memory with an endless reply.

A remote that never ends a multiline reply once made RSS climb ~100 MB/s until the reply
timeout (300 s). The client now stops reading at 1,000 lines or 64 KB per reply and defers
the recipients with that reason, long before the timeout.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from listmgr.delivery.smtpclient import SMTPClient, SMTPClientError
from listmgr.store.models import OutboundRecipient
from tests.adversarial.hostile import EndlessReplyServer
from tests.adversarial.support import MEMBERS, make_list, post_text, send, wait_until


@pytest.fixture
def hostile():
    servers = []

    def start(**kw):
        s = EndlessReplyServer(**kw).start()
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("at_greeting", [False, True])
def test_client_gives_up_on_an_endless_reply(hostile, at_greeting):
    bad = hostile(at_greeting=at_greeting)

    async def go():
        t0 = time.monotonic()
        with pytest.raises(SMTPClientError) as exc:
            client, _ = await SMTPClient.connect("127.0.0.1", bad.port, host="hostile.example",
                                                 helo="me.example", timeout=300,
                                                 connect_timeout=30)
        return time.monotonic() - t0, str(exc.value)
    took, why = asyncio.run(go())
    assert "hostile.example sent an overlong reply" in why
    assert took < 30
    assert bad.bytes_sent < 5_000_000


@pytest.mark.timeout(180)
def test_post_to_a_hostile_smarthost_is_deferred_with_the_reason(server, hostile):
    bad = hostile()
    srv = server(delivery__smarthost=f"127.0.0.1:{bad.port}", delivery__timeout="300s")
    make_list(srv.call)
    send(srv.smtp_port, MEMBERS[0], "demo@example.org", post_text())

    def deferred(s):
        return s.scalars(select(OutboundRecipient).where(
            OutboundRecipient.state == "queued", OutboundRecipient.attempts > 0)).all()
    rows = wait_until(lambda: srv.call(deferred), 60)
    assert all("overlong reply" in r.diagnostic for r in rows), [r.diagnostic for r in rows]
