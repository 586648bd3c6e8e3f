"""config / newconfig / writeconfig LIST PASSWD (reference 2.4 and 6).

`newconfig` takes Majordomo 1.94.5's own config files (listmgr.majordomo.configmap says
what each keyword means here) and the files `config` writes. It is all or nothing: any
malformed line or bad value and nothing changes; the errors are listed. Keywords stored
without an effect here are named after the acceptance. Keys left out keep their current
values (a hashed password cannot go back to a default).
"""

from __future__ import annotations

import logging

from listmgr.commands import texts
from listmgr.commands.context import Context
from listmgr.commands.registry import command
from listmgr.listconfig import SettingError
from listmgr.majordomo import configmap
from listmgr.store import lists as repo

log = logging.getLogger(__name__)


def _authorised(ctx: Context, sm: str, args: list[str]):
    raw, mlist, rest = ctx.get_listname(sm, 1, args)
    passwd = rest[0] if rest else ""
    if not passwd:
        ctx.squawk("needs_password", cmd=sm)
    if mlist is None:
        ctx.squawk("unknown_list", cmd=sm, list=raw)
        return None
    if not ctx.password_ok(mlist, passwd):
        ctx.squawk("invalid_password", cmd=sm)
        log.warning("FAILED %s %s PASSWORD requester=<%s>", sm, mlist.name, ctx.req.address)
        return None
    return mlist


@command("config")
def do_config(ctx: Context, args: list[str], line=None) -> None:
    mlist = _authorised(ctx, "config", args)
    if mlist is None:
        return
    header = texts.text("config_header", ctx.lang, list=mlist.name, whoami=ctx.whoami)
    ctx.out.say(configmap.render(mlist, header, ctx.list_lang(mlist)))


@command("newconfig")
def do_newconfig(ctx: Context, args: list[str], line=None) -> None:
    mlist = _authorised(ctx, "newconfig", args)
    if mlist is None:
        return
    text = "\n".join(line.data) if line is not None else ""
    reading = configmap.read(text, mlist.name, domain=ctx.domain, current=mlist)
    values, errors = reading.values, reading.errors
    if not errors:
        try:
            with ctx.s.begin_nested():
                for key, value in values.items():
                    repo.update_setting(ctx.s, mlist, key, value)
        except SettingError as exc:
            errors.append(str(exc))
    if errors:
        ctx.say("newconfig_rejected", list=mlist.name)
        for e in errors:
            ctx.out.lines.append(texts.localise(e, ctx.lang, "config_errors"))
        log.info("FAILED (syntax) newconfig %s PASSWORD", mlist.name)
        return
    ctx.say("newconfig_accepted", list=mlist.name)
    for note in reading.notes:
        ctx.out.lines.append(texts.localise(note, ctx.lang, "config_errors"))
    log.info("newconfig %s PASSWORD requester=<%s>", mlist.name, ctx.req.address)


@command("writeconfig")
def do_writeconfig(ctx: Context, args: list[str], line=None) -> None:
    mlist = _authorised(ctx, "writeconfig", args)
    if mlist is None:
        return
    # The settings live in the store, always in canonical form: nothing to rewrite.
    ctx.say("wrote_config", list=mlist.name)
