"""Claiming work rows with leases, safely across processes.

PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED`, so several processes never take the same
row. SQLite: every transaction begins IMMEDIATE (store.db), a single-writer path, so the
select-then-update is serialised. A claim whose lease expires (its worker died) is taken
again by the next claimer.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from listmgr.store.models import utcnow


def claim(s: Session, model: Any, *, where: list[Any], owner: str, lease: float,
          limit: int, order_by: Any = None) -> list[int]:
    """Lease up to `limit` rows of `model` matching `where`; returns their ids.

    `model` needs `id`, `lease_owner` and `lease_until` columns. Rows with a live lease held
    by someone else are skipped.
    """
    now = utcnow()
    q = select(model.id).where(*where).where(
        or_(model.lease_until.is_(None), model.lease_until < now))
    q = q.order_by(order_by if order_by is not None else model.id).limit(limit)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    ids = list(s.scalars(q))
    if ids:
        s.execute(update(model).where(model.id.in_(ids)).values(
            lease_owner=owner, lease_until=now + dt.timedelta(seconds=lease)))
    return ids


def changed(result: Any) -> int:
    """How many rows an UPDATE or DELETE touched (SQLAlchemy types execute()'s result
    without rowcount)."""
    return int(getattr(result, "rowcount", 0) or 0)


def release(s: Session, model: Any, ids: list[int]) -> None:
    if ids:
        s.execute(update(model).where(model.id.in_(ids)).values(lease_owner="",
                                                                lease_until=None))


def defer(s: Session, model: Any, ids: list[int], owner: str, delay: float) -> None:
    """Give claims back untouched for `delay` seconds (their work failed: retried then, by
    any process), if `owner` still holds them."""
    if ids:
        s.execute(update(model).where(model.id.in_(ids), model.lease_owner == owner).values(
            lease_owner="", lease_until=utcnow() + dt.timedelta(seconds=delay)))


def claim_due(s: Session, model: Any, *, columns: list[Any], where: list[Any], due: Any,
              owner: str, lease: float, limit: int) -> list[Any]:
    """Lease up to `limit` rows whose `due` time has come; returns `columns` of each.

    For queues ordered by a due time (the outbound queue): the claim also moves `due` to the
    lease's end, so claimed rows leave the due range at once (the next claimer's index scan
    does not walk over them) and come back by themselves if their worker dies. Rows come
    oldest-due first; the caller keeps the lease by owning `lease_owner`.
    """
    now = utcnow()
    until = now + dt.timedelta(seconds=lease)
    q = select(model.id, *columns).where(*where).where(due <= now).order_by(due).limit(limit)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    rows = list(s.execute(q))
    if rows:
        # Core UPDATE on the table: the ORM's bulk path would evaluate each row in Python.
        t = model.__table__
        s.execute(update(t).where(t.c.id.in_([r[0] for r in rows])).values(
            {"lease_owner": owner, "lease_until": until, due.key: until}))
    return rows


def lease_owner(role: str) -> str:
    """The name a process leases rows under: `host:pid:role`."""
    return f"{socket.gethostname()}:{os.getpid()}:{role}"


def local_prefix() -> str:
    """What every lease owner name of this host starts with."""
    return f"{socket.gethostname()}:"


def dead_local_owners(owners: Iterable[str]) -> list[str]:
    """The owner names (of this host) whose process is gone; never this process."""
    dead = []
    prefix = local_prefix()
    for owner in owners:
        parts = owner.split(":")
        if not owner.startswith(prefix) or len(parts) < 3 or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.append(owner)
        except PermissionError:
            pass  # alive, someone else's
    return dead
