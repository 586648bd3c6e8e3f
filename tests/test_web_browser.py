"""End to end in a real browser (Debian's Chromium, headless, driven by playwright) against a
real `listmgr serve`: what a person does on the pages, and the mail that follows."""

from __future__ import annotations

import smtplib

import pytest
from sqlalchemy import select

from listmgr.store.models import OutboundMessage
from tests.browser_support import DESKTOP, PHONE, chromium, shoot  # noqa: F401
from tests.pop3_support import add_user

pytestmark = pytest.mark.slow


def _send(srv, subject: str, mail_from: str = "bob@example.net", mid: str = "") -> None:
    mid = mid or subject
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as smtp:
        smtp.sendmail(mail_from, ["alice@example.org"],
                      (f"From: {mail_from}\r\nTo: alice@example.org\r\n"
                       f"Subject: {subject}\r\nMessage-ID: <{mid}@example.net>\r\n\r\n"
                       "Hello Alice\r\n").encode())


def _autoreplies(srv) -> int:
    return srv.call(lambda s: len(s.scalars(select(OutboundMessage).where(
        OutboundMessage.origin == "autoreply")).all()))


def test_user_turns_the_autoresponder_on_in_the_browser(server, sink, chromium, tmp_path):
    srv = server()
    add_user(srv, "alice", "alice-secret")
    for n, subject in enumerate(("Minutes of Tuesday", "Re: 来週の打ち合わせ")):
        _send(srv, subject, mail_from="carol@example.net", mid=f"c{n}")
    srv.wait_idle()
    base = f"http://127.0.0.1:{srv.ports['web']}"
    shots = tmp_path / "shots"
    context = chromium.new_context(viewport=DESKTOP, locale="en-US")
    page = context.new_page()
    page.goto(base + "/personal/")
    shoot(page, shots, "personal-login-en")
    page.fill("input[name=user]", "alice")
    page.fill("input[name=password]", "alice-secret")
    page.click("button[type=submit]")
    page.wait_for_selector("#autoreply")
    page.check("input[name=enabled]")
    page.fill("input[name=subject]", "Out of office / 不在のお知らせ")
    page.fill("textarea[name=body]", "I am away until Monday.\n月曜日に戻ります。")
    page.fill("input[name=interval]", "2")
    page.click("#autoreply button[type=submit]")
    page.wait_for_selector(".flash")
    assert "The auto-responder settings were saved." in page.inner_text(".flash")
    assert page.input_value("textarea[name=body]") == \
        "I am away until Monday.\n月曜日に戻ります。"
    shoot(page, shots, "personal-en")
    page.set_viewport_size(PHONE)
    shoot(page, shots, "personal-phone-en")
    page.click("button[name=lang][value=ja]")
    page.wait_for_selector("html[lang=ja]")
    assert "自動応答" in page.inner_text("h2")
    shoot(page, shots, "personal-phone-ja")
    page.set_viewport_size(DESKTOP)
    shoot(page, shots, "personal-ja")
    context.close()

    _send(srv, "first")
    [reply] = sink.wait_for(lambda got: any("bob@example.net" in m.rcpt_tos for m in got))
    assert reply.mail_from in ("", "<>")  # the null sender
    msg = reply.message
    assert msg["Subject"] == "Out of office / 不在のお知らせ"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["In-Reply-To"] == "<first@example.net>"
    assert "月曜日に戻ります。" in msg.get_content()
    _send(srv, "second")
    srv.wait_idle()
    assert _autoreplies(srv) == 1  # the same sender within 2 days: no second reply
    assert len(sink.to("bob@example.net")) == 1


def test_owner_approves_a_held_post_in_the_browser(server, sink, chromium, tmp_path):
    from tests.test_posting_e2e import MEMBERS, STRANGER, post_text, send, setup_list
    srv = server()
    setup_list(srv, description="Demo list / デモ用リスト")
    send(srv, STRANGER, "demo@example.org",
         post_text(STRANGER, subject="Meeting on Friday / 金曜の会議",
                   body="<b>Hello</b> everyone,\nthe meeting moves to 3pm.\n"))
    srv.wait_idle()
    base = f"http://127.0.0.1:{srv.ports['web']}"
    shots = tmp_path / "shots"
    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(base + "/lists/demo/admin/")
    page.fill("input[name=password]", "s3cret")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Meeting on Friday")
    shoot(page, shots, "owner-held-en")
    page.click("text=Meeting on Friday")
    page.wait_for_selector("pre.mail")
    assert "<b>Hello</b> everyone," in page.inner_text("pre.mail")  # shown as text
    shoot(page, shots, "owner-held-post-en")
    page.set_viewport_size(PHONE)
    page.click("button[name=lang][value=ja]")
    page.wait_for_selector("html[lang=ja]")
    shoot(page, shots, "owner-held-post-phone-ja")
    page.set_viewport_size(DESKTOP)
    shoot(page, shots, "owner-held-post-ja")
    page.click("button[name=action][value=approve]")
    page.wait_for_selector(".flash")
    assert "承認" in page.inner_text(".flash")
    shoot(page, shots, "owner-held-after-ja")
    context.close()
    got = sink.wait_for(lambda got: sum(len(m.rcpt_tos) for m in got if m.message["List-Id"])
                        >= len(MEMBERS))
    assert sorted(r for m in got if m.message["List-Id"] for r in m.rcpt_tos) == \
        sorted(MEMBERS)


def test_member_unsubscribes_from_the_link_in_the_browser(server, chromium, tmp_path):
    from tests.test_web_unsubscribe import _setup, link_for, members
    srv = server(web__base_url="https://lists.example.org")
    _setup(srv, announcements=False)
    url = f"http://127.0.0.1:{srv.ports['web']}" + link_for(srv, "alice@example.net")
    context = chromium.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(url)
    shoot(page, tmp_path / "shots", "unsubscribe-phone-en")
    assert members(srv) == ["alice@example.net", "bob@example.net"]
    page.click("button[type=submit]")
    page.wait_for_selector("text=Unsubscribed")
    shoot(page, tmp_path / "shots", "unsubscribed-phone-en")
    assert context.cookies() == []  # no cookie was ever set
    context.close()
    assert members(srv) == ["bob@example.net"]
