"""Item 11: a second STARTTLS inside TLS is refused (RFC 3207 4.2); inbound tasks of a dead
process are taken back at start; a slow pattern does not stall intake (the last one is
test_01_regex_budget.py::test_runaway_match_is_held_and_does_not_stall_smtp)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from listmgr.store.models import InboundTask, utcnow
from tests.adversarial.support import make_list, wait_until
from tests.smtp_support import connect
from tests.test_smtp_protocol import _client_tls, cert, ingress  # noqa: F401  (fixtures)


def test_second_starttls_gets_503(ingress, cert):
    srv = ingress(smtp__tls_cert=cert[0], smtp__tls_key=cert[1])
    with connect(srv.smtp_port) as c:
        assert c.starttls(context=_client_tls())[0] == 220
        c.ehlo("client.example")
        code, text = c.docmd("STARTTLS")
        assert (code, text) == (503, b"5.5.1 TLS already active")
        # The session still works.
        assert c.sendmail("a@outside.example", ["postmaster@example.org"],
                          b"Subject: tls\r\n\r\nx\r\n") == {}


def test_tasks_of_a_dead_process_are_taken_back_at_start(server, app, tmp_path):
    """A task leased by a process of this host that no longer runs is worked at once by the
    next start, not after its 5-minute lease."""
    from listmgr.spool import new_queue_id
    from listmgr.store import claims
    from listmgr.store.models import InboundMessage
    make_list(lambda fn: fn_in(app, fn), post_policy="open")
    qid = new_queue_id()
    data = b"From: a@example.net\r\nSubject: x\r\n\r\nhi\r\n"
    path = app.spool.write("in", data, qid)
    dead_owner = claims.local_prefix() + "999999999:inbound-posts"
    with app.store.session() as s:
        m = InboundMessage(queue_id=qid, spool_path=path, mail_from="a@example.net",
                           size=len(data))
        s.add(m)
        s.flush()
        s.add(InboundTask(message_id=m.id, kind="post", target="demo",
                          rcpt="demo@example.org", lease_owner=dead_owner,
                          lease_until=utcnow() + dt.timedelta(minutes=5)))
    srv = server()

    def done(s):
        return s.scalars(select(InboundTask.id).where(InboundTask.state == "new")).all() == []
    assert wait_until(lambda: srv.call(done), 30)


def fn_in(app, fn):
    with app.store.session() as s:
        return fn(s)
