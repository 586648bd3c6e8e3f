"""lists, help (and `help admin`)."""

from __future__ import annotations

from listmgr import patterns as regexps
from listmgr.commands.context import Context
from listmgr.commands.dispatch import help_text
from listmgr.commands.registry import command
from listmgr.listconfig import parse_regexp
from listmgr.store.settings import ListSettings, read_all_lists

MATCH_TIMEOUT = 0.5  # seconds per advertise/noadvertise pattern and address


def _matches_any(patterns: str, address: str) -> bool:
    for item in patterns.split("\n"):
        if not item.strip():
            continue
        try:
            if regexps.search(parse_regexp(item), address, MATCH_TIMEOUT):
                return True
        except (ValueError, TimeoutError):
            continue  # a refused or runaway pattern matches nobody
    return False


def visible(ctx: Context, mlist: ListSettings) -> bool:
    """advertise / noadvertise against the requester's address; members always see it."""
    if not mlist.advertise and not mlist.noadvertise:
        return True
    addr = ctx.req.address
    shown = _matches_any(mlist.advertise, addr) if mlist.advertise else True
    if shown and mlist.noadvertise and _matches_any(mlist.noadvertise, addr):
        shown = False
    return shown or ctx.is_member(mlist)


@command("lists")
def do_lists(ctx: Context, args: list[str], line=None) -> None:
    ctx.say("lists_header", whoami=ctx.whoami)
    for mlist in read_all_lists(ctx.s):
        if visible(ctx, mlist):
            ctx.out.lines.append(ctx.t("lists_row", list=mlist.name,
                                       description=mlist.description))
    ctx.say("lists_footer")


@command("help")
def do_help(ctx: Context, args: list[str], line=None) -> None:
    admin = bool(args) and args[0].lower() == "admin"
    ctx.out.say(help_text(ctx, admin=admin))
