"""Helpers for the adversarial tests: lists, posts and SMTP sessions against a real server."""

from __future__ import annotations

import smtplib
import time

from sqlalchemy import select

from listmgr.pipeline import InboundWorker
from listmgr.service import INBOUND_HANDLERS
from listmgr.posting import moderation
from listmgr.spool import new_queue_id
from listmgr.store import lists as repo
from listmgr.store.models import InboundMessage, InboundTask

OWNER = "owner@owners.example"
MEMBERS = ["alice@example.com", "bob@example.net"]


def make_list(call, name="demo", members=MEMBERS, **settings):
    """Create a list through `call(fn)` (ServerThread.call or an app-session runner)."""
    def make(s):
        ml = repo.create_list(s, name, [OWNER], password="s3cret")
        for k, v in settings.items():
            repo.set_setting(s, ml, k, v)
        repo.add_members(s, ml, list(members))
    call(make)


def app_call(app):
    def call(fn, *args):
        with app.store.session() as s:
            return fn(s, *args)
    return call


def crlf(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def post_text(frm=MEMBERS[0], subject="hello", body="Hi all.\n", extra="", to="demo"):
    return (f"From: {frm}\nTo: {to}@example.org\nSubject: {subject}\n"
            f"Message-ID: <{time.time_ns()}@example.com>\n{extra}\n{body}")


def send(port: int, mail_from: str, rcpt: str, data: str | bytes, timeout=60) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=timeout) as c:
        refused = c.sendmail(mail_from, [rcpt], crlf(data))
        assert not refused


def store_inbound(app, data: bytes, *, kind="post", target="demo",
                  mail_from=MEMBERS[0]) -> None:
    """Store a message as SMTP ingress does, then run the pipeline until it is idle."""
    qid = new_queue_id()
    path = app.spool.write("in", crlf(data), qid)
    with app.store.session() as s:
        m = InboundMessage(queue_id=qid, spool_path=path, mail_from=mail_from,
                           size=len(data))
        s.add(m)
        s.flush()
        rcpt = f"{target}@example.org" if kind == "post" else "majordomo@example.org"
        s.add(InboundTask(message_id=m.id, kind=kind, target=target, rcpt=rcpt))
    p = InboundWorker(app, "all", INBOUND_HANDLERS)
    while p.run_once():
        pass


def task_states(app) -> list[str]:
    with app.store.session() as s:
        return list(s.scalars(select(InboundTask.state)))


def held(app):
    with app.store.session() as s:
        return moderation.pending(s)


def wait_until(predicate, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
