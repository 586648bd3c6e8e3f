"""The POP3 state machine alone: commands in, replies and effects out (no sockets)."""

from __future__ import annotations

from dataclasses import dataclass

from listmgr.pop3 import protocol
from listmgr.pop3.protocol import Login, Reply, Retrieve, Session, StartTLS, Update, payload


@dataclass(frozen=True)
class E:
    uid: str
    size: int


def logged_in(n: int = 3) -> Session:
    s = Session(hostname="mail.example.org")
    s.handle(b"USER alice\r\n")
    eff = s.handle(b"PASS secret\r\n")
    assert eff == Login("alice", "secret")
    s.login_ok([E(f"u{i}", 10 * i) for i in range(1, n + 1)])
    return s


def text(r) -> str:
    assert isinstance(r, Reply), r
    return r.text


def test_greeting_and_quit_before_login():
    s = Session(hostname="mail.example.org")
    assert s.greeting().text == "+OK mail.example.org POP3 server ready"
    r = s.handle(b"QUIT\r\n")
    assert r.text.startswith("+OK") and r.close


def test_password_keeps_spaces_and_is_not_in_repr():
    s = Session()
    s.handle(b"USER bob\r\n")
    eff = s.handle(b"PASS two words \r\n")
    assert eff.password == "two words "
    assert "two words" not in repr(eff)


def test_pass_without_user_and_commands_before_login():
    s = Session()
    assert text(s.handle(b"PASS x\r\n")) == "-ERR send USER first"
    for cmd in (b"STAT", b"LIST", b"UIDL", b"RETR 1", b"TOP 1 1", b"DELE 1", b"RSET", b"NOOP"):
        assert text(s.handle(cmd + b"\r\n")) == "-ERR not logged in", cmd


def test_failed_logins_close_after_three():
    s = Session()
    for i in range(3):
        s.handle(b"USER a\r\n")
        assert isinstance(s.handle(b"PASS b\r\n"), Login)
        r = s.login_failed("auth")
        assert r.text.startswith("-ERR [AUTH]")
        assert r.close == (i == 2)
    assert s.login_failed("in-use").text.startswith("-ERR [IN-USE]")


def test_stat_list_uidl_and_dele_rset():
    s = logged_in()
    assert text(s.handle(b"STAT\r\n")) == "+OK 3 60"
    r = s.handle(b"LIST\r\n")
    assert r.lines == ("1 10", "2 20", "3 30")
    assert text(s.handle(b"LIST 2\r\n")) == "+OK 2 20"
    assert text(s.handle(b"UIDL 3\r\n")) == "+OK 3 u3"
    assert text(s.handle(b"DELE 2\r\n")) == "+OK message 2 deleted"
    assert text(s.handle(b"DELE 2\r\n")) == "-ERR message 2 already deleted"
    assert text(s.handle(b"LIST 2\r\n")) == "-ERR message 2 already deleted"
    assert s.handle(b"UIDL\r\n").lines == ("1 u1", "3 u3")
    assert text(s.handle(b"STAT\r\n")) == "+OK 2 40"
    assert text(s.handle(b"RSET\r\n")) == "+OK maildrop has 3 messages (60 octets)"
    assert text(s.handle(b"STAT\r\n")) == "+OK 3 60"


def test_bad_message_numbers():
    s = logged_in()
    for arg in (b"0", b"4", b"-1", b"x", b"", b"\xd9\xa1"):
        r = text(s.handle(b"RETR " + arg + b"\r\n"))
        assert r.startswith("-ERR"), arg
    assert text(s.handle(b"TOP 1\r\n")) == "-ERR usage: TOP msg n"
    assert text(s.handle(b"TOP 1 x\r\n")) == "-ERR invalid number of lines"


def test_retr_top_and_quit_effects():
    s = logged_in()
    assert s.handle(b"RETR 1\r\n") == Retrieve(1, E("u1", 10), None)
    assert s.handle(b"top 2 5\r\n") == Retrieve(2, E("u2", 20), 5)
    s.handle(b"DELE 1\r\n")
    s.handle(b"DELE 3\r\n")
    eff = s.handle(b"QUIT\r\n")
    assert eff == Update((E("u1", 10), E("u3", 30)))
    r = s.update_done(0)
    assert r.text == "+OK mail.example.org POP3 server signing off (1 message left)"
    assert r.close
    assert s.update_done(1).text.startswith("-ERR")


def test_unknown_long_and_empty_lines():
    s = Session()
    assert text(s.handle(b"FOO\r\n")).startswith("-ERR unknown command")
    assert text(s.handle(b"\r\n")) == "-ERR empty command"
    assert text(s.handle(b"USER " + b"a" * 300 + b"\r\n")) == "-ERR command line too long"
    assert text(s.handle(b"APOP a b\r\n")).startswith("-ERR")
    assert text(s.handle(b"\x00\x01\r\n")).startswith("-ERR")


def test_capa_reflects_state_and_tls():
    s = Session(tls_available=True)
    caps = s.handle(b"CAPA\r\n").lines
    assert {"TOP", "UIDL", "USER", "STLS", "RESP-CODES", "AUTH-RESP-CODE"} <= set(caps)
    s = Session(tls_available=True, require_tls=True)
    assert "USER" not in s.handle(b"CAPA\r\n").lines
    assert text(s.handle(b"USER a\r\n")).startswith("-ERR [AUTH]")
    eff = s.handle(b"STLS\r\n")
    assert isinstance(eff, StartTLS) and eff.reply.text.startswith("+OK")
    s.tls_started()
    caps = s.handle(b"CAPA\r\n").lines
    assert "USER" in caps and "STLS" not in caps
    assert text(s.handle(b"STLS\r\n")) == "-ERR TLS is already active"
    assert text(Session().handle(b"STLS\r\n")) == "-ERR STLS not available"
    assert "STLS" not in logged_in().handle(b"CAPA\r\n").lines


def test_stls_forgets_user():
    s = Session(tls_available=True)
    s.handle(b"USER a\r\n")
    s.handle(b"STLS\r\n")
    s.tls_started()
    assert text(s.handle(b"PASS x\r\n")) == "-ERR send USER first"


def test_payload_stuffs_dots_and_uses_crlf():
    data = b"Subject: x\n.hidden: no\n\n.\n..two\nplain\r\nend"
    assert payload(data) == (b"Subject: x\r\n..hidden: no\r\n\r\n..\r\n...two\r\nplain\r\n"
                             b"end\r\n.\r\n")


def test_payload_top():
    data = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n"
    assert payload(data, 0) == b"A: 1\r\nB: 2\r\n\r\n.\r\n"
    assert payload(data, 2) == b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n.\r\n"
    assert payload(data, 99) == payload(data)
    assert payload(b"A: 1\r\n", 3) == b"A: 1\r\n.\r\n"


def test_multiline_reply_is_stuffed():
    assert protocol.ok("x", [".a", "b"]).encode() == b"+OK x\r\n..a\r\nb\r\n.\r\n"


def test_timeout_reply_closes():
    r = logged_in().timed_out()
    assert r.close and r.text.startswith("-ERR")


from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans())
def test_any_input_gets_a_reply_never_an_exception(lines, login_first):
    s = logged_in() if login_first else Session(tls_available=True)
    for line in lines:
        r = s.handle(line + b"\r\n")
        if isinstance(r, Reply):
            assert r.text.startswith(("+OK", "-ERR"))
            assert "\r" not in r.text and "\n" not in r.text
            r.encode()
        if isinstance(r, Login):
            s.login_failed("auth")
