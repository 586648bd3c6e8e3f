"""A list reaches posting and commands as a frozen ListSettings value, not a live ORM row."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import inspect

from listmgr.commands import context as command_context
from listmgr.listconfig import SETTINGS, format_value
from listmgr.posting import chain
from listmgr.store import lists as repo
from listmgr.store.models import MailingList
from listmgr.store.settings import ListSettings, read_all_lists, read_list, settings_of
from tests.commands_helpers import cmd_app, mailer, make_list  # noqa: F401  (fixtures)
from tests.test_posting_flow import mail, post, queued


def _fields() -> set[str]:
    return {f.name for f in dataclasses.fields(ListSettings)}


def test_every_setting_and_column_has_a_field():
    columns = {c.key for c in inspect(MailingList).column_attrs}
    assert columns <= _fields()
    for setting in SETTINGS.values():
        if setting.get is None and setting.put is None:
            assert setting.attr in _fields(), setting.key


def test_the_value_is_frozen_and_owners_a_tuple(cmd_app):
    make_list(cmd_app, "frozen", owner="owner@example.com")
    with cmd_app.store.session() as s:
        mlist = read_list(s, "FROZEN")
        assert isinstance(mlist, ListSettings)
        assert not isinstance(mlist, MailingList)
        assert mlist.owners == ("owner@example.com",)
        with pytest.raises(dataclasses.FrozenInstanceError):
            mlist.post_policy = "open"  # type: ignore[misc]
        assert [m.name for m in read_all_lists(s)] == ["frozen"]
        assert read_list(s, "nosuch") is None


def test_owners_format_one_a_line_from_value_and_row(cmd_app):
    make_list(cmd_app, "two", owner="a@example.com")
    with cmd_app.store.session() as s:
        row = repo.require_list(s, "two")
        repo.set_setting(s, row, "owners", "a@example.com\nb@example.com")
    with cmd_app.store.session() as s:
        value = read_list(s, "two")
        assert value is not None
        row = repo.require_list(s, "two")
        assert format_value(value, SETTINGS["owners"]) == "a@example.com\nb@example.com"
        assert format_value(row, SETTINGS["owners"]) == "a@example.com\nb@example.com"
        assert repo.owners_of(value) == repo.owners_of(row) == ["a@example.com", "b@example.com"]
        assert settings_of(row) == value


def test_command_handlers_get_a_list_settings(mailer, monkeypatch):
    make_list(mailer.app, "demo")
    seen = []
    find = command_context.Context.find_list

    def spy(self, raw):
        found = find(self, raw)
        seen.append(found)
        return found
    monkeypatch.setattr(command_context.Context, "find_list", spy)
    out = mailer.send("info demo\nwho demo\n")
    assert out.reply is not None
    assert seen and all(isinstance(m, ListSettings) for m in seen), seen


def test_writes_go_through_the_store(mailer):
    """newinfo, passwd and newconfig change the row although handlers hold frozen values."""
    make_list(mailer.app, "demo", password="s3cret")
    mailer.send("newinfo demo s3cret\nNew info text.\nEOF\n")
    mailer.send("passwd demo s3cret n3w\n")
    out = mailer.send("info demo\n")
    assert "New info text." in out.text
    with mailer.app.store.session() as s:
        mlist = read_list(s, "demo")
        assert mlist is not None and "New info text." in mlist.info
    assert "invalid" not in mailer.send("config demo n3w\n").text.lower()


@pytest.fixture
def posting_app(app):
    with app.store.session() as s:
        ml = repo.create_list(s, "demo", ["owner@example.org"], password="s3cret")
        repo.set_setting(s, ml, "post_policy", "open")
        repo.add_members(s, ml, ["m1@example.net"])
    return app


def test_posting_gets_a_list_settings(posting_app, monkeypatch):
    seen = []
    build = chain.build_post

    def spy(*, mlist, **kw):
        seen.append(mlist)
        return build(mlist=mlist, **kw)
    monkeypatch.setattr(chain, "build_post", spy)
    post(posting_app, mail())
    post(posting_app, mail())
    assert seen and all(isinstance(m, ListSettings) for m in seen), seen
    sent = queued(posting_app)
    assert len(sent) == 2
    with posting_app.store.session() as s:
        mlist = read_list(s, "demo")
        assert mlist is not None and mlist.post_sequence == 2
