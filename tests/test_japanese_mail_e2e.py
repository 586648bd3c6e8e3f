"""A site set to `ja`, over SMTP to a running server: what comes back at the smarthost sink
is Japanese throughout (command results and refusals, confirmation, welcome, owner notices,
a held post's notice, returned mail), and with `[mail] japanese_charset = "iso-2022-jp"`
every one of them is ISO-2022-JP (7bit) and decodes back to the same Japanese.
"""

from __future__ import annotations

import re
import smtplib

import pytest

from listmgr.store import lists as repo
from tests.japanese_audit import assert_japanese

TARO = "taro@example.net"
OWNER = "owner@example.com"
GONE = "gone@example.net"
REMOTE = "550 5.1.1 <gone@example.net>... User unknown"


class JaSite:
    def __init__(self, srv, sink):
        self.srv, self.sink = srv, sink

    def send(self, body: str, *, frm: str = TARO, to: str = "majordomo@example.org",
             subject: str = "コマンド", expect: int = 1, reply: bool = True) -> list:
        with self.sink.lock:
            before = len(self.sink.received)
        from email.header import Header
        data = (f"From: {frm}\r\nTo: {to}\r\nSubject: {Header(subject, 'utf-8').encode()}\r\n"
                "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n" + body.replace("\n", "\r\n"))
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port, timeout=10) as c:
            c.sendmail(frm, [to], data.encode())
        def done(rs) -> bool:  # as many as expected, the command results among them
            new = rs[before:]
            return len(new) >= expect and (not reply or to != "majordomo@example.org" or any(
                str(r.message["Subject"]).startswith("Majordomo 処理結果") for r in new))
        return [r.message for r in self.sink.wait_for(done)[before:]]


def texts_of(msg) -> list[tuple[str, str]]:
    """(charset, decoded text) of each text/plain part we wrote (not quoted originals)."""
    out = []
    for part in msg.walk():
        if part.get_content_type() == "message/rfc822":
            break  # the attached original and everything after it is someone else's
        if part.get_content_type() == "text/plain":
            out.append((part.get_content_charset() or "us-ascii",
                        part.get_content().replace("\r\n", "\n")))
    return out


def check(msg, charset: str, *, data=(), what: str = "") -> str:
    """The mail's own text, checked Japanese; with iso-2022-jp, checked sent as such."""
    parts = texts_of(msg)
    assert parts, f"{what}: no text part"
    cs, text = parts[0]
    if charset == "iso-2022-jp":
        assert cs == "iso-2022-jp", f"{what}: sent as {cs}"
        raw_subject = next(v for k, v in msg.raw_items() if k.lower() == "subject")
        assert raw_subject.isascii()
        if not str(msg["Subject"]).isascii():  # a Japanese Subject: ISO-2022-JP words
            assert "=?iso-2022-jp?" in raw_subject.lower(), f"{what}: {raw_subject}"
        own_part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
        assert own_part.get("Content-Transfer-Encoding", "7bit").lower() == "7bit"
    else:
        assert cs in ("utf-8", "us-ascii"), f"{what}: sent as {cs}"
    # what the requester typed comes back echoed after ">>>> ": theirs, not ours
    # and the SMTP dialogue a returned mail quotes (">>> RCPT To:", "<<< 550 ...") is the wire's
    own = "\n".join(ln for ln in text.split("\n") if not ln.startswith((">>>> ", ">>> ", "<<< ")))
    own = own.split("\n----- 保留された投稿 -----")[0]  # a held post follows its notice
    assert_japanese(own, what=what or str(msg["Subject"]), data=("nihon", *data))
    return text


@pytest.mark.parametrize("charset", ["utf-8", "iso-2022-jp"])
def test_a_japanese_site_answers_in_japanese_throughout(server, sink, charset):
    srv = server(language="ja", mail__japanese_charset=charset, commands__replies_per_hour=500)
    srv.call(lambda s: repo.create_list(s, "nihon", [OWNER], password="s3cret",
                                        description="日本語のリスト"))

    def setup(s):
        ml = repo.get_list(s, "nihon")
        ml.info = "日本語で話すためのリストです。"
        ml.post_policy = "members"
    srv.call(setup)
    site = JaSite(srv, sink)
    sink.rules[GONE] = REMOTE

    # the owner replaces the info text; its date is said in Japanese, with and without
    # date_info (the date goes into the text, or after it)
    for date_info in (True, False):
        srv.call(lambda s: setattr(repo.get_list(s, "nihon"), "date_info", date_info))
        [reply] = site.send("newinfo nihon s3cret\n新しい案内です。\nEOF", frm=OWNER)
        check(reply, charset, what="newinfo", data=("s3cret",))
        [reply] = site.send("info nihon")
        text = check(reply, charset, what="info with its date")
        assert "[最終更新" in text and "新しい案内です。" in text

    # Every command a person sends, and the refusals, in one mail each.
    for body in ("help", "lists", "info nihon", "intro nihon", "which", "who nihon",
                 "index nihon", "get nihon nofile.txt", "set nihon digest",
                 "set nihon bogus", "frobnicate", "subscribe nihon Bob <bob>",
                 "subscribe nihon taro@", "approve wrong subscribe nihon x@example.net",
                 "config nihon wrong", "passwd nihon wrong new", "unsubscribe nihon",
                 "auth 0123456789abcdef0123456789abcdef subscribe nihon " + TARO,
                 "accept 0123456789abcdef0123456789abcdef", "mkdigest nihon wrong",
                 "newconfig nihon wrong\nEOF", "writeconfig nihon wrong", "intro nosuch",
                 "newlist", "end"):
        # a refused auth key brings a new confirmation with the reply
        got = site.send(body, expect=2 if body.startswith("auth") else 1)
        [reply] = [m for m in got if m["Subject"].startswith("Majordomo 処理結果")]
        for m in got:
            check(m, charset, what=body, data=(*body.split(), "nofile", "bogus", "wrong",
                                               "frobnicate", "Bob"))

    # subscribe: the reply and the confirmation; accept: the reply, the welcome and the
    # owner's notice.
    got = site.send("subscribe nihon", expect=2)
    [confirm] = [m for m in got if "処理結果" not in m["Subject"]]
    text = check(confirm, charset, what="confirmation")
    assert "7日以内に" in text
    key = re.search(r"accept ([0-9a-f]{32})", text).group(1)
    got = site.send(f"accept {key}", expect=3)
    for m in got:
        check(m, charset, what=str(m["Subject"]), data=(key,))
    welcome = [m for m in got if TARO in str(m["To"]) and "処理結果" not in m["Subject"]]
    assert welcome and "ようこそ" in welcome[0]["Subject"]

    # a post from a non-member is held: the moderator's notice
    got = site.send("会議は明日です。\n", frm="hanako@example.net",
                    to="nihon@example.org", subject="会議", expect=1)
    [held] = [m for m in got if m["To"] == OWNER] or sink.wait_for(
        lambda rs: any(r.message["To"] == OWNER for r in rs[-3:]))[-1:]
    assert held["Subject"].startswith("BOUNCE nihon@example.org: Non-member submission")
    check(held, charset, what="held post", data=("hanako@example.net", "会議は明日です。"))

    # a bounce to the list's bounce address naming no member: the owners' notice
    from tests.test_bounces_e2e import dsn as bounce_of, send_raw
    with sink.lock:
        before = len(sink.received)
    send_raw(srv, "", "owner-nihon@example.org",
             bounce_of("owner-nihon@example.org", "stranger@nowhere.example"))
    got = sink.wait_for(lambda rs: any(r.message["To"] == OWNER and "BOUNCE" in
                                       str(r.message["Subject"]) for r in rs[before:]))
    [notice] = [r.message for r in got[before:] if "BOUNCE" in str(r.message["Subject"])]
    text = check(notice, charset, what="unrecognised bounce")
    assert "リストのメンバーではないアドレス" in text

    # the reply to a requester whose address bounces: returned mail, Japanese text,
    # Subject as the help page names it, the RFC 3464 part as it is
    got = site.send("lists", frm=GONE, expect=1, reply=False)
    dsn = [m for m in got if m["Subject"] == "Returned mail: User unknown"]
    if not dsn:
        got = sink.wait_for(lambda rs: any(r.message["Subject"] == "Returned mail: User unknown"
                                           for r in rs))
        dsn = [r.message for r in got if r.message["Subject"] == "Returned mail: User unknown"]
    [returned] = dsn[:1]
    assert returned.get_content_type() == "multipart/report"
    check(returned, charset, what="returned mail", data=(REMOTE, "localhost", "127.0.0.1"))
    status = [p for p in returned.walk() if p.get_content_type() == "message/delivery-status"]
    assert status


@pytest.mark.parametrize("charset", ["utf-8", "iso-2022-jp"])
def test_bounce_notices_to_the_member_and_the_owners_in_japanese(server, sink, charset):
    """A member's copy bounces: she is told in Japanese how to turn delivery back on (the
    interval said as 7日), the owners why her delivery stopped; her accept is answered."""
    from tests.test_bounces_e2e import ALICE, dsn as bounce_of, send_raw
    from tests.test_posting_e2e import OWNER as LIST_OWNER, STRANGER, post_text, send, \
        setup_list, wait_list_copies
    srv = server(language="ja", mail__japanese_charset=charset, bounces__check_interval="1s")
    setup_list(srv, post_policy="open", bounce_score_threshold="1.0")
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    [copy] = [c for c in wait_list_copies(sink, 3) if c.rcpt_tos == [ALICE]]
    send_raw(srv, "", copy.mail_from, bounce_of(copy.mail_from, ALICE))

    def arrived(rcpt, word):
        got = sink.wait_for(lambda rs: any(rcpt in r.rcpt_tos and word in
                                           str(r.message["Subject"]) for r in rs))
        return [r.message for r in got if rcpt in r.rcpt_tos
                and word in str(r.message["Subject"])][0]
    remote = "550 5.1.1 <alice@example.com>: Recipient address rejected"
    notice = arrived(ALICE, "配送を停止")
    text = check(notice, charset, what="member's bounce notice", data=("demo", remote))
    assert "7日ごとに" in text or "7日以内に" in text
    owners = arrived(LIST_OWNER, "BOUNCES")
    check(owners, charset, what="owners' bounce notice", data=("demo", remote))

    key = re.search(r"accept ([0-9a-f]{32})", text).group(1)
    send(srv, ALICE, "majordomo@example.org",
         f"From: {ALICE}\nTo: majordomo@example.org\nSubject: x\n\naccept {key}\n")
    reply = arrived(ALICE, "Majordomo 処理結果")
    assert "配送を再開しました" in check(reply, charset, what="re-enabled",
                                         data=("demo", key))
