"""Lists created by mail: `newlist LIST OWNER [description]` is forwarded to the site
admins; `approve SITE-PASSWORD newlist ...` creates it, `approve SITE-PASSWORD rmlist LIST`
removes one. The site password is set with `listmgr site-password` (stored hashed)."""

from __future__ import annotations

import logging
import secrets

from listmgr.commands import outgoing, texts
from listmgr.commands.context import Context
from listmgr.commands.guard import SERVICE_LOCALS
from listmgr.commands.registry import command
from listmgr.listconfig import valid_list_name
from listmgr.mail.addresses import AddressError, parse_single
from listmgr.store import lists as repo
from listmgr.store.settings import list_exists, settings_of

log = logging.getLogger(__name__)


def _check_request(ctx: Context, sm: str, args: list[str]) -> tuple[str, str, str] | None:
    if len(args) < 2:
        ctx.squawk("newlist_usage", cmd=sm)
        return None
    name, owner, description = args[0], args[1], " ".join(args[2:])
    if not valid_list_name(name) or name.lower() in SERVICE_LOCALS:
        ctx.squawk("newlist_bad_name", cmd=sm, list=name)
        return None
    if list_exists(ctx.s, name):
        ctx.squawk("newlist_exists", cmd=sm, list=name.lower())
        return None
    try:
        owner = parse_single(owner)
    except AddressError:
        ctx.squawk("invalid_address", cmd=sm, addr=owner)
        return None
    return name.lower(), owner, description


@command("newlist")
def do_newlist(ctx: Context, args: list[str], line=None) -> None:
    req = _check_request(ctx, "newlist", args)
    if req is None:
        return
    name, owner, description = req
    admins = list(ctx.app.config.site_admins)
    if not admins:
        ctx.say("newlist_no_admins")
        return
    lang = ctx.app.config.language
    body = texts.text("newlist_request", lang, requester=ctx.req.requester, list=name,
                      owner=owner, description=description, whoami=ctx.whoami)
    outgoing.send(ctx, to=admins, subject=texts.msg(lang, "subject_newlist", list=name),
                  body=body)
    log.info("request newlist %s %s requester=<%s>", name, owner, ctx.req.address)
    ctx.say("newlist_forwarded", list=name)


def approve_site(ctx: Context, passwd: str, cmd: str, args: list[str]) -> None:
    if not ctx.site_password_ok(passwd):
        ctx.squawk("invalid_list_or_password", cmd="approve")
        log.warning("FAILED approve PASSWORD %s requester=<%s>", cmd, ctx.req.address)
        return
    if cmd == "rmlist":
        mlist = ctx.find_list(args[0]) if args else None
        if mlist is None:
            ctx.squawk("unknown_list", cmd="rmlist", list=args[0] if args else "")
            return
        repo.delete_list(ctx.s, mlist.name)
        log.info("rmlist %s requester=<%s>", mlist.name, ctx.req.address)
        ctx.say("rmlist_done", list=mlist.name)
        return
    create_list(ctx, args)


def create_list(ctx: Context, args: list[str]) -> bool:
    """`newlist LIST OWNER [description]` as approved by a site admin: create the list with
    a random password and mail it to the owner. False (after saying why) when refused."""
    req = _check_request(ctx, "newlist", args)
    if req is None:
        return False
    name, owner, description = req
    password = secrets.token_urlsafe(12)
    try:
        mlist = repo.create_list(ctx.s, name, [owner], password=password,
                                 description=description, reserved=SERVICE_LOCALS)
    except repo.ListError as exc:
        ctx.squawk("newlist_failed", cmd="newlist",
                   why=texts.localise(str(exc), ctx.lang, "list_errors"))
        return False
    lang = ctx.list_lang(settings_of(mlist))
    body = texts.text("newlist_owner", lang, list=name, owner=owner, password=password,
                      whoami=ctx.whoami, domain=ctx.domain, description=description)
    outgoing.send(ctx, to=owner, subject=texts.msg(lang, "subject_newlist_owner", list=name),
                  body=body)
    log.info("newlist %s owner=%s requester=<%s>", name, owner, ctx.req.address)
    ctx.say("newlist_created", list=name, owner=owner)
    return True
