"""The admin's queue tools: `queue list` (mailq style), `queue show` and `queue delete` for
inbound and shunted tasks, relay grants (none, revoke, a shortened window)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from listmgr.store import mailboxes
from listmgr.store.models import (InboundMessage, InboundTask, OutboundRecipient, RelayGrant,
                                  utcnow)
from listmgr.store.outbound import enqueue
from tests.support import run_cli, write_config

BODY = b"From: alice@example.org\r\nSubject: queued\r\n\r\nhello\r\n"


def _queue(app, mail_from, rcpts) -> str:
    with app.store.session() as s:
        return enqueue(s, app.spool, mail_from=mail_from, recipients=rcpts, data=BODY).queue_id


def _shunted(app, queue_id="0190INBOUNDQ1", error="KeyError: 'demo'") -> tuple[int, str]:
    path = app.spool.write("in", b"Subject: x\r\n\r\nbody\r\n", queue_id)
    with app.store.session() as s:
        m = InboundMessage(queue_id=queue_id, spool_path=path, mail_from="bob@remote.example",
                           size=24)
        s.add(m)
        s.flush()
        t = InboundTask(message_id=m.id, kind="post", target="demo", rcpt="demo@example.org",
                        state="shunted", error=error, attempts=1)
        s.add(t)
        s.flush()
        return t.id, path


def test_queue_list_shows_both_queues_mailq_style(app, tmp_path, db_url):
    cfg = write_config(tmp_path, db_url)
    assert run_cli(cfg, "queue", "list").out.strip() == "Mail queue is empty"
    qid = _queue(app, "alice@example.org", ["bob@remote.example", "carol@remote.example"])
    with app.store.session() as s:  # carol was tried once and deferred
        s.execute(update(OutboundRecipient).where(OutboundRecipient.rcpt ==
                                                  "carol@remote.example")
                  .values(attempts=1, next_attempt_at=utcnow() + dt.timedelta(hours=1),
                          diagnostic="451 4.2.0 greylisted, try later"))
    tid, _ = _shunted(app)
    r = run_cli(cfg, "queue", "list")
    assert r.status == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split()[:5] == ["QUEUE", "ID", "SIZE", "AGE", "SENDER"]
    head = next(ln for ln in lines if ln.startswith(qid))
    assert "<alice@example.org>" in head and f" {len(BODY)} " in head
    assert any("<bob@remote.example>  (queued)" in ln for ln in lines)
    carol = next(ln for ln in lines if "<carol@remote.example>" in ln)
    assert "(deferred: tries 1, next" in carol and "451 4.2.0 greylisted" in carol
    inbound = next(ln for ln in lines if ln.startswith("0190INBOUNDQ1 (inbound)"))
    assert "<bob@remote.example>" in inbound
    assert any(f"(shunted: task {tid}, post demo: KeyError: 'demo')" in ln for ln in lines)
    assert lines[-1] == ("-- 1 outbound message (2 recipients), 1 inbound message "
                         "(1 shunted task)")


def test_queue_show_inbound_and_task_with_error(app, tmp_path, db_url):
    cfg = write_config(tmp_path, db_url)
    tid, _ = _shunted(app, error="ValueError: bad header\nTraceback line")
    for ident in ("0190INBOUNDQ1", str(tid)):
        r = run_cli(cfg, "queue", "show", ident)
        assert r.status == 0, r.err
        assert "queue id: 0190INBOUNDQ1 (inbound" in r.out
        assert "sender: <bob@remote.example>" in r.out
        assert f"<demo@example.org> shunted task {tid}, post demo: ValueError: bad header" \
            in r.out
        assert "listmgr queue delete" in r.out
    r = run_cli(cfg, "queue", "show", "999999")
    assert r.status == 1 and "no message 999999" in r.err


def test_queue_delete_shunted_task_removes_message_and_spool(app, tmp_path, db_url):
    cfg = write_config(tmp_path, db_url)
    tid, path = _shunted(app)
    assert app.spool.path(path).exists()
    with app.store.session() as s:  # a task still waiting may not be deleted
        m = s.scalar(select(InboundMessage))
        s.add(InboundTask(message_id=m.id, kind="local", target="carol",
                          rcpt="carol@example.org", state="new"))
    with app.store.session() as s:
        new_id = s.scalar(select(InboundTask.id).where(InboundTask.state == "new"))
    r = run_cli(cfg, "queue", "delete", str(new_id))
    assert r.status == 1 and "is not shunted" in r.err
    r = run_cli(cfg, "queue", "delete", str(tid))
    assert r.status == 0, r.err
    assert "deleted 1 shunted task of 0190INBOUNDQ1" in r.out
    assert app.spool.path(path).exists()  # carol's task still needs the message
    with app.store.session() as s:
        s.execute(update(InboundTask).values(state="shunted", error="OSError: disk"))
    r = run_cli(cfg, "queue", "delete", "0190INBOUNDQ1")
    assert r.status == 0 and "(message removed)" in r.out, r.out
    assert not app.spool.path(path).exists()
    with app.store.session() as s:
        assert s.scalar(select(InboundMessage)) is None
    assert run_cli(cfg, "queue", "list").out.strip() == "Mail queue is empty"
    r = run_cli(cfg, "queue", "delete", "0190INBOUNDQ1")
    assert r.status == 1 and "no message" in r.err


def test_queue_show_has_no_stale_reason_beside_a_sent_recipient(app, tmp_path, db_url):
    cfg = write_config(tmp_path, db_url)
    qid = _queue(app, "alice@example.org", ["bob@remote.example"])
    with app.store.session() as s:  # deferred once, then sent
        s.execute(update(OutboundRecipient).values(
            state="sent", attempts=2, status="4.2.0", remote_mta="mx.remote.example",
            diagnostic="451 4.2.0 greylisted, try later"))
    out = run_cli(cfg, "queue", "show", qid).out
    line = next(ln for ln in out.splitlines() if "<bob@remote.example>" in ln)
    assert "sent tries=2" in line and "relay=mx.remote.example" in line
    assert "greylisted" not in line and "4.2.0" not in line


def test_relay_grants_none_revoke_and_shorter_window(app, tmp_path, db_url):
    cfg = write_config(tmp_path, db_url)
    r = run_cli(cfg, "relay-grants")
    assert r.status == 0 and r.out.strip() == "no live relay grants"
    now = utcnow()
    with app.store.session() as s:
        mailboxes.grant_relay(s, "192.0.2.7", "alice", 1800, now=now - dt.timedelta(minutes=20))
        mailboxes.grant_relay(s, "192.0.2.8", "bob", 1800, now=now - dt.timedelta(minutes=1))
        mailboxes.grant_relay(s, "192.0.2.9", "bob", 1800, now=now - dt.timedelta(minutes=1))
    out = run_cli(cfg, "relay-grants").out
    assert "192.0.2.7" in out and "192.0.2.8" in out and "192.0.2.9" in out
    # A 10-minute window: alice's 20-minute-old login no longer counts, at once.
    short = write_config(tmp_path, db_url, pop3__relay_window="10m")
    out = run_cli(short, "relay-grants").out
    assert "192.0.2.7" not in out and "192.0.2.8" in out
    line = next(ln for ln in out.splitlines() if "192.0.2.8" in ln)
    until = dt.datetime.strptime(line.split("until ")[1], "%Y-%m-%d %H:%M:%S UTC")
    assert until <= (now + dt.timedelta(minutes=9, seconds=1)).replace(microsecond=0)
    from listmgr.smtp.gate import RelayGate
    with app.store.session() as s:
        assert RelayGate([], 1800).allowed(s, "192.0.2.7")
        assert not RelayGate([], 600).allowed(s, "192.0.2.7")
        assert RelayGate([], 600).allowed(s, "192.0.2.8")
    cfg = write_config(tmp_path, db_url)  # back to the 30-minute default
    # Revoke by IP, then by user.
    r = run_cli(cfg, "relay-grants", "--revoke", "192.0.2.8")
    assert r.status == 0 and "revoked 1 relay grant of 192.0.2.8" in r.out
    r = run_cli(cfg, "relay-grants", "--revoke", "BOB")
    assert r.status == 0 and "revoked 1 relay grant of BOB" in r.out
    out = run_cli(cfg, "relay-grants").out
    assert "192.0.2.7" in out and "bob" not in out
    r = run_cli(cfg, "relay-grants", "--revoke", "nobody")
    assert r.status == 1 and "no relay grant for 'nobody'" in r.err
    with app.store.session() as s:
        assert s.scalar(select(RelayGrant.user)) == "alice"
