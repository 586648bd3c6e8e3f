"""Item 7: passwords cannot be guessed by mail.

One mail once carried 100 guesses, with no lockout. Now the first failed check ends the
checking for that mail, and after 5 failures in an hour for a list (or from a requester)
no password is checked at all; the owners are told once.
"""

from __future__ import annotations

from listmgr.commands import passguard
from tests.commands_helpers import cmd_app, mailer  # noqa: F401  (fixtures)
from tests.commands_helpers import make_list


def invalid_count(text: str) -> int:
    return text.count("invalid password")


def test_one_mail_gets_one_check(mailer):
    make_list(mailer.app)
    body = "".join(f"config demo guess{i}\n" for i in range(99)) + "config demo s3cret\n"
    out = mailer.send(body)
    assert invalid_count(out.text) == 100  # the right one, after a failure, is not checked
    assert "demo.config" not in out.text.lower() or "admin_passwd" not in out.text
    # A later mail (a failure counted, not yet the limit) is checked again.
    out = mailer.send("config demo s3cret\n")
    assert invalid_count(out.text) == 0


def test_lockout_after_five_failures_and_owners_told_once(mailer):
    make_list(mailer.app, owner="owner@example.com")
    notices = []
    for i in range(passguard.MAX_FAILURES + 2):
        out = mailer.send(f"config demo wrong{i}\n", frm=f"guesser{i}@example.net")
        assert invalid_count(out.text) == 1
        notices += out.to("owner@example.com")
    assert len(notices) == 1
    assert "Password guessing on demo" in str(notices[0].message["Subject"])
    # Now even the right password is not checked, from anyone, until the hour is over.
    out = mailer.send("config demo s3cret\n", frm="owner@example.com")
    assert invalid_count(out.text) == 1


def test_requester_lockout_spans_lists(mailer):
    make_list(mailer.app, "demo")
    for i in range(passguard.MAX_FAILURES):
        make_list(mailer.app, f"l{i}")
        mailer.send(f"config l{i} wrong\n", frm="guesser@example.net")
    out = mailer.send("config demo s3cret\n", frm="guesser@example.net")
    assert invalid_count(out.text) == 1
    out = mailer.send("config demo s3cret\n", frm="someone@example.net")
    assert invalid_count(out.text) == 0
