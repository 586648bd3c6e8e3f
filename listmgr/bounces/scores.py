"""Bounce scores as Mailman 3 keeps them: pure policy, no I/O.

A hard bounce scores 1.0, a soft one 0.5, at most one per member per day. A score older than
`bounce_info_stale_after` starts again from zero. At `bounce_score_threshold` delivery is
turned off and the member is told (notice 1); every `bounce_warning_interval` another notice
follows until `bounce_warnings` have gone out, and one interval after the last the member is
removed. A member whose delivery is already off is not scored again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

HARD, SOFT = 1.0, 0.5

# What became of a bounce or a tick.
IGNORED = "ignored"        # same day, or delivery already off
SCORED = "scored"
DISABLED = "disabled"      # threshold reached: delivery off, first notice due
WARN = "warn"              # another notice due
REMOVE = "remove"          # warnings all sent and unanswered


@dataclass(frozen=True)
class Settings:
    threshold: float = 5.0
    warnings: int = 3
    warning_interval: dt.timedelta = dt.timedelta(days=7)
    stale_after: dt.timedelta = dt.timedelta(days=7)

    @classmethod
    def of(cls, mlist) -> "Settings":
        return cls(threshold=mlist.bounce_score_threshold, warnings=mlist.bounce_warnings,
                   warning_interval=dt.timedelta(seconds=mlist.bounce_warning_interval),
                   stale_after=dt.timedelta(seconds=mlist.bounce_info_stale_after))


@dataclass(frozen=True)
class State:
    """A member's bounce record (the columns of the same names)."""

    delivery_enabled: bool = True
    disabled_reason: str = ""
    bounce_score: float = 0.0
    last_bounce_at: dt.datetime | None = None
    warnings_sent: int = 0
    last_warning_at: dt.datetime | None = None


def effective_score(st: State, settings: Settings, now: dt.datetime) -> float:
    """The score as it counts now (zero once stale)."""
    if st.last_bounce_at is None or now - st.last_bounce_at > settings.stale_after:
        return 0.0
    return st.bounce_score


def bounce(st: State, weight: float, settings: Settings, now: dt.datetime
           ) -> tuple[State, str]:
    """Score one bounce of weight HARD or SOFT at `now`."""
    if not st.delivery_enabled:
        return st, IGNORED
    if st.last_bounce_at is not None and st.last_bounce_at.date() == now.date():
        return st, IGNORED
    score = effective_score(st, settings, now) + weight
    st = replace(st, bounce_score=score, last_bounce_at=now)
    if score < settings.threshold:
        return st, SCORED
    st = replace(st, delivery_enabled=False, disabled_reason="bounces", warnings_sent=0,
                 last_warning_at=now)
    if settings.warnings > 0:
        st = replace(st, warnings_sent=1)
    return st, DISABLED


def tick(st: State, settings: Settings, now: dt.datetime) -> tuple[State, str]:
    """What is due for a member disabled by bounces: another notice, removal, or nothing."""
    if st.delivery_enabled or st.disabled_reason != "bounces":
        return st, IGNORED
    since = st.last_warning_at or now
    if st.warnings_sent >= settings.warnings:
        if settings.warnings == 0 or now - since >= settings.warning_interval:
            return st, REMOVE
        return st, IGNORED
    if now - since >= settings.warning_interval:
        return replace(st, warnings_sent=st.warnings_sent + 1, last_warning_at=now), WARN
    return st, IGNORED


def reenabled(st: State) -> State:
    return replace(st, delivery_enabled=True, disabled_reason="", bounce_score=0.0,
                   last_bounce_at=None, warnings_sent=0, last_warning_at=None)
