"""Item 5: a full disk loses no work.

After a 250, `OSError 28` once shunted the task for good, and half-written files stayed in
spool/tmp and mailboxes/*/tmp, keeping the disk full. Now ingress answers
`452 4.3.1 Insufficient system storage` while the disk is short (below `min_free_space`,
or when the write itself fails), accepted work is retried with backoff, and temporary
files are removed on failure and at start.
"""

from __future__ import annotations

import errno
import os
import smtplib
import time

import pytest

from listmgr import diskspace
from listmgr.mailbox.maildir import Maildir
from listmgr.pipeline import InboundWorker
from listmgr.service import INBOUND_HANDLERS
from listmgr.store import mailboxes
from listmgr.store.models import InboundTask
from tests.adversarial.support import crlf
from tests.test_local_delivery import queue_local


def failing_writes(monkeypatch, module, times: int):
    """Make `module.write_all` write half its data (all its parts) and fail with ENOSPC
    `times` times."""
    real = module.write_all
    left = [times]

    def write_all(fd, *parts):
        data = b"".join(parts)
        if left[0] > 0:
            left[0] -= 1
            os.write(fd, data[:len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, *parts)
    monkeypatch.setattr(module, "write_all", write_all)
    return left


def tmp_files(data_dir) -> list[str]:
    root = os.path.join(data_dir, "spool", "tmp")
    out = [os.path.join(root, n) for n in os.listdir(root)]
    mb = os.path.join(data_dir, "mailboxes")
    if os.path.isdir(mb):
        for u in os.listdir(mb):
            d = os.path.join(mb, u, "tmp")
            if os.path.isdir(d):
                out += [os.path.join(d, n) for n in os.listdir(d)]
    return out


def test_below_min_free_space_mail_is_refused_with_452(server):
    srv = server(smtp__min_free_space="1000000gb")
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
        c.ehlo("client.example")
        code, text = c.docmd("MAIL FROM:<a@example.net> SIZE=1000")
        assert (code, text) == (452, b"4.3.1 Insufficient system storage")
        code, text = c.docmd("MAIL FROM:<a@example.net>")
        assert code == 452


def test_a_failed_spool_write_answers_452_and_leaves_no_file(server, monkeypatch):
    import listmgr.spool
    srv = server()
    failing_writes(monkeypatch, listmgr.spool, 1)
    data = crlf("From: a@example.net\nSubject: x\n\nbody\n")
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
        with pytest.raises(smtplib.SMTPDataError) as exc:
            c.sendmail("a@example.net", ["postmaster@example.org"], data)
        assert exc.value.smtp_code == 452 and b"4.3.1" in exc.value.smtp_error
        # The disk has room again: the same session goes on.
        assert c.sendmail("a@example.net", ["postmaster@example.org"], data) == {}
    # The accepted mail goes on to the site admins: its own spool writes pass through
    # spool/tmp while its task runs, so look once the server has finished with it.
    srv.wait_settled()
    assert tmp_files(srv.config.data_dir) == []


def test_a_full_disk_while_writing_mailboxes_at_data_answers_452_and_keeps_nothing(
        server, monkeypatch):
    """Mail for two mailboxes, written at DATA (mailbox/at_ingress.py): the second copy
    meets a full disk; the first is taken back, nothing is left in tmp/ or new/, and the
    client is told to try again later."""
    import listmgr.mailbox.maildir
    srv = server()
    srv.call(lambda s: (mailboxes.add_user(s, "alice", "pw"), mailboxes.add_user(s, "bob", "pw")))
    data = crlf("From: a@example.net\nSubject: x\n\nbody\n")
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
        left = [1]
        real = listmgr.mailbox.maildir.write_all

        def second_fails(fd, *parts):  # alice's copy is written, bob's is not
            payload = b"".join(parts)
            if b"Delivered-To: bob@" in payload[:200] and left[0]:
                left[0] = 0
                os.write(fd, payload[:len(payload) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
            real(fd, *parts)
        monkeypatch.setattr(listmgr.mailbox.maildir, "write_all", second_fails)
        with pytest.raises(smtplib.SMTPDataError) as exc:
            c.sendmail("a@example.net", ["alice@example.org", "bob@example.org"], data)
        assert exc.value.smtp_code == 452 and b"4.3.1" in exc.value.smtp_error
        assert left == [0]
        for user in ("alice", "bob"):
            assert Maildir.for_user(srv.config.data_dir, user).entries() == []
        assert tmp_files(srv.config.data_dir) == []
        # The disk has room again: the same session goes on, one copy each.
        assert c.sendmail("a@example.net", ["alice@example.org", "bob@example.org"], data) == {}
    for user in ("alice", "bob"):
        assert len(Maildir.for_user(srv.config.data_dir, user).entries()) == 1


def test_accepted_work_is_retried_not_shunted(app, monkeypatch):
    import listmgr.mailbox.maildir
    with app.store.session() as s:
        mailboxes.add_user(s, "alice", "pw")
    tid = queue_local(app, "alice")
    left = failing_writes(monkeypatch, listmgr.mailbox.maildir, 2)
    pipe = InboundWorker(app, "all", INBOUND_HANDLERS)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pipe.run_once()
        with app.store.session() as s:
            t = s.get(InboundTask, tid)
            state = t.state if t else "gone"
        assert state != "shunted"
        if state in ("done", "gone"):
            break
        time.sleep(0.2)
    assert left[0] == 0
    assert state in ("done", "gone")
    assert len(Maildir.for_user(app.config.data_dir, "alice").entries()) == 1
    assert tmp_files(app.config.data_dir) == []


def test_stale_temporary_files_are_removed_at_start(server, tmp_path):
    data_dir = tmp_path / "var"
    (data_dir / "spool" / "tmp").mkdir(parents=True)
    (data_dir / "mailboxes" / "alice" / "tmp").mkdir(parents=True)
    dead = data_dir / "spool" / "tmp" / "0190ABCDEF.999999999.abcd1234"
    dead.write_bytes(b"half a message")
    live = data_dir / "spool" / "tmp" / f"0190ABCDEF.{os.getpid()}.abcd1234"
    live.write_bytes(b"being written")
    old = data_dir / "mailboxes" / "alice" / "tmp" / "1700000000.M1P1.host,S=10"
    old.write_bytes(b"half")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    server()
    assert not dead.exists() and not old.exists()
    assert live.exists()


def test_transient_errors_are_recognised():
    assert diskspace.is_transient(OSError(errno.ENOSPC, "full"))
    assert diskspace.is_transient(RuntimeError("sqlite3.OperationalError: database or disk "
                                               "is full"))
    assert not diskspace.is_transient(ValueError("bad"))
    assert not diskspace.is_transient(OSError(errno.ENOENT, "gone"))
