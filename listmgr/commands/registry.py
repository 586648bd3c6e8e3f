"""Command name -> function. Each command module registers its words with @command."""

from __future__ import annotations

from typing import Callable

# fn(ctx, args, line) -> None
CommandFn = Callable[..., None]
COMMANDS: dict[str, CommandFn] = {}

# Commands whose following lines (up to `EOF`) are their data.
DATA_COMMANDS = frozenset({"newinfo", "newintro", "newconfig"})

def command(*names: str) -> Callable[[CommandFn], CommandFn]:
    def register(fn: CommandFn) -> CommandFn:
        for n in names:
            COMMANDS[n] = fn
        return fn
    return register


def load() -> dict[str, CommandFn]:
    """Every command word; importing the command modules registers them (explicitly, here,
    rather than at the top: they import this module for @command)."""
    from listmgr.commands import (  # noqa: F401
        admin,        # approve, passwd
        archive,      # index, get
        configcmds,   # config, newconfig, writeconfig
        listinfo,     # info, intro, newinfo, newintro
        listing,      # lists, help, mkdigest
        roster,       # who, which
        site,         # newlist, rmlist
        subscription,  # subscribe, unsubscribe/signoff/cancel, auth
        tokens_cmd,   # accept, reject
    )
    return COMMANDS


def known() -> frozenset[str]:
    return frozenset(load())
