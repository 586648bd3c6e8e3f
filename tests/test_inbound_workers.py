"""The inbound queue (store/inbound.py) and its workers, one per kind of work.

A command mail is answered while a post is stuck in its worker; one relay task per message;
claims of a dead process are taken back at start; a task finished elsewhere is not done
twice.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import subprocess
import sys
import threading

from sqlalchemy import func, select

from listmgr import service
from listmgr.pipeline import InboundWorker
from listmgr.spool import new_queue_id
from listmgr.store import claims, inbound
from listmgr.store import lists as repo
from listmgr.store.models import InboundMessage, InboundTask, OutboundRecipient, utcnow

COMMAND = (b"From: joe@example.net\r\nTo: majordomo@example.org\r\nSubject: q\r\n\r\n"
           b"lists\r\n")
POST = (b"From: member@example.net\r\nTo: demo@example.org\r\nSubject: news\r\n\r\n"
        b"hello list\r\n")


def store_message(app, destinations: list[inbound.Destination], data: bytes = COMMAND,
                  mail_from: str = "joe@example.net") -> int:
    qid = new_queue_id()
    path = app.spool.write("in", data, qid)
    with app.store.session() as s:
        mid, _ = inbound.create(s, queue_id=qid, spool_path=path, mail_from=mail_from,
                                size=len(data), destinations=destinations)
    return mid


def test_a_command_is_answered_while_a_post_is_stuck(server, sink, monkeypatch):
    """The posts worker is blocked inside its handler; the commands worker answers anyway."""
    entered, release = threading.Event(), threading.Event()
    real = service.INBOUND_WORKERS["posts"]["post"]

    def stuck_post(app, s, task, message, data):
        entered.set()
        release.wait(60)
        real(app, s, task, message, data)

    monkeypatch.setitem(service.INBOUND_WORKERS, "posts", {"post": stuck_post})
    srv = server()
    srv.call(lambda s: repo.add_members(
        s, repo.create_list(s, "demo", ["owner@example.com"], password="pw",
                            description="Demo"), ["member@example.net", "m2@example.net"]))
    try:
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
            c.sendmail("member@example.net", ["demo@example.org"], POST)
        assert entered.wait(30), "the post never reached its handler"
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
            c.sendmail("joe@example.net", ["majordomo@example.org"], COMMAND)
        [reply] = sink.wait_for(lambda rs: any("joe@example.net" in r.rcpt_tos for r in rs),
                                timeout=60)
        assert "demo" in reply.message.get_payload(decode=True).decode()
        assert not sink.to("m2@example.net")  # the post is still held up
    finally:
        release.set()
    sink.wait_for(lambda rs: any("m2@example.net" in r.rcpt_tos for r in rs), timeout=60)


def test_one_relay_task_per_message(app):
    mid = store_message(app, [
        inbound.Destination("relay", "a@remote.example", "<a@remote.example>"),
        inbound.Destination("command", "", "majordomo@example.org"),
        inbound.Destination("relay", "b@remote.example", "<b@remote.example>"),
        inbound.Destination("relay", "a@remote.example", "<A@remote.example>"),
    ])
    with app.store.session() as s:
        tasks = list(s.scalars(select(InboundTask).where(InboundTask.message_id == mid)
                               .order_by(InboundTask.kind)))
        assert [t.kind for t in tasks] == ["command", "relay"]
        assert inbound.recipients(tasks[1]) == ["a@remote.example", "b@remote.example"]
    worker = InboundWorker(app, "forward", service.INBOUND_WORKERS["forward"])
    assert worker.run_once() == 1
    with app.store.session() as s:  # both recipients leave as one queued copy
        rows = list(s.execute(select(OutboundRecipient.message_id, OutboundRecipient.rcpt)))
    assert sorted(r[1] for r in rows) == ["a@remote.example", "b@remote.example"]
    assert len({r[0] for r in rows}) == 1


def test_each_worker_claims_only_its_kinds(app):
    store_message(app, [inbound.Destination("command", "", "majordomo@example.org"),
                        inbound.Destination("relay", "a@remote.example", "a@remote.example")])
    mailbox = InboundWorker(app, "mailbox", service.INBOUND_WORKERS["mailbox"])
    assert mailbox.run_once() == 0
    commands = InboundWorker(app, "commands", service.INBOUND_WORKERS["commands"])
    assert commands.run_once() == 1
    with app.store.session() as s:
        states = {k: st for k, st in s.execute(select(InboundTask.kind, InboundTask.state))}
    assert states == {"command": "done", "relay": "new"}


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_claims_of_a_dead_process_are_taken_back_at_start(server, sink, db_url, tmp_path):
    """A process of this host died holding a command task: the next start answers it."""
    from listmgr import config as config_mod
    from listmgr.app import App
    from tests.support import migrated, write_config
    migrated(db_url)
    app = App.from_config(config_mod.load(write_config(tmp_path, db_url)))
    store_message(app, [inbound.Destination("command", "", "majordomo@example.org")])
    dead = f"{claims.local_prefix()}{dead_pid()}:inbound-commands"
    with app.store.session() as s:  # leased for another hour, as a live claim would be
        s.execute(InboundTask.__table__.update().values(
            lease_owner=dead, lease_until=utcnow() + dt.timedelta(hours=1)))
    app.store.dispose()
    server()
    sink.wait_for(lambda rs: any("joe@example.net" in r.rcpt_tos for r in rs), timeout=60)


def test_a_live_claim_of_another_process_is_left_alone(app):
    store_message(app, [inbound.Destination("command", "", "majordomo@example.org")])
    with app.store.session() as s:  # this very process (alive) under another role
        s.execute(InboundTask.__table__.update().values(
            lease_owner=claims.lease_owner("elsewhere"),
            lease_until=utcnow() + dt.timedelta(hours=1)))
        assert inbound.release_dead(s) == 0
    assert InboundWorker(app, "commands", service.INBOUND_WORKERS["commands"]).run_once() == 0


def test_a_task_finished_elsewhere_rolls_back_here(app):
    """Worker A's lease ran out and B took the task: A's effects are rolled back."""
    store_message(app, [inbound.Destination("relay", "a@remote.example", "a@remote.example")])
    a = InboundWorker(app, "forward", service.INBOUND_WORKERS["forward"])
    with app.store.session() as s:
        [task] = inbound.claim_snapshots(s, ["relay"], owner=a.owner, lease=300, limit=5)
    with app.store.session() as s:  # B takes it over (as after A's lease ran out)
        s.execute(InboundTask.__table__.update().values(lease_owner="other:1:inbound-forward"))
    a.process(task)
    with app.store.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboundRecipient)) == 0
        assert s.scalar(select(InboundTask.state)) == "new"


def test_a_failing_handler_shunts_and_retry_replays(app):
    def broken(app_, s, task, message, data):
        raise RuntimeError("disk on fire")
    mid = store_message(app, [inbound.Destination("command", "", "majordomo@example.org")])
    assert InboundWorker(app, "commands", {"command": broken}).run_once() == 1
    with app.store.session() as s:
        task = s.scalar(select(InboundTask))
        assert (task.state, task.error, task.attempts) == (
            "shunted", "RuntimeError: disk on fire", 1)
        assert inbound.shunted_count(s) == 1
        assert inbound.retry_shunted(s) == 1
    assert InboundWorker(app, "commands", service.INBOUND_WORKERS["commands"]).run_once() == 1
    with app.store.session() as s:  # done: the message and its spool file are gone
        assert s.get(InboundMessage, mid) is None


def test_a_stopping_worker_gives_back_what_it_did_not_start(app):
    for _ in range(3):
        store_message(app, [inbound.Destination("command", "", "majordomo@example.org")])
    w = InboundWorker(app, "commands", service.INBOUND_WORKERS["commands"])
    w._stopping = True
    assert w.run_once() == 3
    with app.store.session() as s:
        rows = list(s.execute(select(InboundTask.state, InboundTask.lease_owner)))
    assert rows == [("new", "")] * 3


def test_create_many_stores_the_same_rows_as_create(app):
    dests = [inbound.Destination("relay", "a@remote.example", "<a@remote.example>"),
             inbound.Destination("command", "", "majordomo@example.org"),
             inbound.Destination("relay", "b@remote.example", "<b@remote.example>"),
             inbound.Destination("command", "", "Majordomo@example.org"),
             inbound.Destination("bounce", "demo", "owner-demo+a=x.example@example.org"),
             inbound.Destination("bounce", "demo", "owner-demo+b=x.example@example.org")]
    one = store_message(app, dests)
    with app.store.session() as s:
        inbound.create_many(s, [inbound.NewMessage(
            queue_id=new_queue_id(), spool_path="spool/in/x", mail_from="joe@example.net",
            size=10, destinations=tuple(dests))])
    with app.store.session() as s:
        def rows(mid):
            return sorted(s.execute(select(InboundTask.kind, InboundTask.target,
                                           InboundTask.rcpt, InboundTask.recipients,
                                           InboundTask.state, InboundTask.lease_owner)
                                    .where(InboundTask.message_id == mid)))
        other = s.scalar(select(InboundMessage.id).where(InboundMessage.id != one))
        assert rows(one) == rows(other) and len(rows(one)) == 4


def test_finish_many_refuses_a_task_not_ours(app):
    for _ in range(2):
        store_message(app, [inbound.Destination("command", "", "majordomo@example.org")])
    with app.store.session() as s:
        tasks = inbound.claim_snapshots(s, ["command"], owner="me", lease=300, limit=5)
        s.execute(InboundTask.__table__.update().where(InboundTask.id == tasks[0].id)
                  .values(lease_owner="other"))
    import pytest
    with pytest.raises(inbound.NotOurs), app.store.session() as s:
        inbound.finish_many(s, tasks, "me")
    with app.store.session() as s:
        assert inbound.finish_many(s, tasks[1:], "me") == [tasks[1].message.spool_path]
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 1
