"""Mailbox users and relay grants in the store (both databases)."""

from __future__ import annotations

import datetime as dt

import pytest

from listmgr.passwords import verify_password
from listmgr.store import lists, mailboxes
from listmgr.store.models import utcnow


def test_add_get_passwd_delete(app):
    with app.store.session() as s:
        u = mailboxes.add_user(s, "Alice", "pw one")
        assert u.name == "alice" and u.password_hash.startswith("$argon2id$")
        assert "pw one" not in u.password_hash
    with app.store.session() as s:
        assert mailboxes.user_exists(s, "ALICE")
        assert not mailboxes.user_exists(s, "bob")
        mailboxes.set_password(s, "alice", "pw two")
    with app.store.session() as s:
        assert verify_password(mailboxes.get_user(s, "alice").password_hash, "pw two")
        assert [u.name for u in mailboxes.all_users(s)] == ["alice"]
        mailboxes.delete_user(s, "alice")
    with app.store.session() as s:
        assert mailboxes.get_user(s, "alice") is None
        with pytest.raises(mailboxes.NoSuchUser):
            mailboxes.delete_user(s, "alice")


@pytest.mark.parametrize("name", ["", "a b", "x@y", "majordomo", "postmaster", "demo-request",
                                  "owner-demo", "a" * 65, "../etc", ".hidden", "a..b"])
def test_refused_names(app, name):
    with app.store.session() as s:
        with pytest.raises(mailboxes.UserError):
            mailboxes.add_user(s, name, "pw")


def test_refused_duplicates_list_names_and_empty_passwords(app):
    with app.store.session() as s:
        mailboxes.add_user(s, "alice", "pw")
        lists.create_list(s, "demo", ["owner@example.org"])
    with app.store.session() as s:
        with pytest.raises(mailboxes.UserError, match="already exists"):
            mailboxes.add_user(s, "ALICE", "pw")
        with pytest.raises(mailboxes.UserError, match="mailing list"):
            mailboxes.add_user(s, "demo", "pw")
        with pytest.raises(mailboxes.UserError, match="empty"):
            mailboxes.add_user(s, "carol", "")


def test_relay_grants_window_and_purge(app):
    t0 = utcnow()
    with app.store.session() as s:
        mailboxes.grant_relay(s, "::ffff:192.0.2.7", "alice", 60, now=t0)
        mailboxes.grant_relay(s, "192.0.2.8", "bob", 10, now=t0 - dt.timedelta(seconds=30))
    with app.store.session() as s:
        assert mailboxes.relay_allowed(s, "192.0.2.7", now=t0 + dt.timedelta(seconds=59))
        assert not mailboxes.relay_allowed(s, "192.0.2.7", now=t0 + dt.timedelta(seconds=60))
        assert not mailboxes.relay_allowed(s, "192.0.2.9", now=t0)
        assert not mailboxes.relay_allowed(s, "192.0.2.8", now=t0)  # expired
        live = mailboxes.live_grants(s, now=t0)
        assert [(g.ip, g.user) for g in live] == [("192.0.2.7", "alice")]
        assert mailboxes.purge_expired_grants(s, now=t0) == 1
        assert mailboxes.purge_expired_grants(s, now=t0) == 0
    # A later login renews the window.
    with app.store.session() as s:
        mailboxes.grant_relay(s, "192.0.2.7", "alice", 60, now=t0 + dt.timedelta(seconds=50))
    with app.store.session() as s:
        assert mailboxes.relay_allowed(s, "192.0.2.7", now=t0 + dt.timedelta(seconds=100))
        live = mailboxes.live_grants(s, now=t0)
        assert len(live) == 1 and live[0].expires_at == t0 + dt.timedelta(seconds=110)


def test_normalise_ip():
    assert mailboxes.normalise_ip("::ffff:127.0.0.1") == "127.0.0.1"
    assert mailboxes.normalise_ip("fe80::1%eth0") == "fe80::1"
    assert mailboxes.normalise_ip("2001:DB8::1") == "2001:db8::1"
    assert mailboxes.normalise_ip("not an ip") == "not an ip"


def test_zero_window_grants_nothing(app):
    with app.store.session() as s:
        mailboxes.grant_relay(s, "192.0.2.7", "alice", 0)
    with app.store.session() as s:
        assert not mailboxes.relay_allowed(s, "192.0.2.7")
