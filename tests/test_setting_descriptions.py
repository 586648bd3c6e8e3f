"""Every list setting's help text in Japanese (templates/ja/settings.toml): on the owner's
settings page in a Japanese session, and as the comments of the file `config` writes for a
Japanese list, which newconfig still reads back unchanged."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from importlib import resources

import pytest
from markupsafe import escape

from listmgr.commands import texts
from listmgr.listconfig import SETTINGS, describe
from listmgr.majordomo import configmap
from listmgr.majordomo.configfile import wrap_columns
from tests.commands_helpers import cmd_app, mailer, make_list  # noqa: F401
from tests.test_majordomo_config import majordomo_reads, newconfig
from tests.test_web_owner import ADMIN, owner_login, srv  # noqa: F401
from tests.web_support import client, post_form

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def ja_table() -> dict[str, str]:
    path = resources.files("listmgr.templates").joinpath("ja", "settings.toml")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def test_every_setting_has_a_japanese_help_text():
    table = ja_table()
    assert sorted(table) == sorted(SETTINGS), "templates/ja/settings.toml: one entry a key"
    for key, setting in SETTINGS.items():
        ja = table[key]
        assert isinstance(ja, str) and ja.strip(), key
        assert ja != setting.description and JAPANESE.search(ja), key
        assert describe(key, "ja") == describe(setting, "ja") == ja


def test_translations_keep_the_words_a_list_owner_types():
    """Setting names, values, command words and macros in backquotes or $ stay as they are."""
    for key, setting in SETTINGS.items():
        english = setting.description
        kept = set(re.findall(r"`[^`]+`|\$[A-Z]+|\b[a-z_]+_[a-z_]+\b|\bRFC \d+\b"
                              r"|\b[A-Z][a-z-]*(?:-[A-Za-z]+)*:", english))
        for word in kept:
            assert word in describe(key, "ja"), (key, word)


def test_other_languages_get_the_english_text():
    for setting in SETTINGS.values():
        assert describe(setting, "en") == setting.description
        assert describe(setting.key, "xx") == setting.description
        assert describe(setting, "../en") == setting.description


def test_a_japanese_lists_config_has_japanese_comments_and_reads_back(mailer):
    make_list(mailer.app, description="Demo list", subject_prefix="[$LIST]",
              taboo_body="/viagra/i", message_footer="--\n  indented\n\nlast",
              post_policy="moderated", language="ja")
    out = mailer.send("config demo s3cret")
    text = "\n".join(out.lines[1:])
    comments = [ln for ln in out.lines if ln.startswith("\t# ")]
    assert comments and any(JAPANESE.search(c) for c in comments)
    said = "".join(c[3:] for c in comments)
    for key in configmap.KEYWORDS:
        assert describe(key, "ja").replace(" ", "") in said.replace(" ", ""), key
        assert SETTINGS[key].description not in text, key
    for c in comments:  # 66 columns (a wide character takes two), as the English ones
        columns = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in c[3:])
        assert columns <= 66 + 2 and c[3] not in "、。）", c
        assert c[-1] not in "（", c
    assert "\t# `lists`" not in out.lines  # lines are filled, not cut at every space
    assert majordomo_reads(text) == []
    again = newconfig(mailer, text)
    assert texts.msg("ja", "newconfig_accepted", list="demo") in again.lines, again.text
    assert again.lines[again.lines.index(">>>> config demo s3cret") + 1:] == out.lines[1:]


def test_japanese_lines_break_between_characters_by_columns():
    assert wrap_columns("あ" * 40, 66) == ["あ" * 33, "あ" * 7]
    assert wrap_columns("a" * 10 + " " + "い" * 30, 66) == ["a" * 10 + " " + "い" * 27, "い" * 3]
    assert wrap_columns("う" * 32 + "、次", 66) == ["う" * 32 + "、", "次"]
    assert wrap_columns("う" * 32 + "（on）", 66) == ["う" * 32, "（on）"]
    assert wrap_columns("え" * 30 + " import-majordomo が", 66) == ["え" * 30,
                                                                   "import-majordomo が"]


def test_an_english_lists_config_keeps_english_comments(mailer):
    make_list(mailer.app, language="en")
    out = mailer.send("config demo s3cret")
    assert not JAPANESE.search(out.text)
    assert f"\t# {SETTINGS['description'].description}" in out.lines


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_owners_settings_page_speaks_the_sessions_language(srv, lang):  # noqa: F811
    with client(srv) as c:
        owner_login(c)
        page = c.get(f"{ADMIN}settings/").text
        if lang == "ja":
            page = post_form(c, "/lang", {"lang": "ja", "next": f"{ADMIN}settings/"},
                             page=page).text
            assert 'lang="ja"' in page
        for setting in SETTINGS.values():
            assert str(escape(describe(setting, lang))) in page, setting.key
        other = "en" if lang == "ja" else "ja"
        assert str(escape(describe("post_policy", other))) not in page
