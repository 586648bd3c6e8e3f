"""/admin/ in a real `listmgr serve`: site admins (site password or an admin_users mailbox)
create lists (the owner is mailed the password, as newlist by mail), remove them, manage
mailbox users and see the queue; nobody else reaches any of it."""

from __future__ import annotations

import re

import pytest

from listmgr.commands.context import SITE_PASSWORD_KEY
from listmgr.passwords import hash_password
from listmgr.store import lists as repo
from listmgr.store import mailboxes
from listmgr.store.models import SiteSetting
from tests.pop3_support import add_user, login as pop3_login
from tests.test_posting_e2e import setup_list
from tests.web_support import client, csrf_of, login_personal, post_form, text_of

SITE_PW = "site-secret-9"


@pytest.fixture
def srv(server):
    t = server(web__admin_users=["root1"], pop3__login_failure_delay="0.1s")
    t.call(lambda s: s.merge(SiteSetting(key=SITE_PASSWORD_KEY, value=hash_password(SITE_PW))))
    add_user(t, "root1", "root1-secret")
    add_user(t, "alice", "alice-secret")
    setup_list(t)
    return t


def admin_login(c, password=SITE_PW, user=""):
    page = c.get("/admin/").text
    return c.post("/admin/login", data={"csrf": csrf_of(page), "user": user,
                                        "password": password})


def test_site_password_and_admin_users_log_in_nobody_else(srv):
    with client(srv) as c:
        assert admin_login(c, "wrong").status_code == 401
        assert admin_login(c, "alice-secret", user="alice").status_code == 401  # not listed
        r = admin_login(c)
        assert r.status_code == 200 and "Outbound queue" in r.text and "/lists/demo/admin/" in r.text
        # a site admin runs every list's owner pages too
        assert c.get("/lists/demo/admin/members/").status_code == 200
    with client(srv) as c:
        assert admin_login(c, "root1-secret", user="root1").status_code == 200
        assert "Mailbox users" in c.get("/admin/").text
    with client(srv) as c:  # a mailbox session is not an admin session
        login_personal(c, "alice", "alice-secret")
        assert c.get("/admin/lists/create").status_code == 405
        r = post_form(c, "/admin/users/add", {"name": "mallory", "password": "12345678x"},
                      page=c.get("/personal/").text)
        assert r.status_code == 403
    assert srv.call(mailboxes.get_user, "mallory") is None


def test_create_and_remove_a_list(srv, sink):
    with client(srv) as c:
        page = admin_login(c).text
        r = post_form(c, "/admin/lists/create", {"name": "Team", "owner": "boss@example.net",
                                                 "description": "Team <i>talk</i>"}, page=page)
        assert "The list was created" in r.text and "Team &lt;i&gt;talk&lt;/i&gt;" in r.text
        r = post_form(c, "/admin/lists/create", {"name": "team", "owner": "boss@example.net"},
                      page=page)
        assert r.status_code == 400
    sink.wait_for(lambda got: any("boss@example.net" in m.rcpt_tos for m in got))
    [mail] = sink.to("boss@example.net")
    body = mail.message.get_content()
    password = re.search(r"password is:\s+(\S+)", body)
    assert srv.call(lambda s: repo.get_list(s, "team")) is not None
    assert password, body
    with client(srv) as owner:  # the mailed password opens the owner pages
        page = owner.get("/lists/team/admin/").text
        r = owner.post("/lists/team/admin/login", data={"csrf": csrf_of(page),
                                                       "password": password.group(1)})
        assert r.status_code == 200 and "team" in r.text
    with client(srv) as c:
        page = admin_login(c).text
        r = post_form(c, "/admin/lists/remove", {"name": "team", "confirm": "tea"}, page=page)
        assert r.status_code == 400
        r = post_form(c, "/admin/lists/remove", {"name": "team", "confirm": "team"}, page=page)
        assert "The list was removed." in r.text
    assert srv.call(lambda s: repo.get_list(s, "team")) is None


def test_mailbox_users_add_reset_delete(srv):
    with client(srv) as c:
        page = admin_login(c).text
        r = post_form(c, "/admin/users/add", {"name": "dave", "password": "dave-secret"},
                      page=page)
        assert "The mailbox user was added." in r.text
        r = post_form(c, "/admin/users/add", {"name": "postmaster", "password": "12345678"},
                      page=page)
        assert r.status_code == 400 and "reserved" in text_of(r.text)
        pop3_login(srv, "dave", "dave-secret").quit()
        r = post_form(c, "/admin/users/password", {"name": "dave", "password": "dave-new-pw"},
                      page=page)
        assert "The password was set." in r.text
        pop3_login(srv, "dave", "dave-new-pw").quit()
        r = post_form(c, "/admin/users/delete", {"name": "dave", "confirm": "dave"}, page=page)
        assert "were deleted" in r.text
    assert srv.call(mailboxes.get_user, "dave") is None


def test_every_admin_form_needs_its_csrf_token(srv):
    with client(srv) as c:
        admin_login(c)
        for path in ("login", "logout", "lists/create", "lists/remove", "users/add",
                     "users/password", "users/delete"):
            r = c.post("/admin/" + path, data={"name": "demo", "confirm": "demo",
                                               "owner": "x@example.net",
                                               "password": "zzzzzzzz9"})
            assert r.status_code == 403, path
    assert srv.call(lambda s: repo.get_list(s, "demo")) is not None
