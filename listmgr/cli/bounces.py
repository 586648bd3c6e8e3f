"""Bounce commands: `bounces LIST`, and the status / enable / disable options of `members`."""

from __future__ import annotations

import sys

from listmgr.bounces import processor, scores
from listmgr.cli import CLIError
from listmgr.cli.common import session
from listmgr.store import bounces as store
from listmgr.store import lists as repo
from listmgr.store.models import Member, utcnow

WHY = {"bounces": "bounces", "member": "by the member (nomail)", "owner": "by an owner"}


def _list(s, name):
    try:
        return repo.require_list(s, name)
    except repo.NoSuchList as exc:
        raise CLIError(str(exc)) from None


def _when(ts) -> str:
    return ts.strftime("%Y-%m-%d %H:%M") if ts else "-"


def _delivery(m: Member) -> str:
    if m.delivery_enabled:
        return "on"
    return f"off ({WHY.get(m.disabled_reason, m.disabled_reason or 'off')})"


def cmd_bounces(args) -> int:
    """Members with a bounce record: address, score, last bounce, state and its reason."""
    with session(args) as (app, s):
        mlist = _list(s, args.list)
        settings = scores.Settings.of(mlist)
        now = utcnow()
        rows = store.with_bounces(s, mlist)
        if not rows:
            print(f"{mlist.name}: no bounces (threshold {settings.threshold:g})")
            return 0
        print(f"{'address':<40} {'score':>5}  {'last bounce':<16}  state")
        for m in rows:
            score = scores.effective_score(processor.state_of(m), settings, now) \
                if m.delivery_enabled else m.bounce_score
            state = "disabled" if not m.delivery_enabled else "enabled"
            if not m.delivery_enabled and m.disabled_reason == "bounces":
                state += f", {m.warnings_sent}/{settings.warnings} notice(s)"
            print(f"{m.address:<40} {score:>5.1f}  {_when(m.last_bounce_at):<16}  {state}")
            if m.last_bounce_reason:
                print(f"    {m.last_bounce_reason[:200]}")
    return 0


def members_status(args) -> int:
    """One line per member: address, delivery on/off and why, bounce score."""
    with session(args) as (app, s):
        mlist = _list(s, args.list)
        out = sys.stdout
        for batch in store.member_batches(s, mlist):
            out.write("".join(f"{m.address}  delivery {_delivery(m)}  score "
                              f"{m.bounce_score:g}\n" for m in batch))
    return 0


def members_set_delivery(args, address: str, enabled: bool) -> int:
    with session(args) as (app, s):
        mlist = _list(s, args.list)
        m = processor.set_delivery(s, mlist, address, enabled, "owner")
        if m is None:
            raise CLIError(f"{address} is not a member of {mlist.name}")
        print(f"{mlist.name}: delivery to {m.address} {'on' if enabled else 'off'}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("bounces", help="members with bounces: score, last bounce, state")
    p.add_argument("list")
    p.set_defaults(func=cmd_bounces)
