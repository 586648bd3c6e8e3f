"""Command name -> function. Each command module registers its words with @command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, TypeVar

if TYPE_CHECKING:
    from listmgr.commands.context import Context
    from listmgr.commands.parser import Line


class CommandFn(Protocol):
    """A command: runs against the store, says what happened into ctx's transcript.
    `line` is the parsed command line (its data lines, for newinfo/newconfig ...)."""

    def __call__(self, ctx: "Context", args: list[str], line: "Line | None" = None
                 ) -> None: ...


COMMANDS: dict[str, CommandFn] = {}

# Commands whose following lines (up to `EOF`) are their data.
DATA_COMMANDS = frozenset({"newinfo", "newintro", "newconfig"})

F = TypeVar("F", bound=CommandFn)


def command(*names: str) -> Callable[[F], F]:
    def register(fn: F) -> F:
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
        digestcmds,   # mkdigest
        listinfo,     # info, intro, newinfo, newintro
        listing,      # lists, help
        roster,       # who, which
        setcmd,       # set LIST mail|nomail|digest|nodigest
        site,         # newlist, rmlist
        subscription,  # subscribe, unsubscribe/signoff/cancel, auth
        tokens_cmd,   # accept, reject
    )
    return COMMANDS


def known() -> frozenset[str]:
    return frozenset(load())
