"""Owners and members act on bounces: `listmgr bounces`, `members --status/--enable`, and
the mail command `set LIST mail|nomail`."""

from __future__ import annotations

import datetime as dt

from listmgr import config as config_mod
from listmgr.app import App
from listmgr.bounces import processor, scores
from listmgr.store import lists as repo
from tests.commands_helpers import make_list, mailer, cmd_app  # noqa: F401  (fixtures)
from tests.support import run_cli

JOE = "joe@example.net"


def _bounce(cfg, address: str, weight: float, days_ago: int, reason: str) -> None:
    app = App.from_config(config_mod.load(cfg))
    try:
        with app.store.session() as s:
            mlist = repo.require_list(s, "demo")
            now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) \
                - dt.timedelta(days=days_ago)
            processor.record(app, s, mlist, address, weight, reason, now=now)
    finally:
        app.store.dispose()


def test_owner_sees_and_reenables(config_file):
    cfg = config_file()
    run_cli(cfg, "init")
    run_cli(cfg, "newlist", "demo", "--owner", "owner@example.org")
    run_cli(cfg, "subscribe", "demo", "a@example.net", "b@example.net", "c@example.net")
    run_cli(cfg, "config", "demo", "bounce_score_threshold", "1.5")
    _bounce(cfg, "b@example.net", scores.SOFT, 2, "452 4.2.2 Mailbox full")
    _bounce(cfg, "c@example.net", scores.HARD, 1, "550 5.1.1 User unknown")
    _bounce(cfg, "c@example.net", scores.HARD, 0, "550 5.1.1 User unknown")

    r = run_cli(cfg, "bounces", "demo")
    assert r.status == 0
    lines = r.out.splitlines()
    assert lines[0].split() == ["address", "score", "last", "bounce", "state"]
    [b] = [ln for ln in lines if ln.startswith("b@example.net")]
    assert b.split()[1] == "0.5" and b.endswith("enabled")
    [c] = [ln for ln in lines if ln.startswith("c@example.net")]
    assert c.split()[1] == "2.0" and "disabled, 1/3 notice(s)" in c
    assert "    550 5.1.1 User unknown" in lines
    assert not any(ln.startswith("a@example.net") for ln in lines)

    r = run_cli(cfg, "members", "demo", "--status")
    assert r.status == 0
    assert r.out.splitlines() == [
        "a@example.net  delivery on  score 0",
        "b@example.net  delivery on  score 0.5",
        "c@example.net  delivery off (bounces)  score 2",
    ]
    r = run_cli(cfg, "members", "demo", "--enable", "C@example.net")
    assert r.status == 0 and r.out == "demo: delivery to c@example.net on\n"
    assert "c@example.net  delivery on  score 0" in run_cli(cfg, "members", "demo",
                                                           "--status").out
    r = run_cli(cfg, "members", "demo", "--disable", "a@example.net")
    assert r.status == 0
    assert "a@example.net  delivery off (by an owner)  score 0" in run_cli(
        cfg, "members", "demo", "--status").out
    # Plain `members` is unchanged: every member, one a line.
    assert run_cli(cfg, "members", "demo").out.split() == [
        "a@example.net", "b@example.net", "c@example.net"]

    r = run_cli(cfg, "members", "demo", "--enable", "nobody@example.net")
    assert r.status == 1 and "not a member of demo" in r.err
    r = run_cli(cfg, "bounces", "nolist")
    assert r.status == 1 and "no list named 'nolist'" in r.err


def test_empty_bounce_report(config_file):
    cfg = config_file()
    run_cli(cfg, "init")
    run_cli(cfg, "newlist", "demo", "--owner", "owner@example.org")
    r = run_cli(cfg, "bounces", "demo")
    assert r.status == 0 and r.out == "demo: no bounces (threshold 5)\n"


def _member(app, address):
    with app.store.session() as s:
        m = processor.find_member(s, repo.require_list(s, "demo"), address)
        return (m.delivery_enabled, m.disabled_reason) if m else None


def test_set_nomail_then_mail(mailer):
    make_list(mailer.app, members=(JOE, "ann@example.net"))
    out = mailer.send("set demo nomail\n")
    assert "Delivery from demo to joe@example.net is off." in out.lines
    assert _member(mailer.app, JOE) == (False, "member")
    out = mailer.send("set demo mail\n")
    assert "Delivery from demo to joe@example.net is on again." in out.lines
    assert _member(mailer.app, JOE) == (True, "")


def test_set_refuses_someone_else_and_non_members(mailer):
    make_list(mailer.app, members=(JOE, "ann@example.net"))
    out = mailer.send("set demo nomail ann@example.net\n")
    assert any("only your own subscription" in ln for ln in out.lines)
    assert _member(mailer.app, "ann@example.net") == (True, "")
    out = mailer.send("set demo nomail\n", frm="stranger@example.org")
    assert any("is not a member of demo" in ln for ln in out.lines)
    out = mailer.send("set demo sometimes\n")
    assert any("Usage: set LIST mail|nomail" in ln for ln in out.lines)
