"""Held posts: `listmgr held [LIST]`, `listmgr approve ID`, `listmgr reject ID [--reason]`."""

from __future__ import annotations

from listmgr.cli import CLIError
from listmgr.cli.common import session
from listmgr.posting import moderation
from listmgr.store import lists as repo


def cmd_held(args) -> int:
    with session(args) as (app, s):
        if args.list and repo.get_list(s, args.list) is None:
            raise CLIError(f"no list named '{args.list}'")
        posts = moderation.pending(s, args.list)
        for p in posts:
            print(f"{p.id:>6}  {p.list_name:<16} {p.held_at:%Y-%m-%d %H:%M}  "
                  f"expires {p.expires_at:%Y-%m-%d %H:%M}  {p.sender}")
            print(f"        Subject: {p.subject}")
            for r in p.reasons:
                print(f"        - {r}")
        if not posts:
            print("no held posts")
    return 0


def _decide(args, approve: bool) -> int:
    with session(args) as (app, s):
        try:
            print(moderation.decide(app, s, args.id, approve=approve,
                                    reason=getattr(args, "reason", "") or "", by="cli"))
        except moderation.DecisionError as exc:
            raise CLIError(str(exc)) from None
    return 0


def cmd_approve(args) -> int:
    return _decide(args, True)


def cmd_reject(args) -> int:
    return _decide(args, False)


def register(sub) -> None:
    p = sub.add_parser("held", help="list posts held for moderation")
    p.add_argument("list", nargs="?", help="only this list")
    p.set_defaults(func=cmd_held)
    p = sub.add_parser("approve", help="distribute a held post")
    p.add_argument("id", type=int, help="held post number (see `listmgr held`)")
    p.set_defaults(func=cmd_approve)
    p = sub.add_parser("reject", help="reject a held post and tell the poster")
    p.add_argument("id", type=int, help="held post number (see `listmgr held`)")
    p.add_argument("--reason", default="", help="told to the poster")
    p.set_defaults(func=cmd_reject)
