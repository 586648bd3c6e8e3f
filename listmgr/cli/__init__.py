"""`listmgr` command line. Errors are one line on stderr and a non-zero exit, never a traceback.

Each command-family module (listed in build_parser) adds its subcommands with
`register(subparsers)`; a subcommand's function takes the parsed args and returns an exit
code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType

from listmgr import __version__
from listmgr.config import ConfigError

class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1 (or `.status`)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


# Each command-family module and the top-level commands it registers. Only the family of the
# command being run is imported (a command's start-up should not pay for the whole
# application); help, an unknown command and no command import them all.
# tests/test_cli_lazy.py checks this table against what the modules register.
FAMILIES: dict[str, tuple[str, ...]] = {
    "server": ("init", "serve"),
    "lists": ("newlist", "rmlist", "lists", "members", "subscribe", "unsubscribe", "set",
              "config"),
    "users": ("user", "users", "relay-grants"),
    "queue": ("queue", "deliver"),
    "held": ("held", "approve", "reject"),
    "site": ("site-password",),
    "bounces": ("bounces",),
    "web": ("web",),
    "majordomo": ("import-majordomo",),
    "dkimcmd": ("dkim",),
    "maps": ("postfix-maps",),
    "configcheck": ("config-sample", "check-config"),
    "status": ("status",),
}


def load_family(family: str) -> ModuleType:
    """The command-family module `family` (a key of FAMILIES), imported now.
    Imported here, not at the top: each imports CLIError from this module."""
    match family:
        case "server":
            from listmgr.cli import server
            return server
        case "lists":
            from listmgr.cli import lists
            return lists
        case "users":
            from listmgr.cli import users
            return users
        case "queue":
            from listmgr.cli import queue
            return queue
        case "held":
            from listmgr.cli import held
            return held
        case "site":
            from listmgr.cli import site
            return site
        case "bounces":
            from listmgr.cli import bounces
            return bounces
        case "web":
            from listmgr.cli import web
            return web
        case "majordomo":
            from listmgr.cli import majordomo
            return majordomo
        case "dkimcmd":
            from listmgr.cli import dkimcmd
            return dkimcmd
        case "maps":
            from listmgr.cli import maps
            return maps
        case "configcheck":
            from listmgr.cli import configcheck
            return configcheck
        case "status":
            from listmgr.cli import status
            return status
    raise KeyError(family)


def _command_in(argv: list[str]) -> str | None:
    """The command word of `argv` (the first word that is not a global option or its value)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in ("--config", "-c"):
            i += 2
        elif word.startswith("-"):
            i += 1
        else:
            return word
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: with only the family of its command when that is known,
    every command otherwise (argv None: every command)."""
    p = argparse.ArgumentParser(prog="listmgr", description="Majordomo-compatible mailing list "
                                "manager with its own small mail server.")
    p.add_argument("--config", "-c", metavar="FILE",
                   help="configuration file (default: $LISTMGR_CONFIG, else ./listmgr.toml)")
    p.add_argument("--version", action="version", version=f"listmgr {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    command = _command_in(argv) if argv is not None else None
    wanted = [f for f, commands in FAMILIES.items() if command in commands] or list(FAMILIES)
    for family in wanted:
        load_family(family).register(sub)
    return p


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"listmgr: {exc}", file=sys.stderr)
        return exc.status
    except ConfigError as exc:
        print(f"listmgr: configuration error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `listmgr members big | head`
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("listmgr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: one line, details only in the debug log
        logging.getLogger("listmgr").debug("unexpected error", exc_info=True)
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(f"listmgr: error: {type(exc).__name__}: {msg}", file=sys.stderr)
        return 1
