"""Replies that follow Majordomo 1.94.5's wording where they used to differ (reference
sections on subscribe, which, info and intro)."""

from __future__ import annotations

import datetime as dt

from tests.commands_helpers import cmd_app, mailer, make_list  # noqa: F401

JOE = "joe@example.net"


def test_forwarded_request_echoes_the_address_as_written(mailer):
    make_list(mailer.app, subscribe_policy="closed")
    out = mailer.send("subscribe demo Joe Example <joe@example.net>",
                      frm="Joe Example <joe@example.net>")
    assert 'has been forwarded to the owner of the "demo" list for approval.' in out.text
    assert "\tsubscribe demo Joe Example <joe@example.net>" in out.text
    [request] = out.to("owner@example.com")
    assert "\tsubscribe demo Joe Example <joe@example.net>" in request.lines
    assert request.lines[2].startswith("Joe Example <joe@example.net> requests that you "
                                       "approve the following:")


def test_which_finds_every_entry_containing_the_string(mailer):
    app = mailer.app
    make_list(app, "alpha", members=(JOE, "Ann <ann@Example.NET>", "bob@other.org"),
              strip=False)
    make_list(app, "beta", members=("joe@example.net",))
    make_list(app, "hidden", members=("joe@example.net",), which_access="closed")
    make_list(app, "members-only", members=("zed@example.net",), which_access="list")
    out = mailer.send("which example.NET")
    lines = out.lines
    i = lines.index("List                    Address")
    assert lines[i + 2:i + 5] == ["alpha                   joe@example.net",
                                  "alpha                   Ann <ann@Example.NET>",
                                  "beta                    joe@example.net"]
    assert not any(ln.startswith(("hidden", "members-only")) for ln in lines)
    out = mailer.send("which zed", frm="zed@example.net")
    assert "members-only            zed@example.net" in out.lines
    # The hit limit, as Majordomo's $max_which_hits.
    make_list(app, "many", members=tuple(f"m{i}@example.org" for i in range(150)))
    out = mailer.send("which @example.org")
    assert sum(1 for ln in out.lines if ln.startswith("many ")) == 100
    assert "Maximum number of hits (100) exceeded" in out.lines


def test_last_updated_line_exactly_when_majordomo_adds_it(mailer):
    make_list(mailer.app, date_info=False, date_intro=True, intro_access="open")
    out = mailer.send("newinfo demo s3cret\nAbout demo.\nEOF\n"
                      "newintro demo s3cret\nHello.\nEOF\ninfo demo\nintro demo",
                      frm="owner@example.com")
    lines = out.lines
    i = lines.index(">>>> info demo")
    # date_info = no: the text, a blank line, then the date of the last newinfo.
    assert lines[i + 1:i + 3] == ["About demo.", ""]
    stamp = lines[i + 3]
    assert stamp.startswith("[Last updated ") and stamp.endswith("]")
    dt.datetime.strptime(stamp[len("[Last updated "):-1], "%a %b %d %H:%M:%S %Y")
    # date_intro = yes: the stamp was written at the top by newintro; nothing after.
    j = lines.index(">>>> intro demo")
    assert lines[j + 1].startswith("[Last updated on: ") and lines[j + 2] == "Hello."
    assert not any(ln.startswith("[Last updated ") and "on:" not in ln
                   for ln in lines[j:])
    # A text set without a known time (e.g. by the CLI) gets no line.
    make_list(mailer.app, "plain", date_info=False, info="Plain info.")
    out = mailer.send("info plain")
    assert not any(ln.startswith("[Last updated") for ln in out.lines)
