"""subscribe, unsubscribe (signoff, cancel, `unsubscribe *`) and auth (reference 2.4, 4).

The policy decides (policy.py); this module carries it out: add or remove now, mail an
auth key to the address (a random single-use token, listmgr.tokens), or ask the owners
with an `APPROVE LIST` mail. Welcome mail and owner notices follow a change.
"""

from __future__ import annotations

import logging

from listmgr import tokens
from listmgr.commands import outgoing, texts
from listmgr.commands.context import Context, looks_like_real_name
from listmgr.commands.guard import is_service_address
from listmgr.commands.policy import Action, subscribe_action, unsubscribe_action
from listmgr.commands.registry import command
from listmgr.config import format_duration
from listmgr.listconfig import sender_address
from listmgr.mail.addresses import AddressError, fault_of, normalise, parse_single
from listmgr.store import lists as repo
from listmgr.store.settings import ListSettings, list_exists

log = logging.getLogger(__name__)

AUTH_KIND = "auth"


# --------------------------------------------------------------------------- helpers

def _valid_address(ctx: Context, cmd: str, subscriber: str) -> str | None:
    """The bare address, or None after saying why (Majordomo's valid_addr + squawk)."""
    try:
        bare = parse_single(subscriber)
    except AddressError as exc:
        fault = fault_of(subscriber) if ctx.lang == "en" else ""
        if fault in ("unbalanced", "unquoted", "space", "incomplete"):
            ctx.say(f"address_{fault}", addr=subscriber)  # Majordomo's own wording
        elif fault != "multiple":  # Majordomo explains nothing for several addresses
            # Other languages: the translated short reason, for every fault.
            ctx.say("address_problem", addr=subscriber,
                    why=ctx.t(f"why_{exc.reason}", addr=subscriber))
        ctx.squawk("invalid_address", cmd=cmd, addr=subscriber)
        return None
    return bare


def _service_address(ctx: Context, bare: str) -> bool:
    return is_service_address(bare, local_domains=ctx.app.config.local_domains,
                              has_list=lambda name: list_exists(ctx.s, name))


def check_key(ctx: Context, cmd: str, mlist: ListSettings, address: str) -> None:
    """With an `auth KEY` on this line: mark the line confirmed, or note why not."""
    key = ctx.auth_key
    if not key:
        return
    tok = tokens.lookup(ctx.s, key)
    payload = tokens.payload(tok) if tok is not None else {}
    if tok is None or tok.kind != AUTH_KIND or payload.get("cmd") != cmd \
            or tok.list_name != mlist.name or normalise(tok.address) != normalise(address):
        ctx.key_error = "unknown"
        return
    try:
        tokens.consume(ctx.s, key, kind=AUTH_KIND)
    except tokens.TokenError as exc:
        ctx.key_error = exc.reason
        return
    ctx.confirmed = True


def send_confirm(ctx: Context, cmd: str, mlist: ListSettings, subscriber: str,
                 shown: str = "") -> None:
    """Mail an auth key to the address and tell the requester (Majordomo's send_confirm).
    `shown` is the list name the texts use (LIST-digest for a digest subscription)."""
    shown = shown or mlist.name
    if ctx.key_error:
        ctx.say("auth_key_refused", reason=ctx.key_error)
    bare = parse_single(subscriber)
    cfg = ctx.app.config
    issued = tokens.issue(ctx.s, AUTH_KIND, lifetime=cfg.commands.token_lifetime,
                          list_name=mlist.name, address=bare,
                          payload={"cmd": cmd, "subscriber": subscriber,
                                   "requester": ctx.req.address, "list": shown})
    lang = ctx.list_lang(mlist)
    body = texts.text("confirm", lang, cmd=cmd, list=shown, subscriber=subscriber,
                      key=issued.secret, whoami=ctx.whoami, domain=ctx.domain,
                      lifetime=format_duration(cfg.commands.token_lifetime, lang))
    subject = texts.msg(lang, "subject_confirm", cmd=cmd, list=shown)
    sent = outgoing.send(ctx, to=bare, subject=subject, body=body,
                         limit=True)
    if not sent:
        ctx.say("confirm_not_sent", addr=bare)
        return
    log.info("send_confirm %s %s %s requester=<%s>", cmd, mlist.name, bare, ctx.req.address)
    ctx.out.say(texts.text("confirm_reply", ctx.lang, cmd=cmd, list=shown,
                           subscriber=subscriber, whoami=ctx.whoami, domain=ctx.domain))


def request_approval(ctx: Context, cmd: str, mlist: ListSettings, subscriber: str,
                     shown: str = "") -> None:
    """Majordomo's check_and_request + request_approval: ask the owners, tell the requester."""
    shown = shown or mlist.name
    if looks_like_real_name(subscriber):
        ctx.squawk("listserv_style", cmd=cmd)
        ctx.say("listserv_explain", cmd=cmd)
        return
    lang = ctx.list_lang(mlist)
    body = texts.text("approval_request", lang, requester=ctx.req.requester, cmd=cmd,
                      list=shown, subscriber=subscriber, whoami=ctx.whoami)
    outgoing.send(ctx, to=repo.owners_of(mlist), subject=texts.msg(lang, "subject_approve",
                                                                  list=mlist.name),
                  body=body)
    log.info("request %s %s %s requester=<%s>", cmd, mlist.name, subscriber, ctx.req.address)
    ctx.out.say(texts.text("forwarded_reply", ctx.lang, cmd=cmd, list=shown,
                           subscriber=subscriber, whoami=ctx.whoami, domain=ctx.domain))


def welcome(ctx: Context, mlist: ListSettings, subscriber: str) -> None:
    lang = ctx.list_lang(mlist)
    if mlist.welcome:
        body = texts.text("welcome", lang, list=mlist.name, subscriber=subscriber,
                          whoami=ctx.whoami, domain=ctx.domain, intro=mlist.intro,
                          info=mlist.info)
        outgoing.send(ctx, to=parse_single(subscriber),
                      subject=texts.msg(lang, "subject_welcome", list=mlist.name),
                      body=body, envelope=sender_address(mlist, ctx.domain),
                      limit=True)
    if mlist.announcements:
        outgoing.send(ctx, to=repo.owners_of(mlist),
                      subject=texts.msg(lang, "subject_subscribed", list=mlist.name,
                                        addr=subscriber),
                      body=texts.msg(lang, "notice_subscribed", list=mlist.name,
                                     addr=subscriber))


# --------------------------------------------------------------------------- subscribe

@command("subscribe")
def do_subscribe(ctx: Context, args: list[str], line=None) -> None:
    cmd = "subscribe"
    raw, mlist, rest = ctx.get_listname(cmd, 1, args)
    subscriber = " ".join(rest) or ctx.req.requester
    bare = _valid_address(ctx, cmd, subscriber)
    if bare is None:
        return
    if mlist is None:
        ctx.squawk("unknown_list", cmd=cmd, list=raw)
        return
    if _service_address(ctx, bare):
        ctx.squawk("service_address", cmd=cmd, addr=subscriber)
        return
    written = subscriber  # an owner asked to approve sees the address as it was written
    if mlist.strip:
        subscriber = bare
    # `subscribe LIST-digest`: Majordomo's digest list is LIST in digest mode here.
    shown = f"{mlist.name}-digest" if _names_digest(raw, mlist) else ""
    if _deferred(ctx, cmd, mlist, bare, subscriber, subscribe_action,
                 mlist.subscribe_policy, shown=shown, written=written):
        return
    result = repo.add_members(ctx.s, mlist, [subscriber])
    member = repo.find_member(ctx.s, mlist, bare) if shown else None
    if member is not None and not member.digest:
        member.digest = True  # a member moving to the digest
    elif not result.added:
        ctx.say("already_subscribed", list=shown or mlist.name)
        log.info("DUPLICATE subscribe %s %s", mlist.name, bare)
        return
    ctx.succeeded(mlist, "to")
    log.info("subscribe %s %s requester=<%s>%s", mlist.name, bare, ctx.req.address,
             " approved" if ctx.approved else "")
    welcome(ctx, mlist, subscriber)


def _names_digest(raw: str, mlist: ListSettings) -> bool:
    name = raw.strip().strip("<>").split("@", 1)[0].lower()
    return name.endswith("-digest") and name != mlist.name


def _deferred(ctx: Context, cmd: str, mlist, bare: str, subscriber: str, decide,
              policy: str, *, shown: str = "", written: str = "") -> bool:
    """Apply the policy table; True when the change waits for a confirmation or an owner."""
    check_key(ctx, cmd, mlist, bare)
    action = decide(policy, approved=ctx.approved, self_request=ctx.is_self(bare),
                    confirmed=ctx.confirmed)
    if action is Action.CONFIRM:
        send_confirm(ctx, cmd, mlist, subscriber, shown)
        return True
    if action is Action.FORWARD:
        request_approval(ctx, cmd, mlist, written or subscriber, shown)
        return True
    return False


# --------------------------------------------------------------------------- unsubscribe

@command("unsubscribe", "signoff", "cancel")
def do_unsubscribe(ctx: Context, args: list[str], line=None, *, quiet: bool = False) -> None:
    if args and args[0] == "*":
        _unsubscribe_all(ctx, args[1:])
        return
    cmd = "unsubscribe"
    raw, mlist, rest = ctx.get_listname(cmd, 1, args)
    subscriber = " ".join(rest) or ctx.req.requester
    bare = _valid_address(ctx, cmd, subscriber)
    if bare is None:
        return
    if mlist is None:
        ctx.squawk("unknown_list", cmd=cmd, list=raw)
        return
    member = repo.find_member(ctx.s, mlist, bare)
    if member is None:
        if not quiet:
            ctx.say("not_member", addr=subscriber, list=raw,
                    approval=ctx.approval_address(mlist.name))
        return
    if mlist.strip:
        subscriber = bare
    if _deferred(ctx, cmd, mlist, bare, subscriber, unsubscribe_action,
                 mlist.unsubscribe_policy):
        return
    ctx.s.delete(member)
    ctx.s.flush()
    ctx.succeeded(mlist, "from", quiet_all=quiet)
    log.info("unsubscribe %s %s requester=<%s>%s", mlist.name, bare, ctx.req.address,
             " approved" if ctx.approved else "")
    if mlist.announcements:
        lang = ctx.list_lang(mlist)
        outgoing.send(ctx, to=repo.owners_of(mlist),
                      subject=texts.msg(lang, "subject_unsubscribed", list=mlist.name,
                                        addr=subscriber),
                      body=texts.msg(lang, "notice_unsubscribed", list=mlist.name,
                                     addr=subscriber))


def _unsubscribe_all(ctx: Context, rest: list[str]) -> None:
    subscriber = " ".join(rest) or ctx.req.requester
    bare = _valid_address(ctx, "unsubscribe", subscriber)
    if bare is None:
        return
    names = repo.lists_of(ctx.s, bare)
    if not names:
        return  # Majordomo skips every list quietly: a miss says nothing
    saved = ctx.req
    try:
        # `unsubscribe *` names lists explicitly, so the default list does not apply.
        from dataclasses import replace
        ctx.req = replace(saved, default_list="")
        for name in names:
            do_unsubscribe(ctx, [name, *rest], quiet=True)
    finally:
        ctx.req = saved


# --------------------------------------------------------------------------- auth

@command("auth")
def do_auth(ctx: Context, args: list[str], line=None) -> None:
    if len(args) < 2 or not args[0] or args[1].lower() not in ("subscribe", "unsubscribe"):
        ctx.squawk("auth_needs_key")
        return
    ctx.auth_key = args[0]
    try:
        if args[1].lower() == "subscribe":
            do_subscribe(ctx, args[2:])
        else:
            do_unsubscribe(ctx, args[2:])
    finally:
        ctx.auth_key = ""
