"""who LIST and which [ADDR] (reference 2.4).

Better than Majordomo: `which` matches whole addresses, never substrings, so `which @`
no longer lists every subscriber of the site (reference 8.10).
"""

from __future__ import annotations

from listmgr.commands.context import Context
from listmgr.commands.registry import command
from listmgr.mail.addresses import AddressError, normalise, parse_single
from listmgr.store import lists as repo
from listmgr.store.settings import read_all_lists


@command("who")
def do_who(ctx: Context, args: list[str], line=None) -> None:
    raw, mlist, _rest = ctx.get_listname("who", 0, args)
    if mlist is None:
        ctx.say("who_no_such_list", list=raw)
        return
    if not ctx.approved and mlist.who_access == "closed":
        ctx.say("command_disabled")
        return
    if not ctx.approved and not ctx.access("who", mlist):
        ctx.say("private_list_who", list=mlist.name, requester=ctx.req.requester)
        return
    ctx.say("who_header", list=mlist.name)
    n = 0
    for batch in repo.iter_member_batches(ctx.s, mlist, enabled_only=False):
        for _id, addr in batch:
            ctx.out.lines.append(addr)
            n += 1
    ctx.say("who_footer", n=n)


@command("which")
def do_which(ctx: Context, args: list[str], line=None) -> None:
    """Majordomo's which: every entry, in every list the requester may search
    (which_access), that contains STRING, ignoring case; at most [commands] max_which_hits."""
    string = " ".join(args)
    if not string:
        try:
            string = parse_single(ctx.req.address)
        except AddressError:
            string = ctx.req.address
    ctx.say("which_header", string=string, whoami=ctx.whoami)
    allowed = {m.id: m.name for m in read_all_lists(ctx.s)
               if ctx.approved or ctx.access("which", m)}
    limit = ctx.app.config.commands.max_which_hits
    hits: list[tuple[str, str]] = []
    if allowed and string:
        hits = repo.find_in_rosters(ctx.s, allowed, string, limit + 1)
    if hits:
        ctx.say("which_table_head")
        for name, addr in hits[:limit]:
            ctx.say("which_row", list=name, addr=addr)
        if len(hits) > limit:
            ctx.say("which_max_hits", n=limit)
    else:
        ctx.say("which_no_matches")
    ctx.out.lines.append("")
