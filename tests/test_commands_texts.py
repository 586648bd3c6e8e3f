"""Every reply text exists in English and Japanese and renders."""

from __future__ import annotations

import datetime

import pytest

from listmgr.commands import texts
from listmgr.render import environment

LONG = ["help", "help_admin", "confirm", "confirm_reply", "approval_request",
        "forwarded_reply", "welcome", "config_header", "newlist_request", "newlist_owner"]


def macros(lang):
    mod = texts._module(lang)
    return {n: getattr(mod, n) for n in dir(mod) if not n.startswith("_")
            and callable(getattr(mod, n))}


def test_japanese_has_every_message_with_the_same_arguments():
    en, ja = macros("en"), macros("ja")
    assert set(en) == set(ja), set(en) ^ set(ja)
    for name, m in en.items():
        assert m.arguments == ja[name].arguments, name


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_every_message_renders(lang):
    for name, m in macros(lang).items():
        samples = {"size": 1, "at": datetime.datetime(2026, 12, 3, 4, 26)}
        out = texts.msg(lang, name, **{a: samples.get(a, "x") for a in m.arguments})
        assert out.strip(), name


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("name", LONG)
def test_long_texts_exist_and_render(lang, name):
    environment().get_template(f"{lang}/commands/{name}.txt")
    ctx = dict(whoami="majordomo@example.org", whoami_owner="majordomo-owner@example.org",
               domain="example.org", version="1", list="demo", subscriber="a@example.com",
               cmd="subscribe", key="k", lifetime="7 days", requester="r@example.com",
               owner="o@example.com", password="pw", description="", intro="", info="")
    assert texts.text(name, lang, **ctx).strip()
