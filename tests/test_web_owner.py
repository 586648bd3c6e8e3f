"""/lists/LIST/admin/ in a real `listmgr serve`: an owner logs in with the list password and
runs the list: held posts (approve, reject: the same effect as by mail), members, settings,
texts; and cannot reach another list."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from listmgr.store import lists as repo
from listmgr.store.models import HeldPost
from tests.test_posting_e2e import MEMBERS, OWNER, STRANGER, post_text, send, setup_list
from tests.web_support import client, csrf_of, post_form, text_of

ADMIN = "/lists/demo/admin/"


@pytest.fixture
def srv(server):
    t = server(pop3__login_failure_delay="0.1s")
    setup_list(t)
    setup_list(t, name="other", members=["x@example.com"])
    return t


def owner_login(c, name: str = "demo", password: str = "s3cret"):
    page = c.get(f"/lists/{name}/admin/").text
    return c.post(f"/lists/{name}/admin/login", data={"csrf": csrf_of(page),
                                                       "password": password})


def hold(srv, name="demo", subject="hello", body="Hi all.\n") -> int:
    send(srv, STRANGER, f"{name}@example.org",
         post_text(STRANGER, subject=subject, body=body).replace("demo@", f"{name}@"))
    srv.wait_idle()
    return srv.call(lambda s: s.scalars(select(HeldPost.id).order_by(HeldPost.id.desc()))
                    .first())


def members_of(srv, name="demo"):
    def get(s):
        ml = repo.require_list(s, name)
        return sorted(a for b in repo.iter_member_batches(s, ml, enabled_only=False)
                      for _, a in b)
    return srv.call(get)


def test_owner_approves_a_held_post_and_members_get_it(srv, sink):
    held_id = hold(srv, subject="<img src=x onerror=alert(1)> news",
                   body="<script>alert('x')</script>\nSee you.\n")
    with client(srv) as c:
        assert owner_login(c, password="wrong").status_code == 401
        r = owner_login(c)
        assert r.status_code == 200 and str(r.url).endswith("/held/")
        held = srv.call(lambda s: s.get(HeldPost, held_id).reasons)
        assert held.strip('[]"').split('"')[0] in text_of(r.text)  # the reason is shown
        assert "<img src=x" not in r.text and "&lt;img src=x onerror=alert(1)&gt;" in r.text
        r = c.get(f"{ADMIN}held/{held_id}")
        assert r.status_code == 200
        assert "<script>alert" not in r.text and "&lt;script&gt;alert" in r.text
        r = post_form(c, f"{ADMIN}held/{held_id}/decide", {"action": "approve"}, page=r.text)
        assert r.status_code == 200
        assert "The post was approved and sent to the members." in r.text
    got = sink.wait_for(lambda got: sum(len(m.rcpt_tos) for m in got if m.message["List-Id"])
                        >= len(MEMBERS))
    copies = [m for m in got if m.message["List-Id"]]
    assert sorted(r for m in copies for r in m.rcpt_tos) == sorted(MEMBERS)
    assert srv.call(lambda s: s.get(HeldPost, held_id).state) == "approved"
    with client(srv) as c:  # deciding twice: told, nothing sent again
        owner_login(c)
        r = post_form(c, f"{ADMIN}held/{held_id}/decide", {"action": "approve"},
                      page=c.get(f"{ADMIN}held/").text)
        assert "That post was already decided." in r.text


def test_owner_rejects_with_a_reason_and_the_poster_is_told(srv, sink):
    held_id = hold(srv)
    with client(srv) as c:
        owner_login(c)
        page = c.get(f"{ADMIN}held/{held_id}").text
        r = post_form(c, f"{ADMIN}held/{held_id}/decide",
                      {"action": "reject", "reason": "Off topic, sorry."}, page=page)
        assert "The post was rejected" in r.text
    sink.wait_for(lambda got: any(STRANGER in m.rcpt_tos for m in got))
    [notice] = sink.to(STRANGER)
    assert "Off topic, sorry." in notice.message.get_body(("plain",)).get_content()
    assert srv.call(lambda s: s.get(HeldPost, held_id).state) == "rejected"


def test_an_owner_cannot_reach_another_list(srv):
    other_held = hold(srv, name="other")
    with client(srv) as c:
        owner_login(c)
        assert c.get("/lists/other/admin/held/").status_code == 403
        assert c.get(f"{ADMIN}held/{other_held}").status_code == 404
        page = c.get(f"{ADMIN}held/").text
        r = post_form(c, f"{ADMIN}held/{other_held}/decide", {"action": "approve"}, page=page)
        assert r.status_code == 404
        r = post_form(c, "/lists/other/admin/members/add", {"address": "evil@example.com"},
                      page=page)
        assert r.status_code == 403
    assert srv.call(lambda s: s.get(HeldPost, other_held).state) == "held"
    assert members_of(srv, "other") == ["x@example.com"]


def test_members_add_bulk_remove_delivery_and_search(srv):
    with client(srv) as c:
        owner_login(c)
        page = c.get(f"{ADMIN}members/").text
        assert "3 members found." in page
        r = post_form(c, f"{ADMIN}members/add", {"address": "dave@example.com"}, page=page)
        assert "The member was added." in r.text
        r = post_form(c, f"{ADMIN}members/add", {"address": "not an address"}, page=page)
        assert r.status_code == 400 and "not a complete e-mail address" in r.text
        r = post_form(c, f"{ADMIN}members/bulk",
                      {"addresses": "erin@example.com\nalice@example.com\n<b>bad</b>\n"},
                      files={"file": ("list.txt", b"frank@example.net\r\ngina@example.net\r\n",
                                      "text/plain")}, page=page)
        result = text_of(r.text)
        assert "3 added, 1 already members, 1 not addresses." in result
        assert "<b>bad</b>" not in r.text and "&lt;b&gt;bad&lt;/b&gt;" in r.text
        r = post_form(c, f"{ADMIN}members/delivery", {"address": "bob@example.net", "on": "0"},
                      page=page)
        assert "Delivery is off for that member" in r.text
        r = post_form(c, f"{ADMIN}members/remove", {"address": "carol@example.com"}, page=page)
        assert "The member was removed." in r.text
        r = c.get(f"{ADMIN}members/", params={"q": "example.net"})
        assert "3 members found." in r.text  # bob, frank, gina
        assert "bob@example.net" in r.text and "alice@example.com" not in r.text
    assert members_of(srv) == sorted(["alice@example.com", "bob@example.net",
                                      "dave@example.com", "erin@example.com",
                                      "frank@example.net", "gina@example.net"])
    enabled = srv.call(lambda s: sorted(a for b in repo.iter_member_batches(
        s, repo.require_list(s, "demo")) for _, a in b))
    assert "bob@example.net" not in enabled and "dave@example.com" in enabled


def test_settings_use_the_registry_and_validate_all_or_nothing(srv):
    with client(srv) as c:
        owner_login(c)
        page = c.get(f"{ADMIN}settings/").text
        assert "subject_prefix" in page and "who may post" in page
        r = post_form(c, f"{ADMIN}settings/save",
                      {"subject_prefix": "[$LIST]", "maxlength": "not-a-number"}, page=page)
        assert r.status_code == 400 and "Nothing was saved" in r.text
        assert "maxlength" in text_of(r.text)
        assert srv.call(lambda s: repo.require_list(s, "demo").subject_prefix) == ""
        r = post_form(c, f"{ADMIN}settings/save",
                      {"subject_prefix": "[$LIST]", "post_policy": "moderated",
                       "description": "Demo <b>list</b>", "admin_passwd": ""}, page=page)
        assert "The settings were saved." in r.text
        assert "Demo &lt;b&gt;list&lt;/b&gt;" in r.text
        ml = srv.call(lambda s: repo.require_list(s, "demo"))
        assert (ml.subject_prefix, ml.post_policy) == ("[$LIST]", "moderated")
        # a new list password: this session goes on, one with the old password ends
        with client(srv) as old:
            owner_login(old)
            post_form(c, f"{ADMIN}settings/save", {"admin_passwd": "n3w-pass"}, page=page)
            assert c.get(f"{ADMIN}members/").status_code == 200
            assert old.get(f"{ADMIN}members/").status_code == 403
        assert owner_login(c, password="n3w-pass").status_code == 200


def test_info_and_intro_texts(srv):
    with client(srv) as c:
        owner_login(c)
        page = c.get(f"{ADMIN}texts/").text
        r = post_form(c, f"{ADMIN}texts/save", {"info": "About demo: 日本語もどうぞ。",
                                                "intro": "Welcome!"}, page=page)
        assert "The texts were saved." in r.text and "日本語もどうぞ。" in r.text
    ml = srv.call(lambda s: repo.require_list(s, "demo"))
    assert ml.info.endswith("About demo: 日本語もどうぞ。") and ml.intro.endswith("Welcome!")


def test_every_owner_form_needs_its_csrf_token(srv):
    held_id = hold(srv)
    with client(srv) as c:
        owner_login(c)
        for path in ("login", "logout", "members/add", "members/bulk", "members/remove",
                     "members/delivery", "members/digest", f"held/{held_id}/decide", "settings/save",
                     "texts/save"):
            r = c.post(ADMIN + path, data={"address": "z@example.com", "action": "approve",
                                           "password": "s3cret", "info": "x"})
            assert r.status_code == 403, path
    assert srv.call(lambda s: s.get(HeldPost, held_id).state) == "held"
    assert "z@example.com" not in members_of(srv)


def test_owner_toggles_a_members_digest_mode(srv, sink):
    """The members page shows each member's digest mode and switches it, as `set LIST
    digest|nodigest` does: the member's copies stop and a digest holds the post."""
    def digest_of(address):
        return srv.call(lambda s: repo.find_member(s, repo.require_list(s, "demo"),
                                                   address).digest)
    with client(srv) as c:
        owner_login(c)
        page = c.get(f"{ADMIN}members/").text
        assert "single messages (send digests)" in page and "digests (send single" not in page
        r = post_form(c, f"{ADMIN}members/digest", {"address": "bob@example.net", "on": "1"},
                      page=page)
        assert "now gets the list's digests" in text_of(r.text)
        assert "digests (send single messages)" in r.text
        assert digest_of("bob@example.net") is True
        r = post_form(c, f"{ADMIN}members/digest",
                      {"address": "nobody@example.net", "on": "1"}, page=page)
        assert r.status_code == 200 and digest_of("bob@example.net") is True
        assert c.post(f"{ADMIN}members/digest",
                      data={"address": "bob@example.net", "on": "0"}).status_code == 403
    assert digest_of("bob@example.net") is True
    poster = "carol@example.com"  # a member: the list takes members' posts
    send(srv, poster, "demo@example.org", post_text(poster, subject="digest test"))
    srv.wait_idle()
    got = sink.wait_for(lambda rs: sum(len(r.rcpt_tos) for r in rs
                                       if "digest test" in str(r.message["Subject"])) >= 2)
    rcpts = {a for r in got if "digest test" in str(r.message["Subject"]) for a in r.rcpt_tos}
    assert "bob@example.net" not in rcpts and "alice@example.com" in rcpts
    with client(srv) as c:
        owner_login(c)
        page = c.get(f"{ADMIN}members/").text
        post_form(c, f"{ADMIN}members/digest", {"address": "bob@example.net", "on": "0"},
                  page=page)
    assert digest_of("bob@example.net") is False
