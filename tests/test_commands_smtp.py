"""Command mail over SMTP to a running `listmgr serve`: a person manages lists by mail alone.

Replies are read where they arrive: the recording sink that is the server's smarthost,
delivered by the real delivery worker.
"""

from __future__ import annotations

import re
import smtplib

from listmgr.commands.context import SITE_PASSWORD_KEY
from listmgr.passwords import hash_password
from listmgr.store.models import SiteSetting
from tests.commands_helpers import Outcome, Sent

JOE = "joe@example.net"
OWNER = "owner@example.com"


class Session:
    """Send command mails over SMTP; collect what the smarthost sink receives in answer."""

    def __init__(self, srv, sink):
        self.srv = srv
        self.sink = sink

    def send(self, body: str | bytes, *, frm: str = JOE, to: str = "majordomo@example.org",
             headers: str = "", expect: int = 1) -> Outcome:
        with self.sink.lock:
            before = len(self.sink.received)
        if isinstance(body, str):
            data = (f"From: {frm}\r\nTo: {to}\r\nSubject: cmds\r\n{headers}\r\n"
                    + body.replace("\n", "\r\n")).encode()
        else:
            data = body
        with smtplib.SMTP("127.0.0.1", self.srv.smtp_port, timeout=10) as c:
            c.sendmail(frm, [to], data)
        got = self.sink.wait_for(lambda rs: len(rs) >= before + expect)[before:]
        self.srv.wait_settled()  # nothing still in flight when a test moves the clock
        return Outcome([Sent(r.mail_from, list(r.rcpt_tos), r.message) for r in got])


def key_in(sent) -> str:
    return re.search(r"^\taccept ([0-9a-f]{32})$", sent.body, re.M).group(1)


def test_a_person_manages_lists_by_mail(server, sink):
    srv = server()
    srv.call(lambda s: s.merge(SiteSetting(key=SITE_PASSWORD_KEY,
                                           value=hash_password("site-secret"))))
    mail = Session(srv, sink)

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


def test_confirmation_and_request_address_over_smtp(server, sink):
    srv = server()
    srv.call(lambda s: __import__("listmgr.store.lists", fromlist=["x"]).create_list(
        s, "demo", [OWNER], password="pw"))
    mail = Session(srv, sink)
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


def test_iso_2022_jp_and_shift_jis_command_mails(server, sink):
    srv = server()
    srv.call(lambda s: __import__("listmgr.store.lists", fromlist=["x"]).create_list(
        s, "demo", [OWNER], password="pw", description="日本語のリスト"))
    mail = Session(srv, sink)
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


def test_replies_reach_the_smarthost(server, sink):
    """The reply leaves through the delivery worker: envelope, headers and transcript."""
    srv = server()
    srv.call(lambda s: __import__("listmgr.store.lists", fromlist=["x"]).create_list(
        s, "demo", [OWNER], password="pw", description="Demo"))
    data = (f"From: Joe <{JOE}>\r\nTo: majordomo@example.org\r\nSubject: please\r\n"
            f"Message-ID: <q1@example.net>\r\n\r\nlists\r\nfrobnicate\r\nend\r\n").encode()
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as c:
        c.sendmail(JOE, ["majordomo@example.org"], data)
    [got] = sink.wait_for(lambda rs: any(JOE in r.rcpt_tos for r in rs))
    assert got.mail_from == "majordomo-owner@example.org"
    assert got.rcpt_tos == [JOE]
    m = got.message
    assert m["From"] == "majordomo@example.org" and m["To"] == JOE
    assert m["Subject"] == "Majordomo results: please"
    assert m["In-Reply-To"] == "<q1@example.net>"
    assert m["Auto-Submitted"] == "auto-replied"
    lines = m.get_content().replace("\r\n", "\n").split("\n")
    assert lines[:8] == ["--", "", ">>>> lists", "majordomo@example.org serves the following lists:",
                         "", "  demo                    Demo", "",
                         "Use the 'info <list>' command to get more information"]
    i = lines.index(">>>> frobnicate")
    assert lines[i + 1:i + 5] == ["**** Command 'frobnicate' not recognized.", ">>>> end",
                                  "END OF COMMANDS", "**** Help for majordomo@example.org:"]


def test_a_confirmation_key_expires_after_its_lifetime(manual_clock, server, sink):
    """The default 7-day key lifetime, on listmgr's clock: a day early it works, a minute
    late it is refused as expired (and a new one is sent)."""
    srv = server()
    srv.call(lambda s: __import__("listmgr.store.lists", fromlist=["x"]).create_list(
        s, "demo", [OWNER], password="pw"))
    mail = Session(srv, sink)
    out = mail.send("subscribe demo\n", expect=2)
    [late] = [m for m in out.to(JOE) if m.subject == "Confirmation for subscribe demo"]
    manual_clock.advance(days=6)
    out = mail.send("subscribe demo joe2@example.net\n", frm="joe2@example.net", expect=2)
    [early] = [m for m in out.to("joe2@example.net")
               if m.subject == "Confirmation for subscribe demo"]
    manual_clock.advance(days=1, minutes=1)
    out = mail.send(f"accept {key_in(late)}", expect=2)
    assert out.lines[1:3] == ["**** auth: that key has expired.",
                              "**** A new confirmation is being sent."]
    out = mail.send(f"accept {key_in(early)}", frm="joe2@example.net", expect=3)
    assert "Succeeded." in out.lines  # the reply, the welcome and the owner's notice
