"""The command parser, pure: Majordomo's line rules and body decoding."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from listmgr.commands import registry
from listmgr.commands.parser import body_from_bytes, decode_bytes, html_to_text, parse

KNOWN = registry.known()


def p(text, multipart=False, **kw):
    return parse(text, multipart=multipart, known=KNOWN, data_commands=registry.DATA_COMMANDS,
                 **kw)


def kinds(lines):
    return [(ln.kind, ln.name) for ln in lines]


def test_commands_are_case_insensitive_and_args_keep_case():
    [ln] = p("SUBSCRIBE Demo Joe@Example.COM\n")
    assert (ln.kind, ln.name, ln.args) == ("command", "subscribe", ("Demo", "Joe@Example.COM"))
    assert ln.echo == "SUBSCRIBE Demo Joe@Example.COM"


def test_continuation_joins_with_leading_whitespace():
    [ln] = p("SUBSCRIBE CLOSED\\\n  pal@x.example\n")
    assert ln.echo == "SUBSCRIBE CLOSED   pal@x.example"
    assert ln.args == ("CLOSED", "pal@x.example")


def test_blank_and_comment_lines_are_echoed_not_counted():
    lines = p("\n# a comment\n   \nlists\n")
    assert kinds(lines) == [("blank", ""), ("blank", ""), ("blank", ""), ("command", "lists")]
    assert [ln.echo for ln in lines] == ["", "# a comment", "   ", "lists"]


def test_end_stops():
    assert kinds(p("lists\nend\nwho x\n")) == [("command", "lists"), ("end", "end")]


def test_dash_line_stops_unless_multipart():
    assert kinds(p("lists\n-- \nJoe\n")) == [("command", "lists"), ("stop", "--")]
    assert kinds(p("lists\n-----Original Message-----\nwho\n")) == [
        ("command", "lists"), ("stop", "-----original")]
    assert kinds(p("lists\n--\nwho x\n", multipart=True)) == [
        ("command", "lists"), ("unknown", "--"), ("command", "who")]


def test_unknown_command_quotes_lower_case_first_word():
    [ln] = p("Foo Bar baz\n")
    assert (ln.kind, ln.name, ln.echo) == ("unknown", "foo", "Foo Bar baz")


def test_backslash_space_protects_a_space():
    [ln] = p("subscribe demo Joe\\ Doe <joe@x.example>\n")
    assert ln.args == ("demo", "Joe Doe", "<joe@x.example>")


def test_data_commands_read_up_to_eof_unechoed():
    lines = p("newinfo demo pw\nline one\n  line two\nEOF\nlists\n")
    assert kinds(lines) == [("command", "newinfo"), ("command", "lists")]
    assert lines[0].data == ("line one", "  line two")


def test_data_runs_to_end_of_message_without_eof():
    [ln] = p("newconfig demo pw\na = b\n")
    assert ln.data == ("a = b",)


def test_eof_must_be_exact():
    [ln] = p("newintro demo pw\n EOF\nEOF \nend\n")
    assert ln.data == (" EOF", "EOF ", "end")


def test_uuencode_attachment_stops():
    assert kinds(p("lists\nbegin 644 file.txt\nwho\n")) == [
        ("command", "lists"), ("attachment", "")]


def test_full_width_spaces_and_letters():
    [ln] = p("subscribe\u3000demo\u3000joe@x.example\n")
    assert (ln.name, ln.args) == ("subscribe", ("demo", "joe@x.example"))
    [ln] = p("ＬＩＳＴＳ\n")
    assert (ln.kind, ln.name) == ("command", "lists")


def test_ten_unrecognised_lines_then_a_summary():
    sig = "\n".join(f"signature line {i}" for i in range(15))
    lines = p("lists\n" + sig + "\n\nmore text\n")
    assert [ln.kind for ln in lines].count("unknown") == 10
    assert lines[-1].kind == "discarded"
    assert lines[-1].count == 6  # 5 signature lines + "more text"


def test_command_limit():
    lines = p("lists\n" * 5, max_commands=3)
    assert [ln.kind for ln in lines] == ["command"] * 3 + ["toomany"]
    assert lines[-1].count == 2


# --------------------------------------------------------------------------- bodies

def mail(headers: str, body: bytes) -> bytes:
    return headers.replace("\n", "\r\n").encode() + b"\r\n" + body


def test_quoted_printable_utf8():
    b = body_from_bytes(mail("From: a@b.example\nContent-Type: text/plain; charset=utf-8\n"
                             "Content-Transfer-Encoding: quoted-printable\n",
                             b"subscribe demo=\r\n\r\nwho d=C3=A9mo\r\n"))
    assert b.text.splitlines() == ["subscribe demo", "who démo"]
    assert not b.multipart


def test_base64_iso_2022_jp():
    text = "リスト\nlists\n"
    raw = base64.b64encode(text.encode("iso2022_jp"))
    b = body_from_bytes(mail("From: a@b.example\nMIME-Version: 1.0\nContent-Type: text/plain;"
                             " charset=ISO-2022-JP\nContent-Transfer-Encoding: base64\n", raw))
    assert b.text.splitlines() == ["リスト", "lists"]


def test_shift_jis_and_euc_jp_8bit():
    for charset, codec in (("Shift_JIS", "cp932"), ("EUC-JP", "euc_jp")):
        raw = "lists\u3000\nこんにちは\n".encode(codec)
        b = body_from_bytes(mail(f"From: a@b.example\nContent-Type: text/plain; "
                                 f"charset={charset}\nContent-Transfer-Encoding: 8bit\n", raw))
        assert b.text.splitlines() == ["lists\u3000", "こんにちは"], charset


def test_undeclared_iso_2022_jp_is_recognised():
    assert decode_bytes("こんにちは".encode("iso2022_jp"), None) == "こんにちは"


def test_unknown_charset_falls_back():
    assert decode_bytes(b"lists", "x-no-such-charset") == "lists"


def test_multipart_reads_first_text_plain_part():
    body = (b"--XX\r\nContent-Type: text/html\r\n\r\n<p>help</p>\r\n"
            b"--XX\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nlists\r\n--\r\nsig\r\n"
            b"--XX\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nwho\r\n"
            b"--XX--\r\n")
    b = body_from_bytes(mail("From: a@b.example\nMIME-Version: 1.0\n"
                             "Content-Type: multipart/alternative; boundary=XX\n", body))
    assert b.multipart
    assert b.text.splitlines() == ["lists", "--", "sig"]


def test_html_only_mail_is_read_as_text():
    body = b"<html><head><style>p{}</style></head><body><p>lists</p><div>who&nbsp;demo</div>" \
           b"<br>end</body></html>"
    b = body_from_bytes(mail("From: a@b.example\nContent-Type: text/html\n", body))
    assert b.text.splitlines() == ["lists", "who demo", "end"]
    assert html_to_text("<p>a<br>b</p>") == "a\nb"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_no_bytes_crash_the_parser(data):
    b = body_from_bytes(data)
    p(b.text, multipart=b.multipart)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=500))
def test_no_text_crashes_the_line_parser(text):
    lines = p(text)
    assert all(ln.kind in {"blank", "command", "unknown", "end", "stop", "attachment",
                           "discarded", "toomany"} for ln in lines)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["multipart/mixed; boundary=b", "text/plain; charset=iso-2022-jp",
                        "text/html; charset=shift_jis", "text/plain; charset=\"\x00\""]),
       st.sampled_from(["base64", "quoted-printable", "8bit", "x-uue"]),
       st.binary(max_size=500))
def test_no_mime_combination_crashes(ctype, cte, payload):
    data = mail(f"From: a@b.example\nContent-Type: {ctype}\nContent-Transfer-Encoding: {cte}\n",
                payload)
    b = body_from_bytes(data)
    p(b.text, multipart=b.multipart)
