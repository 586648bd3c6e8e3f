"""Fixed-window rate limits kept in the store (rate_counters), safe across processes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from listmgr.store.claims import changed
from listmgr.store.models import RateCounter, utcnow


# Every mail listmgr sends to one address on its own initiative (command replies,
# confirmations, notices to posters) counts against this one budget per hour.
MAIL_BUDGET_PREFIX = "command-mail:"


def mail_budget_ok(s: Session, address: str, per_hour: int) -> bool:
    """Count one mail to `address`; False once it had `per_hour` mails this hour."""
    from listmgr.mail.addresses import normalise
    return allow(s, f"{MAIL_BUDGET_PREFIX}{normalise(address)}", per_hour)


def allow(s: Session, key: str, limit: int, *, window: float = 3600.0) -> bool:
    """Count one event for `key`; False when `limit` events already fell in this window."""
    key = key[:400]
    now = utcnow()
    insert = sqlite_insert if s.get_bind().dialect.name == "sqlite" else pg_insert
    s.execute(insert(RateCounter).values(key=key, window_start=now, count=0)
              .on_conflict_do_nothing())
    row = s.scalars(select(RateCounter).where(RateCounter.key == key)
                    .with_for_update().execution_options(populate_existing=True)).one()
    if now - row.window_start >= dt.timedelta(seconds=window):
        row.window_start = now
        row.count = 0
    if row.count >= limit:
        return False
    row.count += 1
    return True


def first_in_interval(s: Session, key: str, now: dt.datetime, every: dt.timedelta) -> bool:
    """Record an event for `key`; False when one was recorded within `every` of `now`."""
    row = s.get(RateCounter, key)
    if row is not None:
        if now - row.window_start < every:
            return False
        row.window_start = now
        row.count = 1
        return True
    try:
        with s.begin_nested():
            s.add(RateCounter(key=key, window_start=now, count=1))
    except IntegrityError:  # another process recorded one for the same key just now
        return False
    return True


def delete_windows_before(s: Session, prefix: str, before: dt.datetime) -> int:
    """Delete the counters whose key starts with `prefix` and whose window began before
    `before`; how many."""
    return changed(s.execute(delete(RateCounter).where(
        RateCounter.key.startswith(prefix), RateCounter.window_start < before)))


def peek(s: Session, key: str, *, window: float = 3600.0) -> int:
    """Events counted for `key` in its current window (0 when the window has passed)."""
    row = s.get(RateCounter, key[:400])
    if row is None or utcnow() - row.window_start >= dt.timedelta(seconds=window):
        return 0
    return row.count


def bump(s: Session, key: str, *, window: float = 3600.0) -> int:
    """Count one event for `key`, without a limit; returns the window's count."""
    allow(s, key, 1 << 30, window=window)
    return peek(s, key, window=window)
