"""info / intro LIST and newinfo / newintro LIST PASSWD (reference 2.4).

As in Majordomo: with date_info (date_intro) = yes, newinfo writes `[Last updated on:
DATE]` as the text's first line; with no, `info` adds a blank line and `[Last updated
DATE]` after the text, from the time the text was last replaced, when that is known.
"""

from __future__ import annotations

import calendar
import time

from listmgr.commands import texts
from listmgr.commands.context import Context
from listmgr.commands.registry import command
from listmgr.store.models import utcnow
from listmgr.store.settings import set_list_text


def _show(ctx: Context, what: str, args: list[str]) -> None:
    raw, mlist, rest = ctx.get_listname(what, 0, args)
    if mlist is None:
        ctx.squawk("unknown_list", cmd=what, list=raw)
        return
    allow = ctx.approved or ctx.access(what, mlist)
    if not allow and rest and ctx.password_ok(mlist, rest[0]):
        allow = True
    text = getattr(mlist, what)
    if allow and text:
        ctx.out.say(text)
        updated = getattr(mlist, f"{what}_updated_at")
        if not getattr(mlist, f"date_{what}") and updated is not None:
            stamp = time.ctime(calendar.timegm(updated.timetuple()))
            ctx.out.lines.extend(["", ctx.t("info_updated", stamp=stamp, at=updated)])
    else:
        ctx.say(f"no_{what}", list=mlist.name)


def _replace(ctx: Context, what: str, args: list[str], line) -> None:
    sm = f"new{what}"
    raw, mlist, rest = ctx.get_listname(sm, 1, args)
    passwd = rest[0] if rest else ""
    if not passwd:
        ctx.squawk("needs_password", cmd=sm)
    if mlist is None:
        ctx.squawk("unknown_list", cmd=sm, list=raw)
        return
    if not ctx.password_ok(mlist, passwd):
        ctx.squawk("invalid_password", cmd=sm)
        return
    data = "\n".join(line.data) if line is not None else ""
    if data.strip() and getattr(mlist, f"date_{what}"):
        now = utcnow()
        stamp = time.ctime(calendar.timegm(now.timetuple()))
        data = texts.msg(ctx.list_lang(mlist), "info_dated", stamp=stamp, at=now) + "\n" + data
    set_list_text(ctx.s, mlist, what, data if data.strip() else "",
                  utcnow() if data.strip() else None)
    ctx.say(f"new{what}_accepted", list=mlist.name)


@command("info")
def do_info(ctx: Context, args: list[str], line=None) -> None:
    _show(ctx, "info", args)


@command("intro")
def do_intro(ctx: Context, args: list[str], line=None) -> None:
    _show(ctx, "intro", args)


@command("newinfo")
def do_newinfo(ctx: Context, args: list[str], line=None) -> None:
    _replace(ctx, "info", args, line)


@command("newintro")
def do_newintro(ctx: Context, args: list[str], line=None) -> None:
    _replace(ctx, "intro", args, line)
