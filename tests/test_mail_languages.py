"""A list set to `ja` answers in Japanese throughout: majordomo@ results about it, its
confirmations (durations in Japanese), and the reasons an address is refused."""

from __future__ import annotations

from listmgr.config import format_duration
from tests.commands_helpers import cmd_app, mailer, make_list  # noqa: F401

JOE = "joe@example.net"


def test_durations_in_both_languages():
    assert format_duration(7 * 86400) == "7 days"
    assert format_duration(7 * 86400, "ja") == "7 日"
    assert format_duration(3600, "ja") == "1 時間"
    assert format_duration(90, "ja") == "90 秒"
    assert format_duration(60) == "1 minute"


def test_majordomo_answers_in_the_language_of_the_list_it_is_about(mailer):
    make_list(mailer.app, "nihon", language="ja")
    out = mailer.send("subscribe nihon", frm=JOE)
    assert out.reply.subject.startswith("Majordomo 処理結果")
    [confirm] = out.to(JOE)[:1] if out.to(JOE)[0] is not out.reply else out.to(JOE)[1:2]
    body = confirm.body
    assert "7 日 以内" in body and "days" not in body


def test_refused_addresses_are_explained_in_japanese(mailer):
    make_list(mailer.app, "nihon", language="ja")
    out = mailer.send("subscribe nihon Bob <bob>", frm=JOE)
    assert "完全なインターネットアドレスではありません" in out.text
    assert "is not a complete Internet address" not in out.text
    out = mailer.send("subscribe nihon a@example.com, b@example.com", frm=JOE)
    assert "1つのインターネットアドレスではありません" in out.text


def test_lists_in_two_languages_get_the_site_language(mailer):
    make_list(mailer.app, "nihon", language="ja")
    make_list(mailer.app, "demo")
    out = mailer.send("info nihon\ninfo demo", frm=JOE)
    assert out.reply.subject.startswith("Majordomo results")
    out = mailer.send("info demo", frm=JOE)
    assert out.reply.subject.startswith("Majordomo results")
    out = mailer.send("info nihon", frm=JOE)
    assert out.reply.subject.startswith("Majordomo 処理結果")
