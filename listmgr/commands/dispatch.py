"""Runs the parsed lines of one command mail against the store, filling the transcript.

Each command runs in its own savepoint: a command that fails leaves no half-done change,
and, as Majordomo's `abort`, stops processing with a note in the reply (the error itself
goes to the log, never to the requester).
"""

from __future__ import annotations

import logging

from listmgr.commands import registry, texts
from listmgr.commands.context import Context
from listmgr.commands.parser import Line

log = logging.getLogger(__name__)


def run(ctx: Context, lines: list[Line]) -> None:
    commands = registry.load()
    out = ctx.out
    for ln in lines:
        if ln.echo is not None:
            out.echo(ln.echo)
        kind = ln.kind
        if kind == "blank":
            continue
        if kind in ("end", "stop"):
            out.commands += 1
            ctx.say("end_of_commands")
            break
        if kind == "attachment":
            ctx.say("attachment_detected")
            break
        if kind == "unknown":
            ctx.squawk("not_recognized", cmd=ln.name)
            continue
        if kind == "discarded":
            ctx.say("discarded", n=ln.count)
            break
        if kind == "toomany":
            ctx.say("too_many", n=ln.count, limit=ctx.app.config.commands.max_commands)
            break
        out.commands += 1
        ctx.approved = False
        ctx.confirmed = False
        ctx.key_error = ""
        try:
            with ctx.s.begin_nested():
                commands[ln.name](ctx, list(ln.args), ln)
        except Exception as exc:
            log.exception("command %r from <%s> failed", ln.name, ctx.req.address)
            ctx.say("abort", owner=ctx.whoami_owner)
            ctx.aborted = True
            _notify_abort(ctx, ln, exc)
            break
    finish(ctx)


def _notify_abort(ctx: Context, ln: Line, exc: Exception) -> None:
    """Tell the site admins (Majordomo's `MAJORDOMO ABORT` mail); never the password."""
    admins = list(ctx.app.config.site_admins)
    if not admins:
        return
    from listmgr.commands import outgoing
    outgoing.send(ctx, to=admins, subject=ctx.t("subject_abort"),
                  body=ctx.t("abort_notice", requester=ctx.req.address, command=ln.name,
                             error=f"{type(exc).__name__}: {exc}"))


def finish(ctx: Context) -> None:
    out = ctx.out
    if out.commands == 0:
        ctx.say("no_valid_commands")
    if out.needs_help or out.commands == 0:
        ctx.say("help_for", whoami=ctx.whoami)
        out.say(help_text(ctx))


def help_text(ctx: Context, admin: bool = False) -> str:
    from listmgr import __version__
    return texts.text("help_admin" if admin else "help", ctx.lang, whoami=ctx.whoami,
                      whoami_owner=ctx.whoami_owner, domain=ctx.domain, version=__version__)
