"""accept TOKEN / reject TOKEN [reason]: answer a confirmation by its key alone.

Held posts (token kind "held-post", issued by the posting side) are decided through
listmgr.posting.moderation.decide; subscription keys (kind "auth") run the confirmed
request, or withdraw it.
"""

from __future__ import annotations

import logging

from listmgr import tokens
from listmgr.bounces.processor import REENABLE, reenable_by_token
from listmgr.commands.context import Context
from listmgr.commands.registry import command
from listmgr.posting.moderation import DecisionError, decide

log = logging.getLogger(__name__)


def _held(ctx: Context, key: str, approve: bool, reason: str) -> None:
    try:
        tok = tokens.consume(ctx.s, key, kind="held-post")
    except tokens.TokenError as exc:
        ctx.squawk("token_refused", reason=exc.reason)
        return
    held_id = tokens.payload(tok).get("held_id")
    if not isinstance(held_id, int):
        ctx.squawk("token_refused", reason="unknown")
        return
    try:
        result = decide(ctx.app, ctx.s, held_id, approve=approve, reason=reason,
                        by=ctx.req.address)
    except DecisionError as exc:
        ctx.out.say(f"**** {exc}")
        return
    ctx.out.say(result)


def _reenable(ctx: Context, key: str, approve: bool) -> None:
    """A member whose delivery bounces turned off answers the notice's key."""
    if not approve:
        try:
            tok = tokens.consume(ctx.s, key, kind=REENABLE)
        except tokens.TokenError as exc:
            ctx.squawk("token_refused", reason=exc.reason)
            return
        ctx.say("delivery_stays_off", list=tok.list_name, addr=tok.address)
        return
    try:
        done = reenable_by_token(ctx.s, key)
    except tokens.TokenError as exc:
        ctx.squawk("token_refused", reason=exc.reason)
        return
    if done is None:
        ctx.squawk("member_gone")
        return
    ctx.say("delivery_on", list=done[0], addr=done[1])


def _decide(ctx: Context, args: list[str], approve: bool) -> None:
    sm = "accept" if approve else "reject"
    if not args:
        ctx.squawk("token_missing", cmd=sm)
        return
    key = args[0]
    tok = tokens.lookup(ctx.s, key)
    if tok is None:
        ctx.squawk("token_refused", reason="unknown")
        return
    if tok.kind == "held-post":
        _held(ctx, key, approve, " ".join(args[1:]))
        return
    if tok.kind == "reenable":
        _reenable(ctx, key, approve)
        return
    if tok.kind == "auth":
        payload = tokens.payload(tok)
        cmd = payload.get("cmd")
        subscriber = payload.get("subscriber") or tok.address
        if approve:
            from listmgr.commands.subscription import do_subscribe, do_unsubscribe
            ctx.auth_key = key
            try:
                fn = do_subscribe if cmd == "subscribe" else do_unsubscribe
                # `list`: the name the request used (LIST-digest keeps the digest choice)
                fn(ctx, [payload.get("list") or tok.list_name, subscriber])
            finally:
                ctx.auth_key = ""
            return
        try:
            tokens.consume(ctx.s, key, kind="auth")
        except tokens.TokenError as exc:
            ctx.squawk("token_refused", reason=exc.reason)
            return
        ctx.say("request_withdrawn", cmd=cmd, list=tok.list_name, addr=subscriber)
        return
    ctx.squawk("token_refused", reason="unknown")


@command("accept")
def do_accept(ctx: Context, args: list[str], line=None) -> None:
    _decide(ctx, args, True)


@command("reject")
def do_reject(ctx: Context, args: list[str], line=None) -> None:
    _decide(ctx, args, False)
