"""List and member commands: newlist, rmlist, lists, members, subscribe, unsubscribe, config."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

from listmgr.cli import CLIError
from listmgr.cli import bounces as bounces_cli
from listmgr.cli.common import session
from listmgr.commands.guard import is_service_address
from listmgr.listconfig import SETTINGS, SettingError, format_value
from listmgr.mail.addresses import AddressError, parse_single
from listmgr.store import lists as repo

# Addresses the server itself answers: never a list name, never a member.
RESERVED = ("majordomo", "majordomo-owner", "owner-majordomo", "postmaster", "mailer-daemon",
            "root", "abuse", "listserv")


def cmd_newlist(args) -> int:
    with session(args) as (app, s):
        try:
            mlist = repo.create_list(s, args.list, args.owner, password=args.password,
                                     description=args.description or "", reserved=RESERVED)
        except repo.ListError as exc:
            raise CLIError(str(exc)) from None
        print(f"created list {mlist.name} (owner {', '.join(repo.owners_of(mlist))})")
    return 0


def cmd_rmlist(args) -> int:
    with session(args) as (app, s):
        try:
            repo.delete_list(s, args.list)
        except repo.ListError as exc:
            raise CLIError(str(exc)) from None
    print(f"removed list {args.list.lower()}")
    return 0


def cmd_lists(args) -> int:
    with session(args) as (app, s):
        for mlist in repo.all_lists(s):
            n = repo.member_count(s, mlist)
            print(f"{mlist.name:<24} {n:>8} member{'s' if n != 1 else ' '}  {mlist.description}")
    return 0


def cmd_members(args) -> int:
    if args.status:
        return bounces_cli.members_status(args)
    if args.enable or args.disable:
        return bounces_cli.members_set_delivery(args, args.enable or args.disable,
                                                bool(args.enable))
    with session(args) as (app, s):
        mlist = _list(s, args.list)
        out = sys.stdout
        for batch in repo.iter_member_batches(s, mlist, enabled_only=False):
            out.write("".join(f"{addr}\n" for _, addr in batch))
    return 0


def _list(s, name):
    try:
        return repo.require_list(s, name)
    except repo.NoSuchList as exc:
        raise CLIError(str(exc)) from None


def _addresses(args) -> Iterator[str]:
    for a in args.addresses:
        if a == "-":
            yield from sys.stdin
        else:
            yield a


class _Progress:
    """Progress on a terminal only (stderr), at most a few times a second."""

    def __init__(self, verb: str):
        self.verb = verb
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, n: int) -> None:
        now = time.monotonic()
        if self.tty and now - self.last > 0.2:
            self.last = now
            sys.stderr.write(f"\r{self.verb} {n:,} addresses...")
            sys.stderr.flush()

    def done(self) -> None:
        if self.tty and self.last:
            sys.stderr.write("\r\033[K")


def _report(result: repo.BulkResult, verb: str, dup_word: str) -> int:
    total = len(result.added) + len(result.duplicates) + len(result.invalid)
    if total == 1 and result.invalid:  # a single bad address: one clear line
        line, why = result.invalid[0]
        raise CLIError(f"invalid address {line!r}: {why}")
    for line, why in result.invalid:
        print(f"listmgr: skipped invalid address {line!r}: {why}", file=sys.stderr)
    for addr in result.duplicates[:20]:
        print(f"listmgr: {addr} {dup_word}", file=sys.stderr)
    if len(result.duplicates) > 20:
        print(f"listmgr: ... and {len(result.duplicates) - 20} more {dup_word}", file=sys.stderr)
    summary = f"{verb} {len(result.added)}"
    if result.duplicates:
        summary += f", {len(result.duplicates)} {dup_word}"
    if result.invalid:
        summary += f", {len(result.invalid)} invalid"
    print(summary)
    return 1 if result.invalid and not result.added else 0


def cmd_subscribe(args) -> int:
    progress = _Progress("subscribing")
    with session(args) as (app, s):
        mlist = _list(s, args.list)
        refused: list[tuple[str, str]] = []
        result = repo.add_members(s, mlist, _reject_service(app, s, _addresses(args), refused),
                                  progress=progress)
        result.invalid.extend(refused)
    progress.done()
    return _report(result, "subscribed", "already subscribed")


def cmd_unsubscribe(args) -> int:
    with session(args) as (app, s):
        mlist = _list(s, args.list)
        result = repo.remove_members(s, mlist, _addresses(args))
    result.duplicates = result.missing
    return _report(result, "unsubscribed", "not subscribed")


def _reject_service(app, s, lines, refused: list[tuple[str, str]]):
    """The service's own addresses can never be members: they would loop. Each one is
    noted in `refused` instead of passed on."""
    for line in lines:
        try:
            addr = parse_single(line.strip())
        except AddressError:
            yield line  # add_members reports it as invalid
            continue
        if is_service_address(addr, local_domains=app.config.local_domains,
                              has_list=lambda name: repo.get_list(s, name) is not None):
            refused.append((line.strip(), "an address of this mail server cannot be "
                                          "subscribed"))
            continue
        yield line


def cmd_set(args) -> int:
    """A member's delivery mode: digest or nodigest (one message at a time)."""
    with session(args) as (app, s):
        mlist = _list(s, args.list)
        member = repo.find_member(s, mlist, args.address)
        if member is None:
            raise CLIError(f"{args.address} is not a member of {mlist.name}")
        member.digest = args.mode == "digest"
    print(f"{args.address} on {mlist.name}: {args.mode}")
    return 0


def cmd_config(args) -> int:
    with session(args) as (app, s):
        mlist = _list(s, args.list)
        if args.key is None:
            for key, setting in sorted(SETTINGS.items()):
                if setting.secret:
                    shown = "(set)" if getattr(mlist, setting.attr) else "(not set)"
                else:
                    shown = format_value(mlist, setting).replace("\n", "\\n")
                print(f"{key} = {shown}")
            return 0
        if args.value is None:
            raise CLIError("give both KEY and VALUE to change a setting, or neither to show all")
        try:
            repo.set_setting(s, mlist, args.key, args.value)
        except SettingError as exc:
            raise CLIError(str(exc)) from None
    print(f"{args.list.lower()}: {args.key.lower()} set")
    return 0


def register(sub) -> None:
    p = sub.add_parser("newlist", help="create a list")
    p.add_argument("list")
    p.add_argument("--owner", action="append", required=True, metavar="ADDR",
                   help="owner address (repeat for several)")
    p.add_argument("--password", help="admin password (also the approve password)")
    p.add_argument("--description", help="one-line description")
    p.set_defaults(func=cmd_newlist)

    p = sub.add_parser("rmlist", help="remove a list and its members")
    p.add_argument("list")
    p.set_defaults(func=cmd_rmlist)

    p = sub.add_parser("lists", help="show all lists")
    p.set_defaults(func=cmd_lists)

    p = sub.add_parser("members", help="print a list's members, one a line")
    p.add_argument("list")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--status", action="store_true",
                   help="with delivery on/off and why, and the bounce score")
    g.add_argument("--enable", metavar="ADDR",
                   help="turn delivery to a member back on (clears its bounce record)")
    g.add_argument("--disable", metavar="ADDR", help="turn delivery to a member off")
    p.set_defaults(func=cmd_members)

    for name, fn in (("subscribe", cmd_subscribe), ("unsubscribe", cmd_unsubscribe)):
        p = sub.add_parser(name, help=f"{name} addresses ('-' reads them from stdin)")
        p.add_argument("list")
        p.add_argument("addresses", nargs="+", metavar="ADDR")
        p.set_defaults(func=fn)

    p = sub.add_parser("set", help="a member's delivery mode: digest or nodigest")
    p.add_argument("list")
    p.add_argument("address")
    p.add_argument("mode", choices=("digest", "nodigest"))
    p.set_defaults(func=cmd_set)

    p = sub.add_parser("config", help="show a list's settings, or set one")
    p.add_argument("list")
    p.add_argument("key", nargs="?")
    p.add_argument("value", nargs="?")
    p.set_defaults(func=cmd_config)
