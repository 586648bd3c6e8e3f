"""The pipeline's "local" handler: a stored inbound task ends up in the user's Maildir."""

from __future__ import annotations

from listmgr.pipeline import InboundWorker
from listmgr.service import INBOUND_HANDLERS
from listmgr.mailbox.maildir import Maildir
from listmgr.spool import new_queue_id
from listmgr.store import mailboxes
from listmgr.store.models import InboundMessage, InboundTask

MSG = b"From: bob@example.net\nTo: alice@example.org\nSubject: hello\n\nhi there\n"


def queue_local(app, target: str, data: bytes = MSG, mail_from: str = "bob@example.net") -> int:
    qid = new_queue_id()
    path = app.spool.write("in", data, qid)
    with app.store.session() as s:
        m = InboundMessage(queue_id=qid, spool_path=path, mail_from=mail_from, size=len(data))
        s.add(m)
        s.flush()
        t = InboundTask(message_id=m.id, kind="local", target=target,
                        rcpt=f"{target}@example.org")
        s.add(t)
        s.flush()
        return t.id


def task_state(app, task_id):
    with app.store.session() as s:
        t = s.get(InboundTask, task_id)
        return (t.state, t.error) if t else ("gone", "")


def test_local_delivery_adds_trace_headers_and_crlf(app):
    with app.store.session() as s:
        mailboxes.add_user(s, "alice", "pw")
    tid = queue_local(app, "alice")
    assert InboundWorker(app, "all", INBOUND_HANDLERS).run_once() == 1
    [e] = Maildir.for_user(app.config.data_dir, "alice").entries()
    data = e.path.read_bytes()
    assert data.startswith(b"Return-Path: <bob@example.net>\r\n"
                           b"Delivered-To: alice@example.org\r\nReceived: from ")
    head, _, _ = data.partition(b"\r\n\r\n")
    received = head.split(b"\r\nFrom: bob@example.net")[0].split(
        b"Delivered-To: alice@example.org\r\n")[1]
    assert b"by example.org (listmgr) with ESMTP id " in received
    assert b"for <alice@example.org>;" in received
    assert b"\r\n\r\nhi there\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    assert e.size == len(data)
    assert task_state(app, tid)[0] in ("done", "gone")


def test_null_sender_and_replayed_task_leave_one_copy(app):
    with app.store.session() as s:
        mailboxes.add_user(s, "alice", "pw")
    tid = queue_local(app, "alice", mail_from="")
    pipe = InboundWorker(app, "all", INBOUND_HANDLERS)
    with app.store.session() as s:  # run the handler twice, as after a crash before commit
        t = s.get(InboundTask, tid)
        m = s.get(InboundMessage, t.message_id)
        from listmgr.mailbox.delivery import deliver_local
        deliver_local(app, s, t, m, app.spool.read(m.spool_path))
    pipe.run_once()
    entries = Maildir.for_user(app.config.data_dir, "alice").entries()
    assert len(entries) == 1
    assert entries[0].path.read_bytes().startswith(b"Return-Path: <>\r\n")


def test_unknown_user_is_shunted_not_lost(app):
    tid = queue_local(app, "ghost")
    InboundWorker(app, "all", INBOUND_HANDLERS).run_once()
    state, error = task_state(app, tid)
    assert state == "shunted" and "no mailbox user 'ghost'" in error


def test_over_the_size_limit_is_shunted(app):
    with app.store.session() as s:
        mailboxes.add_user(s, "alice", "pw")
    big = b"Subject: big\r\n\r\n" + b"x" * 998 + b"\r\n"
    big = big * (app.config.smtp.max_message_size // len(big) + 1)
    tid = queue_local(app, "alice", data=big)
    InboundWorker(app, "all", INBOUND_HANDLERS).run_once()
    state, error = task_state(app, tid)
    assert state == "shunted" and "limit" in error
    assert Maildir.for_user(app.config.data_dir, "alice").entries() == []
