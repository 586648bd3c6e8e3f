"""The pipeline's "local" handler: a stored inbound task ends up in the user's Maildir."""

from __future__ import annotations

from listmgr.mailbox.delivery import LocalBatch
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


def _mailbox_worker(app):
    from listmgr import service
    return InboundWorker(app, "mailbox", service.INBOUND_WORKERS["mailbox"])


def test_the_mailbox_worker_delivers_a_batch_in_one_transaction(app):
    """Several tasks at once: each delivered once, the bad one shunted on its own, every
    finished message and its spool file gone."""
    from sqlalchemy import func, select
    with app.store.session() as s:
        mailboxes.add_user(s, "alice", "pw")
        mailboxes.add_user(s, "bob", "pw")
    ids = [queue_local(app, "alice", data=MSG + b"%d\n" % i) for i in range(5)]
    ids += [queue_local(app, "ghost"), queue_local(app, "bob")]
    assert _mailbox_worker(app).run_once() == 7
    alice = Maildir.for_user(app.config.data_dir, "alice").entries()
    assert sorted(e.path.read_bytes()[-3:] for e in alice) == [b"%d\r\n" % i for i in range(5)]
    assert len(Maildir.for_user(app.config.data_dir, "bob").entries()) == 1
    states = [task_state(app, t)[0] for t in ids]
    assert states == ["gone"] * 5 + ["shunted", "gone"]
    with app.store.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 1  # ghost's
    assert len(list((app.spool.root / "spool" / "in").iterdir())) == 1


def test_a_batch_staged_but_not_committed_is_delivered_once_on_replay(app):
    """A crash after the Maildir files were written, before the batch's commit: the tasks
    are worked again and each message is still in the mailbox once."""
    from listmgr.store import inbound
    with app.store.session() as s:
        mailboxes.add_user(s, "alice", "pw")
    for i in range(3):
        queue_local(app, "alice", data=MSG + b"%d\n" % i)
    with app.store.session() as s:
        tasks = inbound.claim_snapshots(s, ["local"], owner="dead", lease=0, limit=10)
    batch = LocalBatch(app)
    for t in tasks:
        batch.stage(t, t.message, app.spool.read(t.message.spool_path))
    batch.sync()  # ... and the process dies here; its lease runs out
    assert _mailbox_worker(app).run_once() == 3
    assert len(Maildir.for_user(app.config.data_dir, "alice").entries()) == 3


def test_a_batch_with_a_task_taken_over_falls_back_to_one_by_one(app):
    """One task of the batch was taken over by another worker (its lease ran out): the
    batch's transaction rolls back, the others are done one by one, that one is left to
    its new owner."""
    from listmgr.store import inbound
    with app.store.session() as s:
        mailboxes.add_user(s, "alice", "pw")
    ids = [queue_local(app, "alice", data=MSG + b"%d\n" % i) for i in range(3)]
    w = _mailbox_worker(app)
    with app.store.session() as s:
        tasks = inbound.claim_snapshots(s, ["local"], owner=w.owner, lease=300, limit=10)
        s.execute(InboundTask.__table__.update().where(InboundTask.id == ids[1]).values(
            lease_owner="other:1:inbound-mailbox"))
    assert w.process_batch(LocalBatch(app), tasks) == tasks
    assert [task_state(app, t)[0] for t in ids] == ["new"] * 3  # nothing marked done
    for t in tasks:
        w.process(t)
    assert [task_state(app, t)[0] for t in ids] == ["gone", "new", "gone"]
    assert len(Maildir.for_user(app.config.data_dir, "alice").entries()) == 3
