"""Helpers for the web tests: an httpx client on the real server's web port, forms, logins."""

from __future__ import annotations

import html
import re

import httpx

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def client(server) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{server.ports['web']}", timeout=30,
                        follow_redirects=True)


def csrf_of(page: str) -> str:
    m = _CSRF.search(page)
    assert m, "page has no CSRF token"
    return html.unescape(m.group(1))


def post_form(c: httpx.Client, path: str, data: dict, *, page: str | None = None,
              **kw) -> httpx.Response:
    """POST a form the way a browser does: with the CSRF token of the page that holds it."""
    if page is None:
        page = c.get(path.rsplit("/", 1)[0] + "/").text
    return c.post(path, data={"csrf": csrf_of(page), **data}, **kw)


def login_personal(c: httpx.Client, user: str, password: str) -> httpx.Response:
    return post_form(c, "/personal/login", {"user": user, "password": password},
                     page=c.get("/personal/").text)


def text_of(page: str) -> str:
    """The page without tags, entities decoded: what a reader sees."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))
