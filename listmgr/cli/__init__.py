"""`listmgr` command line. Errors are one line on stderr and a non-zero exit, never a traceback.

Each command-family module (listed in build_parser) adds its subcommands with
`register(subparsers)`; a subcommand's function takes the parsed args and returns an exit
code.
"""

from __future__ import annotations

import argparse
import logging
import sys

from listmgr import __version__
from listmgr.config import ConfigError

class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1 (or `.status`)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="listmgr", description="Majordomo-compatible mailing list "
                                "manager with its own small mail server.")
    p.add_argument("--config", "-c", metavar="FILE",
                   help="configuration file (default: $LISTMGR_CONFIG, else ./listmgr.toml)")
    p.add_argument("--version", action="version", version=f"listmgr {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # Imported here, not at the top: each imports CLIError from this module.
    from listmgr.cli import (bounces, configcheck, dkimcmd, held, lists, majordomo, maps, queue,
                             server, site, status, users, web)
    for module in (
        server,  # init, serve
        lists,   # newlist, rmlist, lists, members, subscribe, unsubscribe, config
        users,   # user add/passwd/del, users, relay-grants
        queue,   # queue, queue show/retry/delete, deliver
        held,    # held, approve, reject
        site,    # site-password
        bounces,  # bounces
        web,     # web (the web pages alone)
        majordomo,  # import-majordomo
        dkimcmd,  # dkim keygen, dkim record
        maps,    # postfix-maps
        configcheck,  # config-sample, check-config
        status,  # status
    ):
        module.register(sub)
    return p


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
