"""Acting on bounces: scores written to the member rows, notices, removal, re-enabling.

Every function runs in the caller's store transaction, so a bounce's effects (score,
disabling, the notices queued) commit together with the inbound task or delivery outcome
that caused them, or not at all.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict

from listmgr import tokens
from listmgr.bounces import scores
from listmgr.posting import notices
from listmgr.store import bounces as store
from listmgr.store.lists import owners_of
from listmgr.store.models import Member, utcnow
from listmgr.store.settings import ListRef, read_list

log = logging.getLogger(__name__)

REENABLE = "reenable"  # token kind: `accept TOKEN` turns delivery back on
_FIELDS = tuple(asdict(scores.State()).keys())


def find_member(s, mlist: ListRef, address: str) -> Member | None:
    return store.find_member(s, mlist, address)


def state_of(m: Member) -> scores.State:
    return scores.State(**{f: getattr(m, f) for f in _FIELDS})


def _store(m: Member, st: scores.State) -> None:
    for f in _FIELDS:
        setattr(m, f, getattr(st, f))


def record(app, s, mlist: ListRef, address: str, weight: float, reason: str,
           now: dt.datetime | None = None) -> str:
    """Score one bounce of `address` on `mlist`; returns what it did (scores.* outcome), or
    "not-member"."""
    now = now or utcnow()
    m = find_member(s, mlist, address)
    if m is None:
        return "not-member"
    settings = scores.Settings.of(mlist)
    st, outcome = scores.bounce(state_of(m), weight, settings, now)
    if outcome == scores.IGNORED:
        log.info("list=%s member=<%s> bounce ignored (%s)", mlist.name, m.address,
                 "delivery off" if not m.delivery_enabled else "already scored today")
        return outcome
    _store(m, st)
    m.last_bounce_reason = reason[:2000]
    log.info("list=%s member=<%s> bounce=%s score=%.1f reason=%s", mlist.name, m.address,
             "hard" if weight >= scores.HARD else "soft", st.bounce_score, reason[:200])
    if outcome == scores.DISABLED:
        m.disabled_at = now
        _disabled(app, s, mlist, m, settings, now)
    return outcome


def delivery_failures(app, s, list_name: str, failures: list[tuple[str, str]]
                      ) -> int:
    """Our own delivery of a post failed for good (a 5xx, or a give-up after
    `give_up_after`): each is a hard bounce of that member. Returns how many were scored."""
    mlist = read_list(s, list_name)
    if mlist is None:
        return 0
    n = 0
    for rcpt, reason in failures:
        if record(app, s, mlist, rcpt, scores.HARD, reason) in (scores.SCORED, scores.DISABLED):
            n += 1
    return n


def _disabled(app, s, mlist: ListRef, m: Member, settings: scores.Settings,
              now: dt.datetime) -> None:
    log.info("list=%s member=<%s> delivery disabled by bounces (score %.1f)", mlist.name,
             m.address, m.bounce_score)
    notices.send(app, s, mlist=mlist, to=owners_of(mlist), template="bounces/owner_disabled.txt",
                 mail_from="", member=m.address, score=f"{m.bounce_score:g}",
                 threshold=f"{settings.threshold:g}", reason=m.last_bounce_reason,
                 warnings=settings.warnings)
    if settings.warnings == 0:
        _remove(app, s, mlist, m, settings)
    else:
        _warn(app, s, mlist, m, settings)


def _warn(app, s, mlist: ListRef, m: Member, settings: scores.Settings) -> None:
    lifetime = settings.warning_interval.total_seconds() * (settings.warnings + 1) + 86400
    issued = tokens.issue(s, REENABLE, lifetime=max(lifetime, app.config.commands.token_lifetime),
                          list_name=mlist.name, address=m.address,
                          payload={"member_id": m.id})
    left = max(0, settings.warnings - m.warnings_sent)
    # From the list's bounce address: if this bounces too, it is ignored (delivery is off).
    notices.send(app, s, mlist=mlist, to=[m.address], template="bounces/disabled.txt",
                 mail_from=f"owner-{mlist.name}@{app.config.domain}", member=m.address,
                 token=issued.secret, reason=m.last_bounce_reason, notice=m.warnings_sent,
                 left=left, interval=settings.warning_interval.total_seconds())


def _remove(app, s, mlist: ListRef, m: Member, settings: scores.Settings) -> None:
    log.info("list=%s member=<%s> removed after %d bounce notice(s)", mlist.name, m.address,
             m.warnings_sent)
    notices.send(app, s, mlist=mlist, to=owners_of(mlist), template="bounces/owner_removed.txt",
                 mail_from="", member=m.address, warnings=m.warnings_sent,
                 reason=m.last_bounce_reason)
    store.remove_member(s, m)


def remove(s, m: Member) -> None:
    """Take a member off its list (a feedback report): the row goes, with its record."""
    store.remove_member(s, m)


def reenable(s, mlist: ListRef, m: Member) -> None:
    _store(m, scores.reenabled(state_of(m)))
    m.disabled_at = None
    m.last_bounce_reason = ""


def reenable_by_token(s, key: str) -> tuple[str, str] | None:
    """`accept TOKEN` for a re-enable token: (list, address) turned back on, or None when
    the member is gone. Raises tokens.TokenError for a bad token."""
    tok = tokens.consume(s, key, kind=REENABLE)
    mlist = read_list(s, tok.list_name)
    if mlist is None:
        return None
    m = store.member_by_id(s, tokens.payload(tok).get("member_id") or 0)
    if m is None or m.list_id != mlist.id:
        return None
    reenable(s, mlist, m)
    log.info("list=%s member=<%s> delivery re-enabled by token", mlist.name, m.address)
    return mlist.name, m.address


def set_delivery(s, mlist: ListRef, address: str, enabled: bool, by: str
                 ) -> Member | None:
    """Turn a member's delivery on (clearing its bounce record) or off (`by`: who)."""
    m = find_member(s, mlist, address)
    if m is None:
        return None
    if enabled:
        reenable(s, mlist, m)
    else:
        m.delivery_enabled = False
        m.disabled_reason = by
        m.disabled_at = utcnow()
    return m


def housekeeping(app, s, now: dt.datetime | None = None) -> int:
    """Notices due and removals of members disabled by bounces, on every list; stale scores
    cleared. Returns how many members were acted on."""
    now = now or utcnow()
    n = 0
    for mlist in store.all_lists(s):
        settings = scores.Settings.of(mlist)
        store.clear_stale_scores(s, mlist, now - settings.stale_after)
        due = store.disabled_by_bounces(s, mlist)
        for m in due:
            st, what = scores.tick(state_of(m), settings, now)
            if what == scores.WARN:
                _store(m, st)
                _warn(app, s, mlist, m, settings)
                n += 1
            elif what == scores.REMOVE:
                _remove(app, s, mlist, m, settings)
                n += 1
    return n
