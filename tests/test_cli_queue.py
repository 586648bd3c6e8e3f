"""`listmgr queue ...` and `listmgr deliver`, run as the real command line."""

from __future__ import annotations

import email

import pytest
from flufl.bounce import scan_message
from sqlalchemy import select

from listmgr.store.models import InboundMessage, InboundTask, OutboundRecipient
from listmgr.store.outbound import enqueue
from tests.support import run_cli, write_config

BODY = b"From: alice@example.org\r\nSubject: queued\r\n\r\nhello\r\n"


def _queue(app, mail_from, rcpts) -> str:
    with app.store.session() as s:
        return enqueue(s, app.spool, mail_from=mail_from, recipients=rcpts, data=BODY).queue_id


def test_queue_summary_show_and_silent_delete(app, tmp_path, db_url):
    cfg = write_config(tmp_path, db_url)
    qid = _queue(app, "alice@example.org", ["bob@remote.example", "carol@remote.example"])
    r = run_cli(cfg, "queue")
    assert r.status == 0, r.err
    assert "messages in queue: 1" in r.out
    assert "queued 2 (due now 2, deferred 0)" in r.out
    assert f"oldest message: {qid}" in r.out
    r = run_cli(cfg, "queue", "show", qid)
    assert r.status == 0, r.err
    assert "sender: <alice@example.org>" in r.out
    assert "<bob@remote.example> queued tries=0" in r.out
    r = run_cli(cfg, "queue", "show", "NOSUCHID")
    assert r.status == 1 and "no message NOSUCHID in the queue" in r.err
    r = run_cli(cfg, "queue", "delete", qid, "--silent")
    assert r.status == 0, r.err
    assert "2 recipients removed (silently)" in r.out
    with app.store.session() as s:
        assert set(s.scalars(select(OutboundRecipient.state))) == {"deleted"}
    assert not any((app.spool.root / "spool" / "out").iterdir())


@pytest.mark.slow
def test_delete_returns_mail_and_deliver_once_sends_it(app, tmp_path, db_url, sink):
    cfg = write_config(tmp_path, db_url, delivery__smarthost=f"127.0.0.1:{sink.port}")
    qid = _queue(app, "alice@example.org", ["bob@remote.example"])
    r = run_cli(cfg, "queue", "delete", qid)
    assert r.status == 0, r.err
    assert "returned mail to <alice@example.org> follows" in r.out
    r = run_cli(cfg, "deliver", "--once", "--timeout", "30")
    assert r.status == 0, r.err
    got = sink.wait_count(1)
    assert got[0].rcpt_tos == ["alice@example.org"]
    msg = got[0].message
    assert msg["Subject"] == "Returned mail: see transcript for details"
    assert scan_message(email.message_from_bytes(got[0].data)) == {b"bob@remote.example"}


@pytest.mark.slow
def test_retry_makes_deferred_due_and_deliver_once_delivers(app, tmp_path, db_url, sink):
    cfg = write_config(tmp_path, db_url, delivery__smarthost=f"127.0.0.1:{sink.port}",
                       delivery__min_backoff="1h", delivery__max_backoff="2h")
    sink.default_rule = "451 4.3.0 try again later"
    qid = _queue(app, "alice@example.org", ["bob@remote.example"])
    assert run_cli(cfg, "deliver", "--once", "--timeout", "30").status == 0
    r = run_cli(cfg, "queue")
    assert "queued 1 (due now 0, deferred 1)" in r.out, r.out
    assert "451 4.3.0 try again later" in run_cli(cfg, "queue", "show", qid).out
    sink.default_rule = None
    r = run_cli(cfg, "queue", "retry", qid)
    assert r.status == 0 and "1 recipient due now" in r.out, (r.out, r.err)
    assert run_cli(cfg, "deliver", "--once", "--timeout", "30").status == 0
    assert sink.recipients() == ["bob@remote.example"]
    assert "<bob@remote.example> sent tries=2" in run_cli(cfg, "queue", "show", qid).out


def test_retry_shunted_replays_inbound_tasks(app, tmp_path, db_url):
    cfg = write_config(tmp_path, db_url)
    with app.store.session() as s:
        m = InboundMessage(queue_id="Q1", spool_path="spool/in/Q1", mail_from="a@example.org")
        s.add(m)
        s.flush()
        s.add(InboundTask(message_id=m.id, kind="command", target="", rcpt="majordomo@x",
                          state="shunted", error="ValueError: boom"))
    assert "shunted inbound tasks: 1" in run_cli(cfg, "queue").out
    r = run_cli(cfg, "queue", "retry", "--shunted")
    assert r.status == 0 and "1 shunted task queued again" in r.out, (r.out, r.err)
    with app.store.session() as s:
        assert s.scalar(select(InboundTask.state)) == "new"
