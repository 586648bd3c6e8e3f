"""What munge_from and wrap make of a post (decoration alone, no server)."""

from __future__ import annotations

import email
import itertools
import re
import email.policy
from email.header import decode_header, make_header

from listmgr.posting.decorate import ListInfo, decorate
from listmgr.posting.message import RawMessage

INFO = ListInfo(name="demo", domain="example.org", subject_prefix="[$LIST]")


def run(text: bytes, mitigation: str, info: ListInfo = INFO) -> bytes:
    return decorate(RawMessage.parse(text), info, seq=1, mitigation=mitigation)


def header(data: bytes, name: str) -> str:
    """A field decoded as a standards-following receiver does (RFC 2047 words joined)."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    raw = msg.get(name)
    return str(make_header(decode_header(str(raw)))) if raw is not None else None


def parsed(data: bytes):
    return email.message_from_bytes(data, policy=email.policy.default)


def test_munge_from_puts_the_list_in_from_and_the_poster_in_reply_to():
    out = run(b"From: Alice Smith <alice@reject.example>\r\nTo: demo@example.org\r\n"
              b"Subject: hi\r\n\r\nbody\r\n", "munge_from")
    m = parsed(out)
    assert m["From"].addresses[0].addr_spec == "demo@example.org"
    assert m["From"].addresses[0].display_name == "Alice Smith via demo"
    assert str(m["Reply-To"]) == "Alice Smith <alice@reject.example>"
    assert str(m["X-Original-From"]) == "Alice Smith <alice@reject.example>"
    assert len(m.get_all("From")) == 1
    assert m["Subject"] == "[demo] hi"
    assert out.endswith(b"\r\n\r\nbody\r\n")


def test_munge_without_display_name_shows_the_address():
    out = run(b"From: bob@reject.example\r\nSubject: x\r\n\r\nb\r\n", "munge_from")
    assert header(out, "From") == '"bob@reject.example via demo" <demo@example.org>'


def test_japanese_display_names_survive_munging():
    for raw in (
        # ISO-2022-JP encoded word, as Japanese mail clients send it
        "From: " + make_header([("山田 太郎".encode("iso-2022-jp"), "iso-2022-jp")]).encode()
        + " <taro@reject.example>",
        # UTF-8 base64, and a long name that needs several encoded words
        "From: =?UTF-8?B?" + __import__("base64").b64encode(
            "山田太郎（やまだたろう）株式会社サンプル営業部第二課".encode()).decode()
        + "?= <taro@reject.example>",
    ):
        out = run((raw + "\r\nSubject: =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=\r\n\r\nb\r\n")
                  .encode(), "munge_from")
        name = header(out, "From")
        original = str(make_header(decode_header(raw[6:].rsplit(" <", 1)[0])))
        assert name == f"{original} via demo <demo@example.org>"
        # On the wire: ASCII only, RFC 2047 words of at most 75 characters, lines <= 78.
        head = out.split(b"\r\n\r\n")[0]
        assert head.isascii()
        lines = head.split(b"\r\n")
        start = next(i for i, ln in enumerate(lines) if ln.startswith(b"From:"))
        ours = [lines[start]] + list(itertools.takewhile(
            lambda ln: ln[:1] in (b" ", b"\t"), lines[start + 1:]))
        words = re.findall(rb"=\?[^?]+\?[bBqQ]\?[^?]*\?=", b"\r\n".join(ours))
        assert words and all(len(w) <= 75 for w in words)
        assert all(len(line) <= 78 for line in ours)
        assert "テスト" in header(out, "Subject")
        assert "taro@reject.example" in header(out, "Reply-To")


def test_raw_utf8_from_is_encoded_in_what_we_write():
    out = run("From: 山田 <taro@reject.example>\r\nSubject: x\r\n\r\nb\r\n".encode(),
              "munge_from")
    head = out.split(b"\r\n\r\n")[0]
    assert head.isascii()
    assert header(out, "Reply-To") == "山田 <taro@reject.example>"
    assert header(out, "From") == "山田 via demo <demo@example.org>"


def test_reply_to_of_the_poster_is_kept_and_the_lists_own_gets_the_poster_added():
    post = (b"From: Alice <alice@reject.example>\r\nReply-To: alice-replies@reject.example\r\n"
            b"Subject: x\r\n\r\nb\r\n")
    assert header(run(post, "munge_from"), "Reply-To") == "alice-replies@reject.example"
    listy = ListInfo(name="demo", domain="example.org", reply_to="demo@example.org")
    out = run(post, "munge_from", listy)
    assert [a for _, a in email.utils.getaddresses([header(out, "Reply-To")])] == \
        ["demo@example.org", "alice@reject.example"]
    sender = ListInfo(name="demo", domain="example.org", reply_to="$SENDER")
    assert header(run(post, "munge_from", sender), "Reply-To") == \
        "alice-replies@reject.example"


def test_wrap_attaches_the_post_unchanged():
    post = (b"From: Alice <alice@reject.example>\r\nTo: demo@example.org\r\n"
            b"DKIM-Signature: v=1; d=reject.example; b=xyz\r\nSubject: hi\r\n"
            b"Message-ID: <m1@reject.example>\r\n\r\nbody\r\n")
    out = run(post, "wrap")
    m = parsed(out)
    assert m.get_content_type() == "message/rfc822"
    assert m["From"].addresses[0].addr_spec == "demo@example.org"
    assert m["Subject"] == "[demo] hi"
    assert m["Message-ID"] == "<m1@reject.example>"
    assert "DKIM-Signature" not in m  # the poster's stays inside, with what it signs
    assert out.split(b"\r\n\r\n", 1)[1] == post
    footer = ListInfo(name="demo", domain="example.org", message_footer="-- \nfooter\n")
    m = parsed(run(post, "wrap", footer))
    assert m.get_content_type() == "multipart/mixed"
    kinds = [p.get_content_type() for p in m.iter_parts()]
    assert kinds == ["message/rfc822", "text/plain"]


def test_no_mitigation_without_a_single_from():
    out = run(b"Subject: x\r\n\r\nb\r\n", "munge_from")
    assert b"via demo" not in out and b"X-Original-From" not in out
    out = run(b"From: a@x.example, b@y.example\r\nSubject: x\r\n\r\nb\r\n", "wrap")
    assert b"message/rfc822" not in out


def test_wrap_of_8bit_mail_says_8bit():
    post = "From: 山田 <taro@reject.example>\r\nSubject: x\r\n\r\nこんにちは\r\n".encode()
    m = parsed(run(post, "wrap"))
    assert m.get_content_type() == "message/rfc822"
    assert m["Content-Transfer-Encoding"] == "8bit"


def test_hostile_display_names_never_break_the_header():
    for frm in (b'=?utf-8?q?a=0D=0ABcc:_x?= <a@reject.example>',
                b'"a\\" \x00 b" <a@reject.example>',
                b"x" * 2000 + b" <a@reject.example>",
                b"=?utf-8?q?=00=01?= <a@reject.example>"):
        for mode in ("munge_from", "wrap"):
            out = run(b"From: " + frm + b"\r\nSubject: s\r\n\r\nb\r\n", mode)
            head = out.split(b"\r\n\r\n")[0]
            assert b"\x00" not in head and b"\x01" not in head
            m = parsed(out)
            assert m["From"].addresses[0].addr_spec == "demo@example.org"
            assert len(m["From"].addresses[0].display_name) <= 200 + len(" via demo")
            assert "\n" not in m["From"].addresses[0].display_name
            assert "a@reject.example" in str(m["Reply-To"])
