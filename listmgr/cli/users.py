"""Mailbox users: user add/passwd/del, users, relay-grants.

Passwords come from a prompt (getpass: not echoed) or, with --password-stdin, from the first
line of standard input. They are never taken on the command line (visible in `ps`) and
never printed.
"""

from __future__ import annotations

import getpass
import sys

from listmgr.cli import CLIError
from listmgr.cli.common import session
from listmgr.mailbox.maildir import Maildir
from listmgr.store import mailboxes as repo


def _read_password(args, *, confirm: bool = True) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise CLIError("no terminal to ask for the password: use --password-stdin")
        try:
            password = getpass.getpass("Password: ")
            if confirm and getpass.getpass("Again: ") != password:
                raise CLIError("the passwords do not match")
        except EOFError:
            raise CLIError("no password given") from None
    if not password:
        raise CLIError("the password must not be empty")
    return password


def cmd_user_add(args) -> int:
    try:
        name = repo.check_name(args.name)
    except repo.UserError as exc:
        raise CLIError(str(exc)) from None
    password = _read_password(args)
    with session(args) as (app, s):
        try:
            user = repo.add_user(s, name, password)
        except repo.UserError as exc:
            raise CLIError(str(exc)) from None
        Maildir.for_user(app.config.data_dir, user.name).create()
        print(f"created mailbox user {user.name} ({user.name}@{app.config.domain})")
    return 0


def cmd_user_passwd(args) -> int:
    with session(args) as (app, s):
        if repo.get_user(s, args.name) is None:
            raise CLIError(f"no mailbox user '{args.name}'")
    password = _read_password(args)
    with session(args) as (app, s):
        try:
            repo.set_password(s, args.name, password)
        except repo.UserError as exc:
            raise CLIError(str(exc)) from None
    print(f"password changed for {args.name.lower()}")
    return 0


def cmd_user_del(args) -> int:
    with session(args) as (app, s):
        try:
            repo.delete_user(s, args.name)
        except repo.UserError as exc:
            raise CLIError(str(exc)) from None
        name = args.name.lower()
        if args.keep_mail:
            print(f"removed mailbox user {name} (mail kept in "
                  f"{Maildir.for_user(app.config.data_dir, name).root})")
        else:
            n = Maildir.for_user(app.config.data_dir, name).remove()
            print(f"removed mailbox user {name} and {n} message{'s' if n != 1 else ''}")
    return 0


def cmd_user_autoreply(args) -> int:
    if not args.off and args.body is None:
        raise CLIError("give --body TEXT (and optionally --subject) or --off")
    with session(args) as (app, s):
        try:
            if args.off:
                repo.set_autoreply(s, args.name, enabled=False)
            else:
                body = sys.stdin.read() if args.body == "-" else args.body
                repo.set_autoreply(s, args.name, enabled=True, body=body,
                                   subject=args.subject if args.subject is not None else None)
        except repo.UserError as exc:
            raise CLIError(str(exc)) from None
    print(f"auto-reply {'off' if args.off else 'on'} for {args.name.lower()}")
    return 0


def cmd_users(args) -> int:
    with session(args) as (app, s):
        for u in repo.all_users(s):
            n = len(Maildir.for_user(app.config.data_dir, u.name).entries())
            auto = "  auto-reply on" if u.autoreply_enabled else ""
            print(f"{u.name:<24} {n:>6} message{'s' if n != 1 else ' '}{auto}")
    return 0


def cmd_relay_grants(args) -> int:
    if args.revoke:
        with session(args) as (app, s):
            n = repo.revoke_grants(s, args.revoke)
        if not n:
            raise CLIError(f"no relay grant for {args.revoke!r}")
        print(f"revoked {n} relay grant{'s' if n != 1 else ''} of {args.revoke}")
        return 0
    with session(args) as (app, s):
        repo.purge_expired_grants(s)
        window = app.config.pop3.relay_window
        grants = repo.live_grants(s, window=window)
    if not grants:
        print("no live relay grants" + ("" if window else
                                         " (POP-before-SMTP is off: [pop3] relay_window = 0)"))
    for g in grants:
        print(f"{g.ip:<40} {g.user:<24} login {g.granted_at:%Y-%m-%d %H:%M:%S} UTC"
              f"  until {g.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    return 0


def register(sub) -> None:
    p = sub.add_parser("user", help="manage one mailbox user: add, passwd, del, autoreply")
    usub = p.add_subparsers(dest="user_command", metavar="ACTION")
    usub.required = True

    a = usub.add_parser("add", help="create a mailbox user NAME (mail to NAME@domain)")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    a.set_defaults(func=cmd_user_add)

    a = usub.add_parser("passwd", help="change a mailbox user's password")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    a.set_defaults(func=cmd_user_passwd)

    a = usub.add_parser("del", help="remove a mailbox user and their mail")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--keep-mail", action="store_true", help="leave the Maildir on disk")
    a.set_defaults(func=cmd_user_del)

    a = usub.add_parser("autoreply", help="set or clear a mailbox's auto-reply")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--subject", help="subject of the reply (default: 'Auto: ' + theirs)")
    a.add_argument("--body", help="text of the reply ('-' reads standard input)")
    a.add_argument("--off", action="store_true", help="turn the auto-reply off")
    a.set_defaults(func=cmd_user_autoreply)

    p = sub.add_parser("users", help="list mailbox users")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("relay-grants", help="show live POP-before-SMTP relay grants")
    p.add_argument("--revoke", metavar="IP|USER",
                   help="end the grants of a client IP address or of a mailbox user now")
    p.set_defaults(func=cmd_relay_grants)
