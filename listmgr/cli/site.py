"""`listmgr site-password`: set the site password that approves `newlist` / `rmlist` by mail.

Only its argon2id hash is stored (site_settings); the password itself is read from the
terminal (asked twice) or, when stdin is not a terminal, from its first line.
"""

from __future__ import annotations

import getpass
import sys

from listmgr.cli import CLIError
from listmgr.cli.common import session
from listmgr.commands.context import SITE_PASSWORD_KEY
from listmgr.passwords import hash_password
from listmgr.store.models import SiteSetting

MIN_LENGTH = 8


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("New site password: ")
        if getpass.getpass("Again: ") != first:
            raise CLIError("the two passwords differ; nothing changed")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_site_password(args) -> int:
    password = _read_password()
    if len(password) < MIN_LENGTH or any(c.isspace() for c in password):
        raise CLIError(f"the site password needs at least {MIN_LENGTH} characters and no "
                       "spaces; nothing changed")
    with session(args) as (app, s):
        s.merge(SiteSetting(key=SITE_PASSWORD_KEY, value=hash_password(password)))
    print("site password set")
    return 0


def register(sub) -> None:
    p = sub.add_parser("site-password", help="set the site password (approves newlist/rmlist "
                       "by mail); read from the terminal or stdin")
    p.set_defaults(func=cmd_site_password)
