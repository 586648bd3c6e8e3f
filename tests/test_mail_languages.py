"""A list set to `ja` answers in Japanese throughout: majordomo@ results about it, its
confirmations (durations in Japanese), and the reasons an address is refused."""

from __future__ import annotations

from listmgr.config import format_duration
from tests.commands_helpers import cmd_app, mailer, make_list  # noqa: F401

JOE = "joe@example.net"


def test_durations_in_both_languages():
    assert format_duration(7 * 86400) == "7 days"
    assert format_duration(7 * 86400, "ja") == "7日"
    assert format_duration(3600, "ja") == "1時間"
    assert format_duration(90, "ja") == "90秒"
    assert format_duration(60) == "1 minute"


def test_majordomo_answers_in_the_language_of_the_list_it_is_about(mailer):
    make_list(mailer.app, "nihon", language="ja")
    out = mailer.send("subscribe nihon", frm=JOE)
    assert out.reply.subject.startswith("Majordomo 処理結果")
    [confirm] = out.to(JOE)[:1] if out.to(JOE)[0] is not out.reply else out.to(JOE)[1:2]
    body = confirm.body
    assert "7日以内" in body and "days" not in body


def test_refused_addresses_are_explained_in_japanese(mailer):
    make_list(mailer.app, "nihon", language="ja")
    for bad in ("Bob <bob>", "a@example.com, b@example.com", "a(b@example.com"):
        out = mailer.send(f"subscribe nihon {bad}", frm=JOE)
        assert "アドレス" in out.text  # said in Japanese
        assert "Internet address" not in out.text and "parentheses" not in out.text


def test_lists_in_two_languages_get_the_site_language(mailer):
    make_list(mailer.app, "nihon", language="ja")
    make_list(mailer.app, "demo")
    out = mailer.send("info nihon\ninfo demo", frm=JOE)
    assert out.reply.subject.startswith("Majordomo results")
    out = mailer.send("info demo", frm=JOE)
    assert out.reply.subject.startswith("Majordomo results")
    out = mailer.send("info nihon", frm=JOE)
    assert out.reply.subject.startswith("Majordomo 処理結果")


def _jis(sent) -> bool:
    return sent.message.get_content_charset() == "iso-2022-jp" and \
        sent.message["Content-Transfer-Encoding"] == "7bit"


def test_iso_2022_jp_for_japanese_text_only():
    import email
    import email.policy
    from listmgr.mail.compose import new_message, to_bytes
    msg = new_message(from_="a@example.org", to="b@example.net", subject="件名のテスト",
                      body="日本語の本文。\n", domain="example.org", charset="iso-2022-jp")
    raw = to_bytes(msg)
    assert raw.isascii() and b"=?iso-2022-jp?b?" in raw
    back = email.message_from_bytes(raw, policy=email.policy.default)
    assert back["Subject"] == "件名のテスト"
    assert back.get_content().replace("\r\n", "\n") == "日本語の本文。\n"
    assert back.get_content_charset() == "iso-2022-jp"
    # text ISO-2022-JP cannot carry stays UTF-8; ASCII stays ASCII
    emoji = new_message(from_="a@example.org", to="b@example.net", subject="x",
                        body="日本 😀\n", domain="example.org", charset="iso-2022-jp")
    assert emoji.get_content_charset() == "utf-8"
    plain = new_message(from_="a@example.org", to="b@example.net", subject="x",
                        body="hello\n", domain="example.org", charset="iso-2022-jp")
    assert plain.get_content_charset() in ("us-ascii", "utf-8")


def test_a_request_in_iso_2022_jp_is_answered_in_it(mailer):
    make_list(mailer.app, "nihon", language="ja")
    body = "subscribe nihon\n".encode("iso-2022-jp")
    data = (b"From: joe@example.net\r\nTo: majordomo@example.org\r\nSubject: =?iso-2022-jp?b?"
            + __import__("base64").b64encode("登録".encode("iso-2022-jp")) + b"?=\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n"
            b"Content-Transfer-Encoding: 7bit\r\n\r\n" + body)
    out = mailer.raw(data, mail_from=JOE)
    assert out.reply is not None and _jis(out.reply)
    assert "Majordomo 処理結果" in out.reply.subject
    assert all(_jis(m) for m in out.to(JOE))  # the confirmation too
    utf8 = mailer.send("info nihon", frm=JOE)  # a UTF-8 request: a UTF-8 answer
    assert utf8.reply.message.get_content_charset() == "utf-8"


def test_the_site_can_ask_for_iso_2022_jp(tmp_path):
    import pytest as _pytest
    from listmgr.config import ConfigError, from_mapping, japanese_charset
    cfg = from_mapping({"mail": {"japanese_charset": "iso-2022-jp"}})
    assert japanese_charset(cfg) == "iso-2022-jp"
    assert japanese_charset(from_mapping({})) == ""
    assert japanese_charset(from_mapping({}), "ISO-2022-JP") == "iso-2022-jp"
    with _pytest.raises(ConfigError, match="mail.japanese_charset"):
        from_mapping({"mail": {"japanese_charset": "shift_jis"}})
