"""The queries posting, commands and tokens hand to store/, run on both databases."""

from __future__ import annotations

import datetime as dt

from listmgr import tokens
from listmgr.store import fanouts, held, ratelimit
from listmgr.store import lists as repo
from listmgr.store.claims import local_prefix
from listmgr.store.models import Fanout, HeldPost, OutboundMessage, RateCounter, utcnow
from listmgr.store.outbound import enqueue


def _list(app, name="demo", members=("a@example.net", "b@example.net")):
    with app.store.session() as s:
        mlist = repo.create_list(s, name, ["owner@example.org"])
        repo.add_members(s, mlist, members)
        return mlist.id


def test_fanouts_of_dead_local_processes_are_freed_live_ones_kept(app):
    list_id = _list(app)
    dead_pid = 2 ** 22 + 12345  # above pid_max on Linux: no such process
    with app.store.session() as s:
        owners = [f"{local_prefix()}{dead_pid}:fanout", f"{local_prefix()}1:fanout",
                  "elsewhere:99:fanout"]
        for owner in owners:
            out = enqueue(s, app.spool, mail_from="", recipients=(), data=b"x\r\n")
            s.add(Fanout(message_id=out.id, list_id=list_id, lease_owner=owner,
                         lease_until=utcnow() + dt.timedelta(minutes=5)))
    with app.store.session() as s:
        assert fanouts.release_dead_local(s) == 1
    with app.store.session() as s:
        left = sorted(f.lease_owner for f in s.query(Fanout))
    assert left == sorted(["", f"{local_prefix()}1:fanout", "elsewhere:99:fanout"])


def test_drop_message_and_delivering_count(app):
    _list(app, members=("a@example.net", "b@example.net", "c@example.net"))
    with app.store.session() as s:
        mlist = repo.require_list(s, "demo")
        repo.set_digest(s, mlist, ["b@example.net"], True)
        assert repo.delivering_count(s, mlist) == 2
        out = enqueue(s, app.spool, mail_from="", recipients=(), data=b"x\r\n")
        fanouts.drop_message(s, out.id)
        assert s.get(OutboundMessage, out.id) is None


def test_roster_summary_counts_who_a_post_goes_to_and_sees_digest_members(app):
    list_id = _list(app, members=("a@example.net", "b@example.net", "c@example.net"))
    with app.store.session() as s:
        assert fanouts.roster_summary(s, list_id) == (3, False)
        mlist = repo.require_list(s, "demo")
        repo.set_digest(s, mlist, ["b@example.net"], True)
        assert fanouts.roster_summary(s, list_id) == (2, True)
        assert fanouts.roster_summary(s, list_id + 1000) == (0, False)  # no such list


def test_held_queries(app):
    list_id = _list(app)
    now = utcnow()
    with app.store.session() as s:
        for i, (state, expires) in enumerate([("held", now - dt.timedelta(hours=1)),
                                              ("held", now + dt.timedelta(days=1)),
                                              ("approved", now - dt.timedelta(hours=1))]):
            s.add(HeldPost(list_id=list_id, spool_path=f"spool/held/{i}", mail_from="p@x.org",
                           sender="p@x.org", subject="s", reasons="[]", state=state,
                           held_at=now, expires_at=expires))
    with app.store.session() as s:
        assert [h.spool_path for h in held.pending(s, "DEMO")] == ["spool/held/0",
                                                                   "spool/held/1"]
        assert held.pending(s, "other") == []
        assert len(held.pending_of_list(s, list_id)) == 2
        assert [h.spool_path for h in held.due_to_expire(s, now, 10)] == ["spool/held/0"]
        assert held.pending_paths(s) == {"spool/held/0", "spool/held/1"}
        assert held.list_name_of(s, held.pending(s)[0]) == "demo"


def test_which_search_and_counter_purge(app):
    _list(app, "one", ("Joe@Example.net", "ann@example.net"))
    _list(app, "two", ("joe@example.net",))
    with app.store.session() as s:
        ids = [repo.require_list(s, n).id for n in ("one", "two")]
        assert repo.find_in_rosters(s, ids, "JOE@", 10) == [("one", "Joe@Example.net"),
                                                            ("two", "joe@example.net")]
        assert repo.find_in_rosters(s, ids[:1], "joe", 10) == [("one", "Joe@Example.net")]
        assert repo.find_in_rosters(s, ids, "%", 10) == []  # LIKE wildcards are literal
        old = utcnow() - dt.timedelta(days=2)
        s.add_all([RateCounter(key="command-mail:x", window_start=old, count=1),
                   RateCounter(key="command-mail:y", window_start=utcnow(), count=1),
                   RateCounter(key="autoreply:x", window_start=old, count=1)])
        s.flush()
        assert ratelimit.delete_windows_before(s, "command-mail:",
                                               utcnow() - dt.timedelta(days=1)) == 1


def test_first_in_interval(app):
    now = utcnow()
    every = dt.timedelta(days=7)
    with app.store.session() as s:
        assert ratelimit.first_in_interval(s, "autoreply:u:x", now, every)
        assert not ratelimit.first_in_interval(s, "autoreply:u:x", now, every)
        assert ratelimit.first_in_interval(s, "autoreply:u:x", now + every, every)


def test_tokens_through_the_store(app):
    with app.store.session() as s:
        issued = tokens.issue(s, "t", lifetime=60)
        old = tokens.issue(s, "t", lifetime=60)
        old.token.expires_at = utcnow() - dt.timedelta(days=8)
    with app.store.session() as s:
        assert tokens.lookup(s, issued.secret.upper()) is not None
        assert tokens.purge_expired(s) == 1
        assert tokens.lookup(s, old.secret) is None
