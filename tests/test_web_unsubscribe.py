"""One-click unsubscribe (RFC 8058) at /u/TOKEN in a real `listmgr serve`: a POST with
`List-Unsubscribe=One-Click` removes the member at once, without a cookie or a login; a GET
only asks; forged, used and pre-rejoin tokens do nothing."""

from __future__ import annotations

import logging

import httpx
import pytest

from listmgr import site_secret, unsubscribe
from listmgr.store import lists as repo
from tests.web_support import client, text_of


def _setup(srv, announcements: bool = True) -> None:
    def make(s):
        mlist = repo.create_list(s, "demo", ["owner@example.org"], password="listpw")
        mlist.announcements = announcements
        repo.add_members(s, mlist, ["alice@example.net", "bob@example.net"])
    srv.call(make)


def link_for(srv, address: str) -> str:
    """The token a member's copy carries (as the delivery worker makes it)."""
    def find(s):
        mlist = repo.require_list(s, "demo")
        m = repo.find_member(s, mlist, address)
        return unsubscribe.token(site_secret.load(srv.config.data_dir), mlist.name, m.key,
                                 m.id)
    return "/u/" + srv.call(find)


def members(srv) -> list[str]:
    def get(s):
        mlist = repo.require_list(s, "demo")
        return sorted(a for batch in repo.iter_member_batches(s, mlist) for _, a in batch)
    return srv.call(get)


@pytest.fixture
def srv(server):
    t = server(web__base_url="https://lists.example.org")
    _setup(t)
    return t


def test_one_click_post_unsubscribes_at_once(srv, sink):
    path = link_for(srv, "alice@example.net")
    with client(srv) as c:
        # multipart/form-data, as RFC 8058 says mail providers send it
        r = c.post(path, files={"List-Unsubscribe": (None, "One-Click")})
        assert r.status_code == 200
        assert "set-cookie" not in r.headers
        assert "alice@example.net" in r.text and "demo" in text_of(r.text)
    assert members(srv) == ["bob@example.net"]
    # the owners hear of it, as with the mail command
    [notice] = sink.wait_for(lambda got: any("owner@example.org" in m.rcpt_tos for m in got))
    assert notice.message["Subject"] == "UNSUBSCRIBE demo alice@example.net"
    with client(srv) as c:  # the token died with the member row
        assert c.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 404


def test_urlencoded_post_works_too_and_get_only_asks(srv):
    path = link_for(srv, "bob@example.net")
    with client(srv) as c:
        r = c.get(path)
        assert r.status_code == 200 and "set-cookie" not in r.headers
        assert 'name="List-Unsubscribe" value="One-Click"' in r.text
        assert members(srv) == ["alice@example.net", "bob@example.net"]  # a GET changes nothing
        assert c.post(path, data={"something": "else"}).status_code == 400
        assert members(srv) == ["alice@example.net", "bob@example.net"]
        r = c.post(path, data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200
    assert members(srv) == ["alice@example.net"]


def test_forged_and_stale_tokens_do_nothing(srv):
    good = link_for(srv, "alice@example.net")
    bob = link_for(srv, "bob@example.net")
    with client(srv) as c:
        forged = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
        # bob's member id with alice's MAC
        other = "/u/" + bob[3:3 + 11] + good[3 + 11:]
        for path in (forged, other, "/u/short", "/u/" + "x" * 500, "/u/%00%01"):
            assert c.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 404
            assert c.get(path).status_code == 404
        assert members(srv) == ["alice@example.net", "bob@example.net"]
        # leave and rejoin: the old link no longer works, the new one does
        assert c.post(good, data={"List-Unsubscribe": "One-Click"}).status_code == 200
        srv.call(lambda s: repo.add_members(s, repo.require_list(s, "demo"),
                                            ["alice@example.net"]))
        assert c.post(good, data={"List-Unsubscribe": "One-Click"}).status_code == 404
        assert "alice@example.net" in members(srv)
        fresh = link_for(srv, "alice@example.net")
        assert fresh != good
        assert c.post(fresh, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert members(srv) == ["bob@example.net"]


def test_tokens_stay_out_of_the_logs(srv, caplog):
    caplog.set_level(logging.INFO)
    path = link_for(srv, "alice@example.net")
    with client(srv) as c:
        c.get(path)
        c.post(path, data={"List-Unsubscribe": "One-Click"})
    logged = "\n".join(r.getMessage() for r in caplog.records  # the server's, not httpx's
                       if r.name.startswith(("listmgr", "uvicorn")))
    assert "web POST /u/..." in logged
    assert path[3:] not in logged


def test_big_bodies_are_refused(srv):
    path = link_for(srv, "alice@example.net")
    with client(srv) as c:
        r = c.post(path, data={"List-Unsubscribe": "One-Click", "pad": "x" * 20000})
        assert r.status_code in (400, 413)
    assert "alice@example.net" in members(srv)
