"""set LIST mail|nomail|digest|nodigest [ADDRESS]: a member changes their own delivery.

One command word, two kinds of setting: `mail`/`nomail` turn delivery on or off
(listmgr.commands.delivery_cmd), `digest`/`nodigest` choose digests or single messages
(listmgr.commands.digestcmds). The option word picks which one runs.
"""

from __future__ import annotations

from listmgr.commands.context import Context
from listmgr.commands.delivery_cmd import set_delivery_mode
from listmgr.commands.digestcmds import set_digest_mode
from listmgr.commands.registry import command

MODES = {
    "mail": set_delivery_mode,
    "nomail": set_delivery_mode,
    "digest": set_digest_mode,
    "nodigest": set_digest_mode,
}


def _option(args: list[str]) -> str:
    """The option word: after LIST, or first when the request's default list is meant."""
    if len(args) > 1 and args[1].lower() in MODES:
        return args[1].lower()
    if args and args[0].lower() in MODES:
        return args[0].lower()
    return ""


@command("set")
def do_set(ctx: Context, args: list[str], line=None) -> None:
    option = _option(args)
    if option:
        MODES[option](ctx, args)
        return
    given = args[1] if len(args) > 1 else ""
    ctx.squawk("set_unknown_option", option=given)
    ctx.squawk("set_mail_usage")
    ctx.squawk("set_digest_usage")
