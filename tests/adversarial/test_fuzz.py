"""A bounded fuzz run (hypothesis) over SMTP sessions and command mails: whatever arrives,
the server answers with well-formed replies and never meets an internal error.

Bounded for CI: a fixed number of examples per run (LISTMGR_FUZZ_EXAMPLES, default 40),
no per-example deadline (the machine may be loaded).
"""

from __future__ import annotations

import logging
import os
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.commands_helpers import cmd_app, mailer  # noqa: F401  (fixtures)
from tests.commands_helpers import make_list
from tests.test_smtp_protocol import Raw, ingress  # noqa: F401  (fixtures)

EXAMPLES = int(os.environ.get("LISTMGR_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
REPLY = re.compile(r"^[2-5]\d\d[ -]")

# --------------------------------------------------------------------------- SMTP

_ADDR = st.sampled_from(["<a@outside.example>", "<postmaster@example.org>", "<>",
                         "<demo@example.org>", '<"x y"@example.org>', "<a@b@c>",
                         "<" + "a" * 70 + "@example.org>", "<a@[127.0.0.1]>",
                         "<ｄｅｍｏ@example.org>", "<a%b@example.org>", "<\x00@x>", ""])
_PARAM = st.sampled_from(["", " SIZE=100", " SIZE=99999999999999999999", " BODY=8BITMIME",
                          " SMTPUTF8", " FOO=BAR", " SIZE=-1"])
_BODY = st.one_of(
    st.binary(max_size=300).map(lambda b: b.replace(b"\r\n.\r\n", b"")),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")
                              .replace(b"\r\n.\r\n", b"")),
    st.sampled_from([b"Subject: x\r\n\r\nhi", b"\r\n", b"Content-Type: multipart/mixed; "
                     b"boundary=z\r\n\r\n--z\r\n--z\r\n--z--", b"From: " + b"a" * 5000]),
)


@st.composite
def _command(draw):
    kind = draw(st.sampled_from(["EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP",
                                 "VRFY", "HELP", "STARTTLS", "AUTH", "junk", "long"]))
    if kind in ("EHLO", "HELO"):
        return f"{kind} {draw(st.sampled_from(['client.example', '', '[1.2.3.4]', 'x' * 300]))}"
    if kind == "MAIL":
        return f"MAIL FROM:{draw(_ADDR)}{draw(_PARAM)}"
    if kind == "RCPT":
        return f"RCPT TO:{draw(_ADDR)}"
    if kind == "AUTH":
        return draw(st.sampled_from(["AUTH PLAIN", "AUTH PLAIN AGFsaWNlAHB3", "AUTH LOGIN"]))
    if kind == "junk":
        return draw(st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=40))
    if kind == "long":
        return "NOOP " + "x" * draw(st.integers(500, 3000))
    return kind


@FUZZ
@given(commands=st.lists(_command(), min_size=1, max_size=12), body=_BODY)
def test_smtp_sessions(ingress, caplog, commands, body):
    srv = _one_server(ingress)  # one server for all examples of this test
    caplog.set_level(logging.ERROR, logger="listmgr")
    caplog.clear()
    r = Raw(srv.smtp_port)
    try:
        for cmd in commands:
            reply = r.cmd(cmd.encode("utf-8", "surrogatepass"))
            assert REPLY.match(reply), (cmd, reply)
            assert not reply.startswith("451 4.3.0"), (cmd, reply)
            if reply.startswith("354"):
                reply = r.cmd(body + b"\r\n.")
                assert REPLY.match(reply), reply
                assert not reply.startswith("451 4.3.0"), reply
            if reply.startswith("221") or reply.startswith("421"):
                break
    except (EOFError, ConnectionError):
        pass  # the server may close a session (421, too many errors): never a crash
    finally:
        r.close()
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert errors == [], [rec.getMessage() for rec in errors]


_servers: dict[int, object] = {}


def _one_server(ingress):
    key = id(ingress)
    if key not in _servers:
        _servers.clear()
        _servers[key] = ingress()
    return _servers[key]


# --------------------------------------------------------------------------- command mail

_WORDS = ["subscribe", "unsubscribe", "which", "who", "info", "intro", "lists", "help",
          "index", "get", "config", "newconfig", "writeconfig", "passwd", "approve", "auth",
          "accept", "reject", "newinfo", "newintro", "end", "ｓｕｂｓｃｒｉｂｅ", "mkdigest",
          "demo", "ｄｅｍｏ", "nolist", "s3cret", "wrong", "maxlength", "=", "EOF", "<<",
          "99999999999999999999999", "-", "\\", "a@example.com", '"lista"@example.org',
          "demo@example.org", "../../etc/passwd", "\u3000"]
_LINE = st.one_of(
    st.lists(st.sampled_from(_WORDS), min_size=1, max_size=5).map(" ".join),
    st.text(max_size=60).map(lambda t: t.replace("\r", " ").replace("\n", " ")),
)
_FROM = st.sampled_from(["joe@example.net", "Joe <joe@example.net>", "=?utf-8?B?IkEgQiJAeC55?=",
                         "=?iso-2022-jp?B?GyRCOzNFRBsoQiA8eWFtYWRhQGV4YW1wbGUuanA+?=",
                         '"a b"@example.net', "", "<>", "x" * 400])


@FUZZ
@given(lines=st.lists(_LINE, min_size=1, max_size=15), frm=_FROM,
       subject=st.text(max_size=40).map(lambda t: t.replace("\r", " ").replace("\n", " ")))
def test_command_mails(mailer, lines, frm, subject):
    if not getattr(mailer.app, "_fuzz_list", False):
        make_list(mailer.app, "demo", subscribe_policy="open")
        mailer.app._fuzz_list = True
    out = mailer.send("\n".join(lines) + "\n", frm=frm or "joe@example.net", subject=subject,
                      mail_from="joe@example.net")
    for sent in out.sent:
        body = sent.message.get_body(("plain",))
        text = body.get_content() if body is not None else ""
        assert "Sorry, an error has occurred" not in text, text
