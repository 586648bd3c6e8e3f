"""Users' stories over real sockets: mail sent over SMTP read with real POP3 clients
(fetchmail, getmail6), and POP-before-SMTP opening and closing the relay."""

from __future__ import annotations

import email
import email.policy
import os
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from listmgr.mailbox.maildir import Maildir
from tests.pop3_support import add_user, login, self_signed_cert

FAST = {"pop3__login_failure_delay": "0.2s"}


def send(port: int, mail_from: str, rcpt: str, subject: str, body: str = "Hello.\n") -> None:
    msg = (f"From: {mail_from}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '.')}@example.net>\r\n\r\n{body}")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail(mail_from, [rcpt], msg.encode())


def wait_mailbox(srv, user: str, n: int, timeout: float = 20) -> list:
    md = Maildir.for_user(srv.config.data_dir, user)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = md.entries()
        if len(entries) >= n:
            return entries
        time.sleep(0.05)
    raise AssertionError(f"{user}'s mailbox has {len(md.entries())} message(s), wanted {n}")


def client_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), LC_ALL="C")
    env.pop("MAIL", None)
    return env


def test_fetchmail_retrieves_mail_sent_over_smtp(server, tmp_path):
    srv = server(**FAST)
    add_user(srv, "alice", "open sesame")
    send(srv.smtp_port, "bob@outside.example", "alice@example.org", "first note",
         ".a line with a leading dot\r\nsecond line\r\n")
    send(srv.smtp_port, "carol@outside.example", "Alice@EXAMPLE.org", "second note")
    wait_mailbox(srv, "alice", 2)

    out_dir = tmp_path / "fetched"
    out_dir.mkdir()
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\n"
        f"poll 127.0.0.1 with proto POP3 port {srv.pop3_port} timeout 20\n"
        f'  user "alice" there with password "open sesame" is "nobody" here\n'
        "  options fetchall no keep sslproto ''\n"
        f"  mda \"/bin/sh -c 'cat > {out_dir}/msg.$$'\"\n")
    rc.chmod(0o600)
    p = subprocess.run(["fetchmail", "-f", str(rc), "--idfile", str(tmp_path / "ids"),
                        "--pidfile", str(tmp_path / "fetchmail.pid"), "-v", "--nodetach"],
                       capture_output=True, text=True, timeout=60, env=client_env(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "open sesame" not in p.stdout + p.stderr or "PASS *" in p.stdout + p.stderr
    got = [email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
           for f in sorted(out_dir.iterdir())]
    subjects = sorted(m["Subject"] for m in got)
    assert subjects == ["first note", "second note"]
    first = next(m for m in got if m["Subject"] == "first note")
    assert first["Delivered-To"] == "alice@example.org"
    assert first["Return-Path"] == "<bob@outside.example>"
    assert ".a line with a leading dot\n" in first.get_content()  # un-stuffed by the client
    # fetchmail quit cleanly, so its DELEs took effect.
    assert Maildir.for_user(srv.config.data_dir, "alice").entries() == []


def test_getmail_over_tls_keeps_mail_and_skips_seen_uids(server, tmp_path):
    cert, key = self_signed_cert(tmp_path / "tls")
    srv = server(pop3__tls_cert=str(cert), pop3__tls_key=str(key),
                 pop3__tls_listen="127.0.0.1:0", **FAST)
    add_user(srv, "dave", "pw 4 dave")
    send(srv.smtp_port, "bob@outside.example", "dave@example.org", "one")
    wait_mailbox(srv, "dave", 1)

    maildir = tmp_path / "client-maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    gm_dir = tmp_path / "getmail"
    gm_dir.mkdir()
    rc = gm_dir / "getmailrc"
    rc.write_text(
        "[retriever]\n"
        "type = SimplePOP3SSLRetriever\n"
        "server = 127.0.0.1\n"
        f"port = {srv.ports['pop3s']}\n"
        "username = dave\n"
        "password = pw 4 dave\n"
        f"ca_certs = {cert}\n"
        "[destination]\n"
        "type = MDA_external\n"
        "path = /bin/sh\n"
        f"arguments = (\"-c\", \"cat > {maildir}/new/msg.$$\")\n"
        "allow_root_commands = true\n"
        "[options]\n"
        "delete = false\n"
        "read_all = false\n"
        "verbose = 1\n")

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(["getmail", "--getmaildir", str(gm_dir), "--rcfile", str(rc)],
                              capture_output=True, text=True, timeout=60,
                              env=client_env(tmp_path))

    p = run()
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(list((maildir / "new").iterdir())) == 1
    send(srv.smtp_port, "bob@outside.example", "dave@example.org", "two")
    wait_mailbox(srv, "dave", 2)
    p = run()  # only the new one: the UIDs of the first session are stable
    assert p.returncode == 0, p.stdout + p.stderr
    got = sorted(email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
                 ["Subject"] for f in (maildir / "new").iterdir())
    assert got == ["one", "two"]
    assert len(Maildir.for_user(srv.config.data_dir, "dave").entries()) == 2  # kept


def relay_attempt(port: int, subject: str) -> tuple[int, bytes]:
    """MAIL FROM a local user, RCPT to another domain; the RCPT reply."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        smtp.mail("alice@example.org")
        code, text = smtp.rcpt("friend@outside.example")
        if code == 250:
            code2, _ = smtp.data(f"From: alice@example.org\r\nTo: friend@outside.example\r\n"
                                 f"Subject: {subject}\r\n\r\nhi\r\n".encode())
            assert code2 == 250
        return code, text


def assert_relayed(sink, subject: str) -> None:
    """The relayed message reached the remote MTA (the recording sink, our smarthost)."""
    got = sink.wait_count(1)
    assert got[0].rcpt_tos == ["friend@outside.example"]
    assert got[0].mail_from == "alice@example.org"
    assert got[0].message["Subject"] == subject


def test_pop_before_smtp_opens_the_relay_for_the_window(manual_clock, server, sink):
    """The default 30-minute window, on listmgr's clock."""
    srv = server(**FAST)
    add_user(srv, "alice", "secret")

    code, text = relay_attempt(srv.smtp_port, "too early")
    assert code == 550 and b"Relaying denied" in text

    login(srv, "alice", "secret").quit()
    manual_clock.advance(minutes=29)
    code, text = relay_attempt(srv.smtp_port, "after login")
    assert code == 250, text
    assert_relayed(sink, "after login")

    manual_clock.advance(minutes=2)
    code, text = relay_attempt(srv.smtp_port, "too late")
    assert code == 550 and b"Relaying denied" in text
    assert srv.call(lambda s: __import__("listmgr.store.mailboxes", fromlist=["x"])
                    .live_grants(s)) == []


def test_a_failed_login_opens_nothing(server):
    srv = server(**FAST)
    add_user(srv, "alice", "secret")
    import poplib
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=10)
    p.user("alice")
    with pytest.raises(poplib.error_proto):
        p.pass_("guess")
    p.quit()
    code, _ = relay_attempt(srv.smtp_port, "no")
    assert code == 550


def test_auto_reply_reaches_the_sender_once(server, sink):
    srv = server(**FAST)
    add_user(srv, "alice", "secret")
    srv.call(lambda s: __import__("listmgr.store.mailboxes", fromlist=["x"]).set_autoreply(
        s, "alice", enabled=True, subject="Away", body="Back on Monday."))
    send(srv.smtp_port, "bob@outside.example", "alice@example.org", "lunch")
    send(srv.smtp_port, "bob@outside.example", "alice@example.org", "lunch again")
    wait_mailbox(srv, "alice", 2)
    [reply] = sink.wait_count(1)
    assert reply.mail_from == "<>" and reply.rcpt_tos == ["bob@outside.example"]
    assert reply.message["Subject"] == "Away"
    assert reply.message["Auto-Submitted"] == "auto-replied"
    assert reply.message["In-Reply-To"] == "<lunch@example.net>"
    srv.wait_idle()
    time.sleep(0.5)
    assert len(sink.received) == 1  # once per sender per day
