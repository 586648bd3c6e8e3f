"""`listmgr user ...`, `users`, `relay-grants` as an administrator uses them."""

from __future__ import annotations

from listmgr.passwords import verify_password
from listmgr.mailbox.maildir import Maildir
from listmgr.store import mailboxes
from listmgr.store.db import Store
from tests.support import run_cli


def setup(config_file):
    cfg = config_file()
    assert run_cli(cfg, "init").status == 0
    return cfg


def stored_hash(db_url, name):
    store = Store(db_url)
    try:
        with store.session() as s:
            u = mailboxes.get_user(s, name)
            return u.password_hash if u else None
    finally:
        store.dispose()


def test_user_add_passwd_del(config_file, db_url, tmp_path):
    cfg = setup(config_file)
    r = run_cli(cfg, "user", "add", "Alice", "--password-stdin", stdin="s3cret words\n")
    assert r.status == 0, r.err
    assert r.out == "created mailbox user alice (alice@example.org)\n"
    assert "s3cret" not in r.out + r.err
    assert verify_password(stored_hash(db_url, "alice"), "s3cret words")
    assert (tmp_path / "var" / "mailboxes" / "alice" / "new").is_dir()

    r = run_cli(cfg, "user", "add", "alice", "--password-stdin", stdin="x\n")
    assert r.status == 1 and r.err == "listmgr: mailbox user 'alice' already exists\n"

    r = run_cli(cfg, "user", "passwd", "alice", "--password-stdin", stdin="new one\n")
    assert r.status == 0 and r.out == "password changed for alice\n"
    assert verify_password(stored_hash(db_url, "alice"), "new one")

    Maildir.for_user(tmp_path / "var", "alice").deliver(b"Subject: x\r\n\r\ny\r\n")
    r = run_cli(cfg, "users")
    assert r.status == 0 and r.out.split() == ["alice", "1", "message"]

    r = run_cli(cfg, "user", "del", "alice")
    assert r.status == 0 and r.out == "removed mailbox user alice and 1 message\n"
    assert stored_hash(db_url, "alice") is None
    assert not (tmp_path / "var" / "mailboxes" / "alice").exists()
    assert run_cli(cfg, "users").out == ""


def test_errors_are_one_line(config_file):
    cfg = setup(config_file)
    cases = [
        (("user", "add", "majordomo", "--password-stdin"), "x\n", "reserved"),
        (("user", "add", "bad name", "--password-stdin"), "x\n", "not a usable mailbox name"),
        (("user", "add", "bob", "--password-stdin"), "\n", "must not be empty"),
        (("user", "add", "bob"), "typed\n", "use --password-stdin"),  # no terminal
        (("user", "passwd", "nobody", "--password-stdin"), "x\n", "no mailbox user 'nobody'"),
        (("user", "del", "nobody"), None, "no mailbox user 'nobody'"),
    ]
    for args, stdin, text in cases:
        r = run_cli(cfg, *args, stdin=stdin)
        assert r.status == 1, args
        assert r.err.startswith("listmgr: ") and text in r.err and r.err.count("\n") == 1, r.err
        assert "Traceback" not in r.err


def test_user_del_keep_mail(config_file, tmp_path):
    cfg = setup(config_file)
    run_cli(cfg, "user", "add", "carol", "--password-stdin", stdin="pw\n")
    Maildir.for_user(tmp_path / "var", "carol").deliver(b"x\r\n")
    r = run_cli(cfg, "user", "del", "carol", "--keep-mail")
    assert r.status == 0 and "mail kept" in r.out
    assert len(Maildir.for_user(tmp_path / "var", "carol").entries()) == 1


def test_relay_grants_lists_live_ones(config_file, db_url):
    cfg = setup(config_file)
    store = Store(db_url)
    try:
        with store.session() as s:
            mailboxes.grant_relay(s, "192.0.2.1", "alice", 600)
            mailboxes.grant_relay(s, "192.0.2.2", "bob", 0)  # already expired
    finally:
        store.dispose()
    r = run_cli(cfg, "relay-grants")
    assert r.status == 0
    lines = r.out.splitlines()
    assert len(lines) == 1 and lines[0].split()[:2] == ["192.0.2.1", "alice"]
    assert "until" in lines[0]


def test_password_prompt_on_a_terminal_is_not_echoed(config_file, db_url):
    """`listmgr user add NAME` asks twice on the terminal; what is typed never shows."""
    import os
    import pty
    import select as sel
    import sys
    import time

    cfg = setup(config_file)
    secret = "Zebra-9-secret"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real CLI on a terminal
        os.execvp(sys.executable, [sys.executable, "-m", "listmgr", "--config", str(cfg),
                                   "user", "add", "frank"])
    seen = b""

    def read_until(token: bytes, timeout: float = 60) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while token not in seen:
            assert time.monotonic() < deadline, seen
            if sel.select([fd], [], [], 0.5)[0]:
                try:
                    seen += os.read(fd, 1024)
                except OSError:
                    break

    read_until(b"Password: ")
    os.write(fd, secret.encode() + b"\n")
    read_until(b"Again: ")
    os.write(fd, secret.encode() + b"\n")
    read_until(b"created mailbox user frank")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert secret.encode() not in seen
    assert verify_password(stored_hash(db_url, "frank"), secret)
