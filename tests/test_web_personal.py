"""/personal/ in a real `listmgr serve`: log in with the POP3 name and password, change the
password, set the auto-responder, see the mailbox, log out; and the security rules of every
page (headers, CSRF, sessions, throttling, no user enumeration, no secrets in logs)."""

from __future__ import annotations

import logging
import smtplib
import time

import pytest

from listmgr.store import mailboxes
from tests.pop3_support import add_user, login as pop3_login
from tests.web_support import client, csrf_of, login_personal, post_form, text_of


@pytest.fixture
def web(server):
    srv = server(pop3__login_failure_delay="0.2s")
    add_user(srv, "alice", "alice-secret")
    add_user(srv, "bob", "bob-secret")
    return srv


def test_serve_runs_the_web_pages_with_security_headers(web):
    with client(web) as c:
        r = c.get("/")
        assert r.status_code == 200 and "/personal/" in r.text
        for name, value in (("x-frame-options", "DENY"), ("referrer-policy", "no-referrer"),
                            ("x-content-type-options", "nosniff")):
            assert r.headers[name] == value
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"
        css = c.get("/static/style.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert c.get("/nowhere").status_code == 404


def test_login_mailbox_view_and_logout(web):
    with smtplib.SMTP("127.0.0.1", web.smtp_port, timeout=30) as smtp:
        smtp.sendmail("carol@example.net", ["alice@example.org"],
                      b"From: carol@example.net\r\nTo: alice@example.org\r\n"
                      b"Subject: <script>alert(1)</script> plans\r\n\r\nhello\r\n")
    web.wait_idle()
    with client(web) as c:
        r = login_personal(c, "Alice@example.org", "alice-secret")
        assert r.status_code == 200 and "alice@example.org" in r.text
        assert "<script>alert(1)</script>" not in r.text  # escaped, not markup
        assert "&lt;script&gt;alert(1)&lt;/script&gt; plans" in r.text
        assert "1 messages" in text_of(r.text)
        cookie = r.headers.get("set-cookie", "") or str(c.cookies)
        r = post_form(c, "/personal/logout", {}, page=r.text)
        assert r.status_code == 200 and 'name="password"' in r.text
        assert c.get("/personal/").text.count('name="password"') == 1
        assert cookie


def test_wrong_password_and_unknown_user_get_the_same_answer(web):
    with client(web) as c:
        wrong = login_personal(c, "alice", "nope")
        unknown = login_personal(c, "nobody", "nope")
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda page: text_of(page).replace("nobody", "").replace("alice", "")
    assert strip(wrong.text) == strip(unknown.text)
    assert "Wrong name or password." in wrong.text


def test_failed_logins_cost_a_doubling_delay_per_ip_and_account(web):
    times = []
    with client(web) as c:
        for _ in range(4):
            t0 = time.monotonic()
            assert login_personal(c, "alice", "nope").status_code == 401
            times.append(time.monotonic() - t0)
        # base 0.2s: 0.2, 0.4, 0.8, 1.6 (generous lower bounds: the machine may be loaded)
        assert times[3] >= 1.5 and times[2] >= 0.75
        # the same account from the same IP after a success: the delay is gone again
        assert login_personal(c, "alice", "alice-secret").status_code == 200
        t0 = time.monotonic()
        assert login_personal(c, "alice", "nope").status_code == 401
        assert time.monotonic() - t0 < 1.5


def test_changing_the_password_needs_the_old_one(web):
    with client(web) as c, client(web) as other:
        assert login_personal(other, "alice", "alice-secret").status_code == 200
        page = login_personal(c, "alice", "alice-secret").text
        r = post_form(c, "/personal/password", {"old": "wrong", "new": "new-secret-1",
                                                "again": "new-secret-1"}, page=page)
        assert r.status_code == 400 and "The current password is wrong." in r.text
        r = post_form(c, "/personal/password", {"old": "alice-secret", "new": "new-secret-1",
                                                "again": "new-secret-2"}, page=page)
        assert r.status_code == 400 and "The two new passwords differ." in r.text
        r = post_form(c, "/personal/password", {"old": "alice-secret", "new": "new-secret-1",
                                                "again": "new-secret-1"}, page=page)
        assert r.status_code == 200 and "Your password was changed." in r.text
        assert "alice@example.org" in c.get("/personal/").text  # this session goes on
        # a session opened with the old password elsewhere is over
        assert 'name="password"' in other.get("/personal/").text
    pop3_login(web, "alice", "new-secret-1").quit()  # POP3 takes the new password


def test_autoreply_settings_round_trip_japanese_and_validate(web):
    with client(web) as c:
        page = login_personal(c, "alice", "alice-secret").text
        body = "ただいま休暇中です。\n12月28日に戻ります。\n"
        r = post_form(c, "/personal/autoreply", {
            "enabled": "on", "subject": "休暇のお知らせ", "body": body,
            "start": "2026-12-20", "end": "2026-12-27", "interval": "3"}, page=page)
        assert r.status_code == 200 and "The auto-responder settings were saved." in r.text
        assert "休暇のお知らせ" in r.text and "12月28日に戻ります。" in r.text
        user = web.call(mailboxes.get_user, "alice")
        assert user.autoreply_enabled and user.autoreply_subject == "休暇のお知らせ"
        assert user.autoreply_body == body
        assert str(user.autoreply_start) == "2026-12-20"
        assert str(user.autoreply_end) == "2026-12-27"
        assert user.autoreply_interval_days == 3
        for bad, message in (({"end": "2026-12-01"}, "The end date is before the start date."),
                             ({"start": "tomorrow"}, "Give the date as YYYY-MM-DD."),
                             ({"interval": "0"}, "Give a number of days from 1 to 365."),
                             ({"subject": "x" * 201}, "The subject is too long"),
                             ({"body": ""}, "Write the message to send")):
            data = {"enabled": "on", "subject": "s", "body": "b", "start": "2026-12-20",
                    "end": "2026-12-27", "interval": "3", **bad}
            r = post_form(c, "/personal/autoreply", data, page=page)
            assert r.status_code == 400 and message in text_of(r.text), bad
        assert web.call(mailboxes.get_user, "alice") == user  # nothing stored
        # in Japanese
        r = post_form(c, "/lang", {"lang": "ja", "next": "/personal/"}, page=page)
        assert "自動応答" in r.text and "ログアウト" in r.text and 'lang="ja"' in r.text


def test_every_form_needs_its_csrf_token(web):
    with client(web) as c:
        page = login_personal(c, "alice", "alice-secret").text
        good = csrf_of(page)
        for path, data in (("/personal/autoreply", {"enabled": "on", "body": "x"}),
                           ("/personal/password", {"old": "alice-secret", "new": "zzzzzzzz1",
                                                   "again": "zzzzzzzz1"}),
                           ("/personal/logout", {}), ("/lang", {"lang": "ja"}),
                           ("/personal/login", {"user": "alice",
                                                "password": "alice-secret"})):
            assert c.post(path, data=data).status_code == 403, path
            assert c.post(path, data={**data, "csrf": good + "x"}).status_code == 403, path
    assert not web.call(mailboxes.get_user, "alice").autoreply_enabled
    pop3_login(web, "alice", "alice-secret").quit()


def test_login_starts_a_new_session_and_other_users_stay_out_of_reach(web):
    with client(web) as c:
        c.get("/personal/")
        planted = c.cookies.get("listmgr_session")
        csrf_before = csrf_of(c.get("/personal/").text)
        page = login_personal(c, "alice", "alice-secret").text
        assert c.cookies.get("listmgr_session") != planted
        assert csrf_of(page) != csrf_before  # the pre-login token is worthless now
        # the planted (pre-login) cookie gives no access
        with client(web) as attacker:
            attacker.cookies.set("listmgr_session", planted)
            assert 'name="password"' in attacker.get("/personal/").text
        # a cookie forged to say user=bob is refused (signature)
        with client(web) as forger:
            import base64
            import json
            fake = base64.b64encode(json.dumps({"user": "bob"}).encode()).decode()
            forger.cookies.set("listmgr_session", fake + ".x.y")
            assert "bob@example.org" not in forger.get("/personal/").text
        # alice's forms change alice only
        post_form(c, "/personal/autoreply", {"enabled": "on", "body": "away",
                                             "user": "bob", "interval": "1"}, page=page)
    assert web.call(mailboxes.get_user, "alice").autoreply_enabled
    assert not web.call(mailboxes.get_user, "bob").autoreply_enabled


def test_cookies_are_httponly_samesite_and_secure_with_https(server):
    srv = server(web__base_url="https://lists.example.org")
    with client(srv) as c:
        r = c.get("/personal/")
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie


def test_request_bodies_are_capped(server):
    srv = server(web__max_upload="2KB")
    with client(srv) as c:
        page = c.get("/personal/").text
        r = c.post("/personal/login", data={"csrf": csrf_of(page), "user": "a" * 5000,
                                            "password": "x"})
        assert r.status_code == 413
        # a chunked body without Content-Length is counted as it arrives
        r = c.post("/personal/login", content=iter([b"csrf=x&user=", b"a" * 4000]),
                   headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 413
        assert c.get("/").status_code == 200


def test_a_refused_body_already_sent_still_gets_its_413(server):
    """A client that sends its whole (too large) body before reading reads the 413, not a
    connection reset: the server reads and drops a refused body up to 64 KB first."""
    import socket
    srv = server(web__max_upload="2KB")
    for chunked in (False, True):
        body = b"user=" + b"a" * 20_000
        if chunked:
            head = b"Transfer-Encoding: chunked\r\n"
            payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        else:
            head = b"Content-Length: %d\r\n" % len(body)
            payload = body
        with socket.create_connection(("127.0.0.1", srv.ports["web"]), timeout=10) as sock:
            sock.sendall(b"POST /personal/login HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/x-www-form-urlencoded\r\n" + head +
                         b"\r\n")
            time.sleep(0.3)  # the head alone is there: a server that answers now...
            sock.sendall(payload)  # ...and closes would meet this body with a reset
            time.sleep(0.3)
            reply = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 413"), (chunked, reply[:80])


def test_a_refused_body_is_waited_for_briefly_and_a_huge_one_not_at_all(server):
    """Past the drain limits: a body that never comes gets its 413 after DRAIN_SECONDS; a
    declared body over DRAIN_LIMIT is not read at all (413 at once)."""
    import socket
    from listmgr.web.security import DRAIN_LIMIT, DRAIN_SECONDS
    srv = server(web__max_upload="2KB")
    for length, most in ((10_000, DRAIN_SECONDS + 3), (1000 * DRAIN_LIMIT, 2.0)):
        with socket.create_connection(("127.0.0.1", srv.ports["web"]), timeout=15) as sock:
            started = time.monotonic()
            sock.sendall(b"POST /personal/login HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: %d\r\n\r\n" % length)  # and no body
            reply = sock.recv(65536)
            took = time.monotonic() - started
        assert reply.startswith(b"HTTP/1.1 413") and took < most, (length, took)


def test_no_password_in_the_logs(web, caplog):
    caplog.set_level(logging.INFO)
    with client(web) as c:
        login_personal(c, "alice", "wrong-guess-123")
        page = login_personal(c, "alice", "alice-secret").text
        post_form(c, "/personal/password", {"old": "alice-secret", "new": "brand-new-pw-9",
                                            "again": "brand-new-pw-9"}, page=page)
    logged = "\n".join(r.getMessage() for r in caplog.records  # the server's, not httpx's
                       if r.name.startswith(("listmgr", "uvicorn")))
    assert "web POST /personal/login" in logged
    for secret in ("wrong-guess-123", "alice-secret", "brand-new-pw-9"):
        assert secret not in logged


def test_web_can_be_turned_off(server):
    srv = server(web__listen="")
    assert "web" not in srv.ports and "smtp" in srv.ports
