"""Item 10: bad input to a command mail is a one-line error, never the end of the mail.

`maxlength = 99999999999999999999999` once answered "Sorry, an error has occurred" and
dropped the rest; `hold_expiry = 99999999999d` was accepted; a From: whose `Name <addr>`
cannot give a queueable address shunted the mail with no reply; full-width list names
were not read as their ASCII forms.
"""

from __future__ import annotations

import base64

import pytest

from listmgr.listconfig import SettingError, parse_value
from tests.commands_helpers import cmd_app, mailer, members_of  # noqa: F401  (fixtures)
from tests.commands_helpers import make_list


@pytest.mark.parametrize("key,value", [
    ("maxlength", "99999999999999999999999"),
    ("maxlength", "2000000000"),
    ("hold_expiry", "99999999999d"),
    ("hold_expiry", "400d"),
    ("hold_expiry", "1" * 400),
])
def test_out_of_range_values_are_refused(key, value):
    with pytest.raises(SettingError) as exc:
        parse_value(key, value)
    assert key in str(exc.value)


def test_in_range_values_are_kept():
    assert parse_value("maxlength", "40000") == 40000
    assert parse_value("hold_expiry", "30d") == 30 * 86400


def test_newconfig_with_huge_numbers_answers_each_line(mailer):
    make_list(mailer.app, description="Before")
    out = mailer.send("newconfig demo s3cret\n"
                      "maxlength = 99999999999999999999999\n"
                      "hold_expiry = 99999999999d\n"
                      "EOF\n"
                      "lists\n")
    text = out.text
    assert "Sorry, an error has occurred" not in text
    assert "NOT accepted" in text
    assert "maxlength" in text and "hold_expiry" in text
    assert ">>>> lists" in text  # the rest of the mail was processed


def _ew(text: str, charset: str = "utf-8") -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


@pytest.mark.parametrize("frm", [_ew('"a b"@example.jp'), '"a b"@example.jp',
                                 _ew("山田 <ヤマダ@example.jp>"),
                                 _ew("x <y@example.jp> z", "iso-2022-jp")])
def test_unusable_from_falls_back_to_the_envelope_sender(mailer, frm):
    out = mailer.send("help\n", frm=frm, mail_from="yamada@example.jp")
    assert out.reply is not None
    assert out.reply.rcpts == ["yamada@example.jp"]


def test_full_width_list_name(mailer):
    make_list(mailer.app, "demo", subscribe_policy="open")
    out = mailer.send("ｓｕｂｓｃｒｉｂｅ　ｄｅｍｏ\n", frm="joe@example.net")
    assert "Succeeded" in out.text or "succeeded" in out.text.lower()
    assert members_of(mailer.app, "demo") == ["joe@example.net"]
