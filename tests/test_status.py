"""`listmgr status` and `listmgr status --json` against a running server."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import update

from listmgr.store.models import InboundMessage, InboundTask, OutboundRecipient, utcnow
from listmgr.store.outbound import enqueue
from tests.support import free_port, run_cli

BODY = b"From: alice@example.org\r\nSubject: queued\r\n\r\nhello\r\n"


def test_status_screen_and_json(server, tmp_path):
    smtp_port, pop3_port, web_port = free_port(), free_port(), free_port()
    srv = server(smtp__listen=f"127.0.0.1:{smtp_port}", pop3__listen=f"127.0.0.1:{pop3_port}",
                 web__listen=f"127.0.0.1:{web_port}")
    cfg = srv.config_path
    app = srv.app
    with app.store.session() as s:
        qid = enqueue(s, app.spool, mail_from="alice@example.org",
                      recipients=["bob@remote.example"], data=BODY).queue_id
        s.flush()
        s.execute(update(OutboundRecipient).values(
            attempts=2, next_attempt_at=utcnow() + dt.timedelta(hours=1),
            last_attempt_at=utcnow(), diagnostic="451 4.2.0 greylisted"))
        m = InboundMessage(queue_id="0190SHUNTED", spool_path="spool/in/x", mail_from="c@d.e")
        s.add(m)
        s.flush()
        s.add(InboundTask(message_id=m.id, kind="post", target="demo", rcpt="demo@example.org",
                          state="shunted", error="KeyError: 'demo'"))
    r = run_cli(cfg, "status")
    assert r.status == 0, r.err
    out = r.out
    assert "listmgr example.org" in out
    assert f"smtp         127.0.0.1:{smtp_port}" in out
    lines = out.splitlines()
    assert "answering" in next(ln for ln in lines if ln.strip().startswith("smtp "))
    assert "NOT answering" not in next(ln for ln in lines if ln.strip().startswith("pop3 "))
    assert "outbound queue: 1 recipients queued (1 deferred)" in out
    assert f"oldest deferred: {qid}" in out
    assert "inbound queue: 0 tasks waiting, 1 shunted" in out
    assert "held posts: 0" in out
    assert f"{qid} to <bob@remote.example> deferred: 451 4.2.0 greylisted" in out
    assert "0190SHUNTED task" in out and "shunted: KeyError: 'demo'" in out
    assert len(lines) <= 25  # one screen

    r = run_cli(cfg, "status", "--json")
    st = json.loads(r.out)
    assert st["domain"] == "example.org"
    assert {ln["name"]: ln["answering"] for ln in st["listeners"]} == {
        "smtp": True, "pop3": True, "web": True}
    assert st["queue"]["outbound_deferred"] == 1
    assert st["queue"]["inbound_shunted"] == 1
    assert st["queue"]["oldest_deferred"]["queue_id"] == qid
    assert sorted(e["state"] for e in st["last_errors"]) == ["deferred", "shunted"]

    srv.stop()  # the server is down: its listeners no longer answer
    st = json.loads(run_cli(cfg, "status", "--json").out)
    assert {ln["name"]: ln["answering"] for ln in st["listeners"]} == {
        "smtp": False, "pop3": False, "web": False}
    line = next(ln for ln in run_cli(cfg, "status").out.splitlines()
                if ln.strip().startswith("smtp "))
    assert f"127.0.0.1:{smtp_port}" in line and line.endswith("NOT answering")
