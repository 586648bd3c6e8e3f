"""set LIST mail|nomail [ADDRESS]: a member turns delivery of the list's mail on or off.

`mail` also clears a bounce record (as answering the re-enable notice does). Only the
requester's own subscription is changed: an ADDRESS other than the requester's is refused.
"""

from __future__ import annotations

from listmgr.bounces.processor import set_delivery
from listmgr.commands.context import Context


def set_delivery_mode(ctx: Context, args: list[str]) -> None:
    """`set LIST mail|nomail [ADDRESS]` (the `set` command hands these two options here)."""
    raw, mlist, rest = ctx.get_listname("set", 1, args)
    if mlist is None or not rest or rest[0].lower() not in ("mail", "nomail") or len(rest) > 2:
        ctx.squawk("set_mail_usage")
        return
    mode = rest[0].lower()
    address = rest[1] if len(rest) > 1 else ctx.req.address
    if len(rest) > 1 and not ctx.is_self(address):
        ctx.squawk("set_mail_only_self", addr=address)
        return
    m = set_delivery(ctx.s, mlist, address, mode == "mail", "member")
    if m is None:
        ctx.squawk("set_mail_not_member", list=mlist.name, addr=address)
        return
    ctx.say("delivery_on" if mode == "mail" else "delivery_off", list=mlist.name,
            addr=m.address)
