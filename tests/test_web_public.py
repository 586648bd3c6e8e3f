"""Public list pages in a real `listmgr serve`: /lists/ follows advertise/noadvertise as the
`lists` command does, /lists/LIST/ subscribes and unsubscribes only through the same
confirmation mail as the mail commands, and the archive follows index_access/get_access
with every message shown as escaped text and attachments as downloads."""

from __future__ import annotations

import re

import pytest

from listmgr.store import lists as repo
from tests.test_posting_e2e import MEMBERS, OWNER, send, setup_list
from tests.test_web_owner import members_of, owner_login
from tests.web_support import client, post_form, text_of

NEWCOMER = "newcomer@example.net"


@pytest.fixture
def srv(server):
    t = server()
    setup_list(t, description="Demo <script>x</script> list", get_access="open")

    def info(s):
        repo.require_list(s, "demo").info = "About the demo list: 日本語可。"
    t.call(info)
    setup_list(t, name="hidden", members=[], noadvertise="/.*/")
    return t


def test_lists_follow_advertise_like_the_lists_command(srv):
    with client(srv) as c:
        r = c.get("/lists/")
        assert r.status_code == 200
        assert "/lists/demo/" in r.text and "/lists/hidden/" not in r.text
        assert "<script>x</script>" not in r.text and "&lt;script&gt;x&lt;/script&gt;" in r.text
        page = c.get("/lists/demo/")
        assert "About the demo list: 日本語可。" in page.text
        assert c.get("/lists/nosuch/").status_code == 404


def _confirm_mail(sink, address):
    sink.wait_for(lambda got: any(address in m.rcpt_tos for m in got))
    [mail] = sink.to(address)
    return mail.message.get_content()


def test_subscribe_form_sends_the_mail_commands_confirmation(srv, sink):
    with client(srv) as c:
        page = c.get("/lists/demo/").text
        r = post_form(c, "/lists/demo/subscribe", {"address": NEWCOMER}, page=page)
        assert r.status_code == 200 and "a confirmation was mailed" in r.text
        assert NEWCOMER not in members_of(srv)  # never without the address's own answer
        r = post_form(c, "/lists/demo/subscribe", {"address": "not an address"}, page=page)
        assert r.status_code == 400
    body = _confirm_mail(sink, NEWCOMER)
    line = re.search(r"^\s*(auth \S+ subscribe demo \S+)\s*$", body, re.M).group(1)
    send(srv, NEWCOMER, "majordomo@example.org",
         f"From: {NEWCOMER}\nTo: majordomo@example.org\nSubject: x\n\n{line}\n")
    srv.wait_idle()
    assert NEWCOMER in members_of(srv)


def test_unsubscribe_form_confirms_and_does_not_tell_who_is_a_member(srv, sink):
    with client(srv) as c:
        page = c.get("/lists/demo/").text
        r1 = post_form(c, "/lists/demo/unsubscribe", {"address": "nobody@example.net"},
                       page=page)
        r2 = post_form(c, "/lists/demo/unsubscribe", {"address": MEMBERS[0]}, page=page)
    assert text_of(r1.text) == text_of(r2.text)
    body = _confirm_mail(sink, MEMBERS[0])
    assert "unsubscribe demo" in body
    assert MEMBERS[0] in members_of(srv)  # not before the confirmation
    srv.wait_idle()
    assert sink.to("nobody@example.net") == []


def test_confirmation_requests_are_limited_per_client(srv, sink):
    with client(srv) as c:
        page = c.get("/lists/demo/").text
        for n in range(20):
            post_form(c, "/lists/demo/subscribe", {"address": f"p{n}@example.net"}, page=page)
        r = post_form(c, "/lists/demo/subscribe", {"address": "p99@example.net"}, page=page)
        assert "Too many requests" in r.text
    srv.wait_idle()
    sink.wait_for(lambda got: len({r for m in got for r in m.rcpt_tos
                                   if r.startswith("p")}) >= 20)
    assert sink.to("p99@example.net") == []


def _post(srv, subject, body, extra=""):
    send(srv, MEMBERS[0], "demo@example.org",
         f"From: {MEMBERS[0]}\nTo: demo@example.org\nSubject: {subject}\n{extra}\n{body}")


def test_archive_by_month_renders_safely_with_downloads(srv, sink):
    _post(srv, "<b>Plans</b>", "<script>alert(1)</script> see you\n")
    _post(srv, "HTML only", "<html><body><p>Hello <i>there</i></p>"
          "<script>evil()</script></body></html>\n",
          extra="MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n")
    _post(srv, "With file", "--B\nContent-Type: text/plain\n\nsee attached\n--B\n"
          "Content-Type: text/html\nContent-Disposition: attachment; filename=\"x.html\"\n\n"
          "<script>alert(2)</script>\n--B--\n",
          extra="MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n")
    srv.wait_idle()
    sink.wait_for(lambda got: sum(1 for m in got if m.message["List-Id"]) >= 3)
    with client(srv) as c:
        page = c.get("/lists/demo/").text
        month = re.search(r"/lists/demo/archive/(\d{6})/", page).group(1)
        r = c.get(f"/lists/demo/archive/{month}/")
        assert r.status_code == 200 and "&lt;b&gt;Plans&lt;/b&gt;" in r.text
        assert "<b>Plans</b>" not in r.text
        first = c.get(f"/lists/demo/archive/{month}/0")
        assert "&lt;script&gt;alert(1)&lt;/script&gt; see you" in first.text
        assert "<script>" not in first.text
        html = c.get(f"/lists/demo/archive/{month}/1")
        assert "Hello there" in text_of(html.text) and "evil()" not in html.text
        withfile = c.get(f"/lists/demo/archive/{month}/2")
        assert "see attached" in withfile.text and "x.html" in withfile.text
        link = re.search(rf'href="(/lists/demo/archive/{month}/2/\d+)"', withfile.text).group(1)
        dl = c.get(link)
        assert dl.headers["content-disposition"] == 'attachment; filename="x.html"'
        assert dl.headers["content-type"] == "application/octet-stream"
        assert b"<script>alert(2)</script>" in dl.content
        assert c.get(f"/lists/demo/archive/{month}/99").status_code == 404
        assert c.get("/lists/demo/archive/190001/").status_code == 404
        assert c.get("/lists/demo/archive/..%2F..%2Fsite.key/").status_code == 404
    # get_access list: visitors see the index but not the messages; the owner sees both
    srv.call(lambda s: repo.set_setting(s, repo.require_list(s, "demo"), "get_access", "list"))
    with client(srv) as c:
        assert c.get(f"/lists/demo/archive/{month}/0").status_code == 403
        assert c.get(f"/lists/demo/archive/{month}/").status_code == 200
        owner_login(c)
        assert c.get(f"/lists/demo/archive/{month}/0").status_code == 200
    srv.call(lambda s: repo.set_setting(s, repo.require_list(s, "demo"), "index_access",
                                        "closed"))
    with client(srv) as c:
        assert c.get(f"/lists/demo/archive/{month}/").status_code == 403
        assert "/archive/" not in c.get("/lists/demo/").text


def test_subscribe_form_offers_the_digest(srv, sink):
    """"as a digest" sends the confirmation `subscribe demo-digest` by mail sends; the
    key, answered with auth or accept, subscribes in digest mode."""
    digester, other = "digester@example.net", "acceptor@example.net"
    with client(srv) as c:
        page = c.get("/lists/demo/").text
        assert 'name="digest"' in page and "demo-digest" in page
        r = post_form(c, "/lists/demo/subscribe", {"address": digester, "digest": "1"},
                      page=page)
        assert r.status_code == 200 and "a confirmation was mailed" in r.text
        assert c.post("/lists/demo/subscribe",
                      data={"address": other, "digest": "1"}).status_code == 403
        post_form(c, "/lists/demo/subscribe", {"address": other, "digest": "1"}, page=page)
    body = _confirm_mail(sink, digester)
    line = re.search(r"^\s*(auth \S+ subscribe demo-digest \S+)\s*$", body, re.M).group(1)
    send(srv, digester, "majordomo@example.org",
         f"From: {digester}\nTo: majordomo@example.org\nSubject: x\n\n{line}\n")
    key = re.search(r"^\s*accept (\S+)\s*$", _confirm_mail(sink, other), re.M).group(1)
    send(srv, other, "majordomo@example.org",
         f"From: {other}\nTo: majordomo@example.org\nSubject: x\n\naccept {key}\n")
    srv.wait_idle()

    def digest_of(address):
        def get(s):
            m = repo.find_member(s, repo.require_list(s, "demo"), address)
            return None if m is None else m.digest
        return srv.call(get)
    assert digest_of(digester) is True and digest_of(other) is True
