"""Command name -> function. Each command module registers its words with @command."""

from __future__ import annotations

import importlib
from typing import Callable

# fn(ctx, args, line) -> None
CommandFn = Callable[..., None]
COMMANDS: dict[str, CommandFn] = {}

# Commands whose following lines (up to `EOF`) are their data.
DATA_COMMANDS = frozenset({"newinfo", "newintro", "newconfig"})

COMMAND_MODULES = (
    "listmgr.commands.subscription",  # subscribe, unsubscribe/signoff/cancel, auth
    "listmgr.commands.tokens_cmd",    # accept, reject
    "listmgr.commands.admin",         # approve, passwd
    "listmgr.commands.roster",        # who, which
    "listmgr.commands.listinfo",      # info, intro, newinfo, newintro
    "listmgr.commands.listing",       # lists, help, mkdigest
    "listmgr.commands.archive",       # index, get
    "listmgr.commands.configcmds",    # config, newconfig, writeconfig
    "listmgr.commands.site",          # newlist, rmlist
)


def command(*names: str) -> Callable[[CommandFn], CommandFn]:
    def register(fn: CommandFn) -> CommandFn:
        for n in names:
            COMMANDS[n] = fn
        return fn
    return register


def load() -> dict[str, CommandFn]:
    for mod in COMMAND_MODULES:
        importlib.import_module(mod)
    return COMMANDS


def known() -> frozenset[str]:
    return frozenset(load())
