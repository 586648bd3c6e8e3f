"""mkdigest LIST PASSWD, and set LIST digest|nodigest [ADDRESS] (listmgr.posting.digest).

Majordomo's `mkdigest DIGESTLIST [OUTGOING] PW` runs its digest program at once; here it
sends the list's digest of the posts waiting. `LIST-digest` names the list LIST.
`set` is Majordomo 2's command for a member's delivery mode; a member changes their own.
"""

from __future__ import annotations

import logging

from listmgr.commands.context import Context
from listmgr.commands.registry import command
from listmgr.mail.addresses import AddressError, parse_single
from listmgr.posting import digest
from listmgr.store import lists as repo

log = logging.getLogger(__name__)


def _digest_name(args: list[str]) -> list[str]:
    """`LIST-digest` -> `LIST` (Majordomo's digest list is this list in digest mode)."""
    if args and args[0].lower().endswith("-digest"):
        return [args[0][:-7], *args[1:]]
    return args


@command("mkdigest")
def do_mkdigest(ctx: Context, args: list[str], line=None) -> None:
    args = _digest_name(args)
    raw, mlist, rest = ctx.get_listname("mkdigest", 1, args)
    passwd = rest[-1] if rest else ""  # Majordomo's optional OUTGOING comes before it
    if not passwd:
        ctx.squawk("needs_password", cmd="mkdigest")
    if mlist is None:
        ctx.squawk("unknown_list", cmd="mkdigest", list=raw)
        return
    if not ctx.password_ok(mlist, passwd):
        ctx.squawk("invalid_password", cmd="mkdigest")
        log.warning("FAILED mkdigest %s PASSWORD requester=<%s>", mlist.name, ctx.req.address)
        return
    sent = digest.send(ctx.app, ctx.s, mlist)
    if sent is None:
        ctx.say("mkdigest_empty", list=mlist.name)
        return
    ctx.say("mkdigest_sent", list=mlist.name, volume=sent.volume, issue=sent.issue,
            posts=sent.posts, recipients=sent.recipients)
    log.info("mkdigest %s V%d #%d requester=<%s>", mlist.name, sent.volume, sent.issue,
             ctx.req.address)


def set_digest_mode(ctx: Context, args: list[str]) -> None:
    """`set LIST digest|nodigest [ADDRESS]` (the `set` command hands these two options here)."""
    raw, mlist, rest = ctx.get_listname("set", 1, _digest_name(args))
    mode = rest[0].lower() if rest else ""
    if mlist is None:
        ctx.squawk("unknown_list", cmd="set", list=raw)
        return
    if mode not in ("digest", "nodigest"):
        ctx.squawk("set_digest_usage")
        return
    target = " ".join(rest[1:]) or ctx.req.address
    try:
        addr = parse_single(target)
    except AddressError:
        ctx.squawk("invalid_address", cmd="set", addr=target)
        return
    if rest[1:] and not ctx.is_self(addr):
        ctx.squawk("set_digest_only_self", addr=target)
        return
    member = repo.find_member(ctx.s, mlist, addr)
    if member is None:
        ctx.squawk("set_digest_not_member", list=mlist.name, addr=target)
        return
    member.digest = mode == "digest"
    ctx.say("set_done", list=mlist.name, addr=addr, mode=mode)
    log.info("set %s %s %s requester=<%s>", mlist.name, mode, addr, ctx.req.address)
