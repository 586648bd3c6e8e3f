"""Mail for local mailboxes only is in the Maildirs when the client reads 250 (no spool file,
no queue rows); anything else (an auto-reply to send, a list among the recipients,
`mailbox_at_ingress = false`) takes the spool and the mailbox worker; a copy that cannot be
written takes every copy back and the client is told to try again. RCPT's lookup on the
event loop (SQLite) answers as the thread pool's does and falls back to it."""

from __future__ import annotations

import smtplib
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from listmgr.mailbox.maildir import Maildir
from listmgr.smtp.routing import Destination, questions, route
from listmgr.store import directory, lists, mailboxes
from listmgr.store.models import InboundMessage

BODY = b"From: a@remote.example\r\nSubject: hello\r\n\r\nline one\r\nline two\r\n"


def _users(srv, *names: str) -> None:
    def add(s):
        for name in names:
            mailboxes.add_user(s, name, "pw")
    srv.call(add)


def _box(srv, user: str) -> list[bytes]:
    return [e.path.read_bytes() for e in Maildir.for_user(srv.config.data_dir, user).entries()]


def _send(srv, rcpts: list[str], data: bytes = BODY, lmtp: bool = False):
    cls, port = (smtplib.LMTP, srv.ports["lmtp"]) if lmtp else (smtplib.SMTP, srv.smtp_port)
    with cls("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.example") if not lmtp else c.ehlo_or_helo_if_needed()
        c.mail("a@remote.example")
        for r in rcpts:
            assert c.rcpt(r)[0] == 250
        c.putcmd("data")
        assert c.getreply()[0] == 354
        c.send(data + b".\r\n")
        return [c.getreply() for _ in (rcpts if lmtp else [0])]


def _until(done, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.1)


def _inbound_messages(srv) -> int:
    return srv.call(lambda s: s.scalar(select(func.count()).select_from(InboundMessage)))


def test_mail_for_two_mailboxes_is_in_both_when_250_is_read(server):
    srv = server()
    _users(srv, "alice", "bob")
    [(code, text)] = _send(srv, ["alice@example.org", "Bob@example.org"])
    assert code == 250 and b"delivered as" in text
    # no waiting: both copies are there now, whole, with the trace a worker would add
    for user, rcpt in (("alice", "alice@example.org"), ("bob", "Bob@example.org")):
        [copy] = _box(srv, user)
        head = copy.split(b"\r\n\r\n", 1)[0].decode()
        assert head.startswith(f"Return-Path: <a@remote.example>\r\nDelivered-To: {user}"
                               f"@example.org\r\nReceived: from client.example ")
        assert f"with ESMTP id {text.decode().split()[-1]}" in head
        assert f"for <{rcpt}>" in head
        assert copy.endswith(BODY)
    assert _inbound_messages(srv) == 0
    spool = Path(srv.config.data_dir) / "spool" / "in"
    assert not list(spool.iterdir())


def test_lmtp_answers_each_recipient_and_traces_the_receipt_once(server):
    srv = server(lmtp__listen="127.0.0.1:0")
    _users(srv, "alice", "bob")
    replies = _send(srv, ["alice@example.org", "bob@example.org"], lmtp=True)
    assert [code for code, _ in replies] == [250, 250]
    for user in ("alice", "bob"):
        [copy] = _box(srv, user)
        head = copy.split(b"\r\n\r\n", 1)[0].decode()
        assert head.count("(listmgr) with LMTP id") == 1 and "\tfor <" not in head


def test_an_auto_reply_a_list_or_the_setting_off_take_the_queue(server, sink):
    srv = server()
    _users(srv, "alice", "carol", "dave")
    srv.call(lambda s: mailboxes.set_autoreply(s, "carol", enabled=True, subject="Away", body="I am away."))
    srv.call(lambda s: lists.create_list(s, "demo", ["owner@example.net"]))
    to_carol = b"To: carol@example.org\r\n" + BODY  # auto-replies answer mail addressed to one
    [(code, text)] = _send(srv, ["carol@example.org"], to_carol)
    assert code == 250 and b"queued as" in text  # the worker sends the auto-reply
    [(code, text)] = _send(srv, ["alice@example.org", "demo@example.org"])
    assert code == 250 and b"queued as" in text
    _until(lambda: len(_box(srv, "carol")) == 1 and len(_box(srv, "alice")) == 1,
           "both copies delivered by the mailbox worker")
    deadline = time.monotonic() + 30
    while not any("a@remote.example" in m.rcpt_tos for m in sink.received):
        assert time.monotonic() < deadline, "no auto-reply sent"
        time.sleep(0.1)

    off = server(smtp__mailbox_at_ingress=False)
    [(code, text)] = _send(off, ["dave@example.org"])
    assert code == 250 and b"queued as" in text
    _until(lambda: len(_box(off, "dave")) == 1, "dave's copy delivered by the mailbox worker")


def test_many_large_copies_take_the_queue(server, monkeypatch):
    """Above AT_INGRESS_MAX_OCTETS in all copies the client is not kept waiting for the
    writes: the message is queued and the mailbox worker delivers it."""
    from listmgr.smtp import handler
    monkeypatch.setattr(handler, "AT_INGRESS_MAX_OCTETS", 3 * len(BODY))
    srv = server()
    _users(srv, "alice", "bob", "carol")
    [(code, text)] = _send(srv, ["alice@example.org", "bob@example.org"])
    assert code == 250 and b"delivered as" in text  # 2 copies: under the limit
    [(code, text)] = _send(srv, ["alice@example.org", "bob@example.org", "carol@example.org",
                                 "alice@example.org"])
    assert code == 250 and b"queued as" in text  # 4 copies: over it
    _until(lambda: sum(len(_box(srv, u)) for u in ("alice", "bob", "carol")) >= 5,
           "the queued copies delivered")
    # one copy per mailbox and message on either path, however many addresses name it
    assert [len(_box(srv, u)) for u in ("alice", "bob", "carol")] == [2, 2, 1]
    [(code, text)] = _send(srv, ["carol@example.org", "Carol@example.org"])
    assert code == 250 and b"delivered as" in text
    copies = _box(srv, "carol")
    assert len(copies) == 2 and b"for <carol@example.org>" in copies[-1]


def test_a_copy_that_cannot_be_written_takes_every_copy_back(server):
    srv = server()
    _users(srv, "alice", "bob")
    bob = Path(srv.config.data_dir) / "mailboxes" / "bob"
    bob.mkdir(parents=True)
    (bob / "tmp").write_text("not a directory")  # bob's copy cannot be written
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail("a@remote.example", ["alice@example.org", "bob@example.org"], BODY)
        assert err.value.smtp_code == 451
        assert _box(srv, "alice") == []  # alice's copy was taken back
        alice = Path(srv.config.data_dir) / "mailboxes" / "alice"
        assert not list((alice / "tmp").iterdir())
        # the session goes on; mail for alice alone is delivered
        assert c.sendmail("a@remote.example", ["alice@example.org"], BODY) == {}
    assert len(_box(srv, "alice")) == 1


def test_inline_lookup_answers_as_the_store_and_falls_back(server):
    srv = server()
    _users(srv, "alice", "carol")
    srv.call(lambda s: mailboxes.set_autoreply(s, "carol", enabled=True, subject="Away", body="I am away."))
    srv.call(lambda s: lists.create_list(s, "demo", ["owner@example.net"]))
    [listener] = [c for c in srv.service.components if getattr(c, "name", "") == "smtp"]
    if not srv.app.store.is_sqlite:
        assert listener.handler.inline is None
        _async_lookup_answers_as_the_store_and_falls_back(srv, listener.handler)
        return
    inline = listener.handler.inline
    domains = ("example.org",)
    _answers_as_the_store(srv, inline.read)
    # An unknown name is looked for among the lists' sender addresses, which the one
    # statement does not read: that RCPT is answered by the thread pool.
    with pytest.raises(directory.NotRead):
        lists_, users = questions("nobody@example.org", domains)
        route("nobody@example.org", domains, inline.read(lists_, users))

    # A user added by another process's connection is found at the next RCPT.
    _users(srv, "erin")
    assert route("erin@example.org", domains,
                 inline.read(*questions("erin@example.org", domains))) == \
        Destination("local", "erin")

    # A database that cannot answer on the event loop: RCPT is asked in the thread pool.
    def broken(*_):
        raise sqlite3.OperationalError("database is locked")
    listener.handler.inline.read = broken
    _rcpts_answered_by_the_pool(srv)


def _rcpts_answered_by_the_pool(srv) -> None:
    """With the event loop's lookup failing: mail for erin still arrives, nobody is still
    refused (the thread pool answered both)."""
    before = len(_box(srv, "erin"))
    [(code, _)] = _send(srv, ["erin@example.org"])
    assert code == 250 and len(_box(srv, "erin")) == before + 1
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
        c.ehlo("client.example")
        c.mail("a@remote.example")
        assert c.rcpt("nobody@example.org")[0] == 550


def _answers_as_the_store(srv, read) -> None:
    """`read(lists, users)` routes and flags auto-replies as directory.lookup does (demo is
    a list, alice a user, carol a user with an auto-reply on)."""
    domains = ("example.org",)
    for address in ("demo@example.org", "demo-request@example.org", "Alice@example.org",
                    "carol@example.org", "owner-demo@example.org"):
        lists_, users = questions(address, domains)
        got = read(lists_, users)
        with directory.lookup(srv.app.store, lists_, users) as stored:
            assert route(address, domains, got) == route(address, domains, stored)
            assert got.autoreplying == stored.autoreplying
    assert read([], ["carol"]).autoreplying == {"carol"}


def _async_lookup_answers_as_the_store_and_falls_back(srv, handler):
    """PostgreSQL: the same statement on the event loop over an asynchronous connection."""
    import asyncio
    names = handler.async_names

    def read(lists_, users):
        return asyncio.run_coroutine_threadsafe(names.read(lists_, users), srv.loop).result(30)
    domains = ("example.org",)
    _answers_as_the_store(srv, read)
    with pytest.raises(directory.NotRead):
        route("nobody@example.org", domains, read(*questions("nobody@example.org", domains)))
    def no_pool(*_):
        raise AssertionError("RCPT asked in the thread pool")
    handler._route = no_pool  # RCPT for a user is answered on the event loop
    try:
        [(code, _)] = _send(srv, ["alice@example.org"])
        assert code == 250
    finally:
        del handler._route
    _users(srv, "erin")  # added by another connection: found at the next RCPT
    assert route("erin@example.org", domains,
                 read(*questions("erin@example.org", domains))) == Destination("local", "erin")
    # A statement over its time limit: dropped, and RCPT answered by the pool meanwhile.
    names.timeout = 1e-6
    with pytest.raises(TimeoutError):
        read([], ["erin"])
    assert names._conn is None
    names.timeout = 1.0
    _rcpts_answered_by_the_pool(srv)  # (the lookup is resting for `retry` seconds)
    names._failed_at = float("-inf")
    assert read([], ["erin"]).autoreplying == set()
    # A server that cannot be reached: the error drops the connection, RCPT is answered
    # by the thread pool meanwhile, and the lookup rests before connecting again.
    names.conninfo, good = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", \
        names.conninfo
    asyncio.run_coroutine_threadsafe(names._drop(), srv.loop).result(30)
    names._failed_at = float("-inf")
    with pytest.raises(Exception):
        read([], ["erin"])
    assert names._conn is None
    _rcpts_answered_by_the_pool(srv)
    names.conninfo, names._failed_at = good, float("-inf")
    assert read([], ["erin"]).autoreplying == set()
    assert names._conn is not None


def _smtp_handler(srv):
    from listmgr.smtp.server import Listener
    return next(c for c in srv.service.components
                if isinstance(c, Listener) and c.name == "smtp").handler


def test_concurrent_messages_are_written_in_batches_each_once(server, monkeypatch):
    """Small messages of concurrent sessions are written by one thread, a batch at a
    time, with one fsync of each new/ directory per batch: every message answered 250 is
    in its mailboxes exactly once, and the directory fsyncs are fewer than the messages."""
    from listmgr.mailbox import at_ingress
    srv = server(smtp__max_data_sessions_per_ip=0, smtp__max_connections_per_ip=0)
    _users(srv, "alice", "bob")
    writer = _smtp_handler(srv).writer
    real, synced = at_ingress.fsync_dir, []

    def fsync_dir(path):
        if not synced:  # hold the first batch (writer.largest: its size, so far) until
            # every other session's first message has queued behind it
            deadline = time.monotonic() + 10
            while len(writer._jobs) + writer.largest < sessions \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
        synced.append(path)
        real(path)

    sessions, per_session = 12, 3
    monkeypatch.setattr(at_ingress, "fsync_dir", fsync_dir)
    replies: list = []

    def client(k: int) -> None:
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=60) as c:
            for i in range(per_session):
                rcpts = ["alice@example.org"] + (["bob@example.org"] if i % 2 else [])
                c.sendmail("a@remote.example", rcpts,
                           BODY.replace(b"hello", f"m{k}-{i}".encode()))
                replies.append((k, i))

    import threading
    threads = [threading.Thread(target=client, args=(k,)) for k in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(replies) == sessions * per_session  # every message got its 250

    def subjects(user):
        return sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0].decode()
                      for m in _box(srv, user))
    assert subjects("alice") == sorted(f"m{k}-{i}" for k in range(sessions)
                                       for i in range(per_session))
    assert subjects("bob") == sorted(f"m{k}-1" for k in range(sessions))
    assert writer.largest >= sessions // 2  # the first batch or the one held behind it
    assert len(synced) < sessions * per_session
    assert _inbound_messages(srv) == 0


@pytest.mark.parametrize("error, code", [(13, 451), (28, 452)])  # EACCES, ENOSPC
def test_a_new_directory_that_cannot_be_synced_takes_the_message_back(server, monkeypatch,
                                                                     error, code):
    """The batch's fsync of bob's new/ fails: the message for alice and bob is answered
    451 (452: the disk is full) and neither has it; mail for alice alone still arrives."""
    import os
    from listmgr.mailbox import at_ingress
    srv = server()
    _users(srv, "alice", "bob")
    real = at_ingress.fsync_dir

    def fsync_dir(path):
        if "/bob/" in str(path):
            raise OSError(error, os.strerror(error))
        real(path)

    monkeypatch.setattr(at_ingress, "fsync_dir", fsync_dir)
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail("a@remote.example", ["alice@example.org", "bob@example.org"], BODY)
        assert err.value.smtp_code == code
        assert _box(srv, "alice") == [] and _box(srv, "bob") == []
        assert c.sendmail("a@remote.example", ["alice@example.org"], BODY) == {}
    assert len(_box(srv, "alice")) == 1
