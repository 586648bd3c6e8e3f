"""The POP3 server over real sockets, driven by the stdlib's poplib (both databases)."""

from __future__ import annotations

import datetime as dt
import poplib
import socket
import ssl
import time

import pytest
from sqlalchemy import select

from listmgr.store.models import RelayGrant, utcnow
from tests.pop3_support import (
    Servers,
    add_user,
    client_context,
    login,
    pop,
    put_mail,
    self_signed_cert,
)

FAST = {"pop3__login_failure_delay": "0.2s"}

MSG1 = b"From: bob@example.net\r\nSubject: one\r\n\r\nfirst line\r\n.starts with a dot\r\n"
MSG2 = b"From: carol@example.net\r\nSubject: two\r\n\r\nl1\r\nl2\r\nl3\r\n"


@pytest.fixture
def server(tmp_path, db_url):
    servers = Servers(tmp_path, db_url)
    yield servers
    servers.stop()


@pytest.fixture
def pop3(server):
    srv = server(**FAST)
    add_user(srv, "alice", "secret")
    put_mail(srv, "alice", MSG1)
    time.sleep(0.01)  # distinct mtimes: the order is the arrival order
    put_mail(srv, "alice", MSG2)
    return srv


def raw_session(srv, *lines: bytes) -> bytes:
    """Send raw lines; return everything the server sent until it closed."""
    with socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=10) as sock:
        sock.recv(1024)
        sock.sendall(b"".join(lines))
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def test_greeting_and_capa(pop3):
    p = pop(pop3)
    assert p.getwelcome() == b"+OK example.org POP3 server ready"
    caps = p.capa()
    assert {"TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"} <= set(caps)
    assert "STLS" not in caps  # no certificate configured
    p.quit()


def test_login_stat_list_uidl(pop3):
    p = pop(pop3)
    assert p.user("alice").startswith(b"+OK")
    assert p.pass_("secret") == b"+OK maildrop has 2 messages (%d octets)" % (len(MSG1)
                                                                            + len(MSG2))
    assert p.stat() == (2, len(MSG1) + len(MSG2))
    resp, listing, _ = p.list()
    assert listing == [b"1 %d" % len(MSG1), b"2 %d" % len(MSG2)]
    assert p.list(2) == b"+OK 2 %d" % len(MSG2)
    _, uids, _ = p.uidl()
    uid1 = p.uidl(1).split()[2]
    assert uids[0].split()[1] == uid1 and len(uids) == 2 and uids[0] != uids[1]
    assert p.noop() == b"+OK"
    p.quit()
    p = login(pop3)
    assert p.uidl()[1] == uids  # stable across sessions
    p.quit()


def test_login_by_full_address(pop3):
    p = login(pop3, "Alice@Example.ORG", "secret")
    assert p.stat()[0] == 2
    p.quit()


def test_retr_crlf_and_byte_stuffing_on_the_wire(pop3):
    out = raw_session(pop3, b"USER alice\r\nPASS secret\r\nRETR 1\r\nQUIT\r\n")
    assert (b"+OK %d octets\r\n" % len(MSG1)) in out
    assert b"\r\nfirst line\r\n..starts with a dot\r\n.\r\n" in out
    p = login(pop3)
    resp, lines, octets = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == MSG1  # poplib un-stuffs
    p.quit()


def test_top(pop3):
    p = login(pop3)
    _, lines, _ = p.top(2, 2)
    assert lines == [b"From: carol@example.net", b"Subject: two", b"", b"l1", b"l2"]
    _, lines, _ = p.top(2, 0)
    assert lines[-1] == b"" and b"l1" not in lines
    with pytest.raises(poplib.error_proto, match="no such message"):
        p.top(3, 1)
    p.quit()


def test_dele_happens_only_at_quit(pop3):
    p = login(pop3)
    assert p.dele(1) == b"+OK message 1 deleted"
    with pytest.raises(poplib.error_proto, match="already deleted"):
        p.retr(1)
    with pytest.raises(poplib.error_proto, match="already deleted"):
        p.dele(1)
    assert p.stat() == (1, len(MSG2))
    assert p.rset().startswith(b"+OK maildrop has 2")
    p.dele(2)
    # Dropping the connection (no QUIT) must delete nothing.
    p.sock.shutdown(socket.SHUT_RDWR)
    p.close()
    time.sleep(0.2)
    p = login(pop3)
    assert p.stat()[0] == 2
    p.dele(2)
    assert p.quit() == b"+OK example.org POP3 server signing off (1 message left)"
    p = login(pop3)
    resp, lines, _ = p.retr(1)
    assert b"Subject: one" in lines
    assert p.stat()[0] == 1
    p.quit()


def test_errors_for_message_numbers(pop3):
    p = login(pop3)
    for bad in ("0", "3", "x", "-1"):
        with pytest.raises(poplib.error_proto, match="-ERR"):
            p.retr(bad)
    with pytest.raises(poplib.error_proto, match="-ERR"):
        p.list(7)
    with pytest.raises(poplib.error_proto, match="-ERR"):
        p.uidl(9)
    with pytest.raises(poplib.error_proto, match="-ERR"):
        p.dele(0)
    with pytest.raises(poplib.error_proto, match="unknown command"):
        p._shortcmd("FROB")
    with pytest.raises(poplib.error_proto, match="already logged in"):
        p.user("alice")
    p.quit()


def test_commands_before_login_are_refused(pop3):
    p = pop(pop3)
    for cmd in ("STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "TOP 1 1", "RSET", "NOOP"):
        with pytest.raises(poplib.error_proto, match="not logged in"):
            p._shortcmd(cmd)
    with pytest.raises(poplib.error_proto, match="send USER first"):
        p.pass_("x")
    with pytest.raises(poplib.error_proto, match="STLS not available"):
        p._shortcmd("STLS")
    with pytest.raises(poplib.error_proto, match="APOP"):
        p._shortcmd("APOP alice 0123")
    p.quit()


def test_bad_password_is_auth_error_after_a_delay(pop3):
    p = pop(pop3)
    p.user("alice")
    t0 = time.monotonic()
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        p.pass_("wrong")
    assert time.monotonic() - t0 >= 0.2
    p.user("nobody")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Invalid user name or password"):
        p.pass_("secret")  # an unknown user looks the same
    p.user("alice")
    assert p.pass_("secret").startswith(b"+OK")
    p.quit()
    assert pop3.call(lambda s: s.scalars(select(RelayGrant)).all())  # the success only


def test_repeated_failures_from_one_ip_slow_down_and_close(pop3):
    p = pop(pop3)
    times = []
    for i in range(3):
        p.user("alice")
        t0 = time.monotonic()
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            p.pass_(f"wrong{i}")
        times.append(time.monotonic() - t0)
    assert times[1] >= 0.4 and times[2] >= 0.8  # 0.2s, doubled per recent failure
    with pytest.raises((poplib.error_proto, OSError)):
        p.noop()  # three failures: the server closed the connection
    # A fresh connection from the same IP still pays the grown delay.
    p = pop(pop3)
    p.user("alice")
    t0 = time.monotonic()
    with pytest.raises(poplib.error_proto):
        p.pass_("again")
    assert time.monotonic() - t0 >= 1.6
    p.quit()


def test_one_session_per_mailbox(pop3):
    first = login(pop3)
    second = pop(pop3)
    second.user("alice")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[IN-USE\]"):
        second.pass_("secret")
    first.quit()
    second.user("alice")
    assert second.pass_("secret").startswith(b"+OK")
    second.quit()


def test_login_grants_relay_for_the_window(pop3):
    before = utcnow()
    login(pop3).quit()
    grants = pop3.call(lambda s: [(g.ip, g.user, g.granted_at, g.expires_at)
                                  for g in s.scalars(select(RelayGrant))])
    assert len(grants) == 1
    ip, user, granted, expires = grants[0]
    assert (ip, user) == ("127.0.0.1", "alice")
    assert before - dt.timedelta(seconds=1) <= granted <= utcnow()
    assert expires - granted == dt.timedelta(seconds=1800)


def test_overlong_line_and_pipelining(pop3):
    out = raw_session(pop3, b"NOOP" + b"x" * 5000 + b"\r\nUSER alice\r\nPASS secret\r\n"
                      b"STAT\r\nQUIT\r\n")
    lines = out.split(b"\r\n")
    assert lines[0] == b"-ERR command line too long"
    assert lines[1].startswith(b"+OK") and lines[2].startswith(b"+OK maildrop")
    assert lines[3] == b"+OK 2 %d" % (len(MSG1) + len(MSG2))
    assert lines[4].startswith(b"+OK") and b"signing off" in lines[4]


def test_idle_timeout_logs_out_without_deleting(server):
    srv = server(pop3__timeout="1s", **FAST)
    add_user(srv, "alice", "secret")
    put_mail(srv, "alice", MSG1)
    p = login(srv)
    p.dele(1)
    time.sleep(1.5)
    line = p.file.readline()
    assert line.startswith(b"-ERR autologout")
    assert p.file.readline() == b""  # closed
    p = login(srv)
    assert p.stat()[0] == 1
    p.quit()


# --------------------------------------------------------------------------- TLS

@pytest.fixture(scope="session")
def cert(tmp_path_factory):
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def tls_server(server, cert, **more):
    c, k = cert
    srv = server(pop3__tls_cert=str(c), pop3__tls_key=str(k), pop3__tls_listen="127.0.0.1:0",
                 **FAST, **more)
    add_user(srv, "alice", "secret")
    put_mail(srv, "alice", MSG1)
    return srv


def test_stls_then_login(server, cert):
    srv = tls_server(server, cert)
    p = pop(srv)
    assert "STLS" in p.capa()
    p.stls(client_context(cert[0]))
    assert "STLS" not in p.capa()
    with pytest.raises(poplib.error_proto, match="TLS is already active"):
        p._shortcmd("STLS")
    p.user("alice")
    p.pass_("secret")
    assert p.retr(1)[1][-1] == b".starts with a dot"
    p.quit()


def test_implicit_tls_listener(server, cert):
    srv = tls_server(server, cert)
    p = poplib.POP3_SSL("127.0.0.1", srv.ports["pop3s"], context=client_context(cert[0]),
                        timeout=10)
    assert "STLS" not in p.capa()
    p.user("alice")
    assert p.pass_("secret").startswith(b"+OK maildrop has 1")
    p.quit()


def test_require_tls_refuses_plaintext_login(server, cert):
    srv = tls_server(server, cert, pop3__require_tls=True)
    p = pop(srv)
    assert "USER" not in p.capa()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext login is refused"):
        p.user("alice")
    p.stls(client_context(cert[0]))
    p.user("alice")
    assert p.pass_("secret").startswith(b"+OK")
    p.quit()


def test_plaintext_sent_after_stls_is_discarded(server, cert):
    srv = tls_server(server, cert)
    with socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=10) as sock:
        sock.recv(1024)
        # An attacker appends a command in clear text after STLS; it must not be run
        # inside the TLS session.
        sock.sendall(b"STLS\r\nUSER alice\r\n")
        assert sock.recv(1024).startswith(b"+OK Begin TLS")
        tls = client_context(cert[0]).wrap_socket(sock, server_hostname="localhost")
        tls.sendall(b"PASS secret\r\n")
        assert tls.recv(1024) == b"-ERR send USER first\r\n"
        tls.sendall(b"QUIT\r\n")
        assert tls.recv(1024).startswith(b"+OK")


def test_connection_limit(server):
    srv = server(pop3__max_connections=1, **FAST)
    first = pop(srv)
    with socket.create_connection(("127.0.0.1", srv.pop3_port), timeout=10) as sock:
        assert sock.recv(1024).startswith(b"-ERR [SYS/TEMP] too many connections")
        assert sock.recv(1024) == b""
    first.quit()
    time.sleep(0.1)
    p = pop(srv)
    assert p.getwelcome().startswith(b"+OK")
    p.quit()


def test_garbage_gets_errors_and_the_server_keeps_serving(pop3):
    out = raw_session(pop3, b"\xff\xfe\x00garbage\r\n", b"\r\n", b"USER \xc3\r\n",
                      b"RETR 1\r\n", b"QUIT\r\n")
    lines = out.split(b"\r\n")
    assert lines[0].startswith(b"-ERR") and lines[1].startswith(b"-ERR")
    assert lines[3] == b"-ERR not logged in"
    assert lines[4].startswith(b"+OK")
    p = login(pop3)
    assert p.stat()[0] == 2
    p.quit()


def test_passwords_never_reach_the_log(pop3, caplog):
    import logging
    with caplog.at_level(logging.DEBUG):
        p = pop(pop3)
        p.user("alice")
        with pytest.raises(poplib.error_proto):
            p.pass_("Wrong-Horse-77")
        p.user("alice")
        p.pass_("secret")
        p.quit()
        time.sleep(0.1)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "pop3 login failed user=alice ip=127.0.0.1" in text
    assert "pop3 login user=alice ip=127.0.0.1" in text
    assert "Wrong-Horse-77" not in text and "secret" not in text


def test_a_five_megabyte_message_comes_back_byte_for_byte(pop3):
    line = b"A" * 70 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + b"." + line + line * (5 * 1024 * 1024 // len(line) - 2)
    # after the fixture's two by more than the file system's clock tick (mtime orders
    # the maildrop; two files written within one tick are ordered by name)
    time.sleep(0.05)
    put_mail(pop3, "alice", body)
    p = login(pop3)
    n, _ = p.stat()
    assert p.list(n) == b"+OK %d %d" % (n, len(body))
    _, lines, _ = p.retr(n)
    assert b"\r\n".join(lines) + b"\r\n" == body
    p.quit()


def test_one_session_per_mailbox_across_two_servers(server):
    """Two `listmgr serve` on one database and data dir: the mailbox lock holds across them."""
    first = server(**FAST)
    add_user(first, "alice", "secret")
    second = server(**FAST)
    a = login(first)
    b = pop(second)
    b.user("alice")
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        b.pass_("secret")
    a.quit()
    b.user("alice")
    assert b.pass_("secret").startswith(b"+OK")
    b.quit()
