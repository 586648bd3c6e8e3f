"""Command mail over SMTP to a running `listmgr serve`: a person manages lists by mail alone.

The replies are read where they leave the server: the outbound queue (and, once the
delivery worker runs, the smarthost sink receives the same messages).
"""

from __future__ import annotations

import re
import smtplib
import time

from listmgr.commands.context import SITE_PASSWORD_KEY
from listmgr.passwords import hash_password
from listmgr.store.models import SiteSetting
from tests.commands_helpers import Outcome, last_outbound_id, queued_since

JOE = "joe@example.net"
OWNER = "owner@example.com"


class Session:
    """Send command mails over SMTP and collect what the server queues in answer."""

    def __init__(self, srv):
        self.srv = srv

    def send(self, body: str | bytes, *, frm: str = JOE, to: str = "majordomo@example.org",
             headers: str = "", expect: int = 1) -> Outcome:
        before = last_outbound_id(self.srv.app)
        if isinstance(body, str):
            data = (f"From: {frm}\r\nTo: {to}\r\nSubject: cmds\r\n{headers}\r\n"
                    + body.replace("\n", "\r\n")).encode()
        else:
            data = body
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port, timeout=10) as c:
            c.sendmail(frm, [to], data)
        deadline = time.monotonic() + 20
        while True:
            self.srv.wait_idle()
            out = queued_since(self.srv.app, before)
            if len(out.sent) >= expect or time.monotonic() > deadline:
                return out
            time.sleep(0.05)


def key_in(sent) -> str:
    return re.search(r"^\taccept ([0-9a-f]{32})$", sent.body, re.M).group(1)


def test_a_person_manages_lists_by_mail(server):
    srv = server(delivery__workers=False)  # replies are read from the queue, not delivered
    srv.call(lambda s: s.merge(SiteSetting(key=SITE_PASSWORD_KEY,
                                           value=hash_password("site-secret"))))
    mail = Session(srv)

    # A site admin creates a list by approving a newlist request.
    out = mail.send("newlist demo owner@example.com Demo list", frm=OWNER, expect=2)
    [request] = out.to("admin@example.org")
    approve = [ln for ln in request.lines if ln.startswith("\tapprove SITE-PASSWORD")][0]
    out = mail.send(approve.replace("SITE-PASSWORD", "site-secret"),
                    frm="admin@example.org", expect=2)
    [welcome] = out.to(OWNER)
    password = re.search(r"^\tpasswd demo (\S+) NEW-PASSWORD$", welcome.body, re.M).group(1)

    # The owner closes the list by mail: config, edit, newconfig.
    config = "\n".join(mail.send(f"config demo {password}", frm=OWNER).lines[1:])
    config = config.replace("subscribe_policy = open+confirm", "subscribe_policy = closed")
    out = mail.send(f"newconfig demo {password}\n{config}\nEOF\n", frm=OWNER)
    assert "New config for list demo accepted." in out.lines

    # lists and help
    out = mail.send("lists\nhelp")
    assert "  demo                    Demo list" in out.lines
    assert "VIII.\tCOMMAND SUMMARY FOR ADVANCED USERS" in out.lines

    # Joe asks to join the closed list; the owner approves by mail.
    out = mail.send("subscribe demo", expect=2)
    assert 'has been forwarded to the owner of the "demo" list for approval.' in out.text
    [req] = out.to(OWNER)
    assert req.subject == "APPROVE demo"
    out = mail.send(f"approve {password} subscribe demo {JOE}", frm=OWNER, expect=3)
    assert "Succeeded." in out.lines
    assert [m.subject for m in out.to(JOE)] == ["Welcome to demo"]

    # Joe reads who and info, then leaves.
    out = mail.send(f"newinfo demo {password}\nAll about demo.\nEOF\n", frm=OWNER)
    assert "New info for list demo accepted." in out.lines
    out = mail.send("who demo\ninfo demo\nunsubscribe demo\nwhich", expect=2)
    assert out.lines[:4] == [">>>> who demo", "Members of list 'demo':", "", JOE]
    assert "All about demo." in out.lines
    assert "Succeeded." in out.lines
    assert "**** No matches found" in out.lines
    assert out.reply.message["To"] == JOE


def test_confirmation_and_request_address_over_smtp(server):
    srv = server(delivery__workers=False)  # replies are read from the queue, not delivered
    srv.call(lambda s: __import__("listmgr.store.lists", fromlist=["x"]).create_list(
        s, "demo", [OWNER], password="pw"))
    mail = Session(srv)
    out = mail.send("subscribe\n", to="demo-request@example.org", expect=2)
    assert "**** must be authenticated.  To accomplish this, another request must be" \
        in out.lines
    [confirm] = [m for m in out.to(JOE) if m.subject == "Confirmation for subscribe demo"]
    out = mail.send(f"accept {key_in(confirm)}", to="demo-request@example.org", expect=3)
    assert "Succeeded (to list demo)." in out.lines


def _jp_mail(charset: str, cte: str, body: bytes) -> bytes:
    head = (f"From: {JOE}\r\nTo: majordomo@example.org\r\nSubject: =?UTF-8?B?5pel5pys6Kqe?=\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode()
    return head + body


def test_iso_2022_jp_and_shift_jis_command_mails(server):
    srv = server(delivery__workers=False)  # replies are read from the queue, not delivered
    srv.call(lambda s: __import__("listmgr.store.lists", fromlist=["x"]).create_list(
        s, "demo", [OWNER], password="pw", description="日本語のリスト"))
    mail = Session(srv)
    text = "lists\r\n# コメント\r\nwho\u3000demo\r\nこんにちは\r\n"
    import base64
    for charset, cte, raw in (
            ("ISO-2022-JP", "7bit", text.encode("iso2022_jp")),
            ("Shift_JIS", "8bit", text.encode("cp932")),
            ("Shift_JIS", "base64", base64.encodebytes(text.encode("cp932")))):
        out = mail.send(_jp_mail(charset, cte, raw))
        lines = out.lines
        assert out.reply.subject == "Majordomo results: 日本語", charset
        assert "  demo                    日本語のリスト" in lines, (charset, cte)
        assert ">>>> # コメント" in lines
        assert ">>>> who\u3000demo" in lines and "Members of list 'demo':" in lines
        assert "**** Command 'こんにちは' not recognized." in lines
