"""Owner commands: `approve PASSWD CMD LIST ...` and `passwd LIST OLD NEW` (reference 2.4).

Passwords are checked against argon2 hashes (constant time) and never logged.
"""

from __future__ import annotations

import logging

from listmgr.commands.context import Context
from listmgr.commands.registry import COMMANDS, command
from listmgr.passwords import hash_password, verify_password
from listmgr.store.settings import set_admin_password

log = logging.getLogger(__name__)

APPROVABLE = ("subscribe", "unsubscribe", "get", "index", "info", "intro", "who", "which")
SITE_COMMANDS = ("newlist", "rmlist")


@command("approve")
def do_approve(ctx: Context, args: list[str], line=None) -> None:
    sm = "approve"
    passwd = args[0] if args else ""
    if not passwd:
        ctx.squawk("needs_passwd", cmd=sm)
    cmd = args[1].lower() if len(args) > 1 else ""
    if not cmd:
        ctx.squawk("which_command", cmd=sm)
    rest = args[2:]
    if cmd in SITE_COMMANDS:
        from listmgr.commands.site import approve_site
        approve_site(ctx, passwd, cmd, rest)
        return
    raw, mlist, rest = ctx.get_listname(sm, -1, rest)
    if mlist is None:
        ctx.squawk("unknown_list", cmd=sm, list=raw)
        return
    if not ctx.password_ok(mlist, passwd):
        ctx.squawk("invalid_list_or_password", cmd=sm)
        log.warning("FAILED approve PASSWORD %s %s requester=<%s>", cmd, mlist.name,
                    ctx.req.address)
        return
    if cmd not in APPROVABLE:
        ctx.squawk("invalid_command", cmd=sm, command=cmd)
        return
    log.info("approve PASSWORD %s %s %s requester=<%s>", cmd, mlist.name, " ".join(rest),
             ctx.req.address)
    if cmd in ("subscribe", "unsubscribe"):
        subscriber = " ".join(rest)
        if not subscriber:
            ctx.squawk("approve_who", cmd=sm)
            return
        ctx.approved = True
        COMMANDS[cmd](ctx, [mlist.name, subscriber])
    elif cmd == "which":
        ctx.approved = True
        COMMANDS[cmd](ctx, rest)
    else:
        ctx.approved = True
        COMMANDS[cmd](ctx, [mlist.name, *rest])


@command("passwd")
def do_passwd(ctx: Context, args: list[str], line=None) -> None:
    sm = "passwd"
    raw, mlist, rest = ctx.get_listname(sm, 2, args)
    old = rest[0] if rest else ""
    new = rest[1] if len(rest) > 1 else ""
    if not old:
        ctx.squawk("need_old_password", cmd=sm)
    if not new:
        ctx.squawk("need_new_password", cmd=sm)
    if mlist is None:
        ctx.squawk("passwd_invalid_list", cmd=sm, list=raw)
        return
    if not ctx.password_ok(mlist, old):
        ctx.say("old_password_incorrect")
        log.warning("FAILED passwd %s OLD NEW requester=<%s>", mlist.name, ctx.req.address)
        return
    if not new:
        ctx.say("passwd_null_new")  # Majordomo also says this after the squawk above
        return
    # The approve password follows when it was the same as the old admin password.
    same = verify_password(mlist.approve_passwd_hash, old)
    set_admin_password(ctx.s, mlist, hash_password(new),
                       approve_too=same or not mlist.approve_passwd_hash)
    ctx.say("password_changed")
    log.info("passwd %s OLD NEW requester=<%s>", mlist.name, ctx.req.address)
