"""The outbound queue as the delivery worker and `listmgr queue` see it.

Claims and outcome marks are batch statements (hundreds of rows each); every function takes
a session (one transaction) and returns plain values. Marks only touch rows this worker
still leases, so an expired lease or `queue delete` (which clears the lease) wins.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from listmgr.store.outbound_types import DEFERRED, FAILED, SENT, Item, Outcome, next_attempt
from listmgr.store.claims import (changed, claim_due, dead_local_owners, lease_owner,
                                  local_prefix)
from listmgr.store.models import OutboundMessage as M
from listmgr.store.models import OutboundRecipient as R
from listmgr.store.models import BOUNCE, BULK, INTERACTIVE, PENDING, QUEUED, Fanout, utcnow

# The partial indexes' predicates, written literally so the planner can use them.
IS_QUEUED, IS_PENDING, IS_BOUNCE = text(QUEUED), text(PENDING), text(BOUNCE)
T = cast(Table, R.__table__)


def claim(s: Session, owner: str, lease: float, limit: int, *,
          interactive_only: bool = False) -> list[Item]:
    """Lease up to `limit` due recipients: every due INTERACTIVE one first (replies,
    notices, returned and relayed mail), then BULK ones (list posts) to fill the batch.
    Each class is read oldest-due first through the (priority, next_attempt_at) index."""
    items: list[Item] = []
    conn = s.connection()
    sqlite = conn.dialect.name == "sqlite"
    for priority in (INTERACTIVE, BULK):
        if len(items) >= limit or (interactive_only and priority == BULK):
            break
        if sqlite:
            items.extend(_claim_sqlite(conn, owner, lease, limit - len(items), priority))
            continue
        rows = claim_due(s, R, columns=[R.message_id, R.rcpt, R.domain, R.attempts],
                         where=[IS_QUEUED, R.priority == priority], due=R.next_attempt_at,
                         owner=owner, lease=lease, limit=limit - len(items))
        items.extend(Item(rid, mid, rcpt, domain, attempts, priority=priority)
                     for rid, mid, rcpt, domain, attempts in rows)
    return items


# SQLite: claims and the marks of sent recipients (the statements run once per batch, a
# VERP post's marks once per group of members) go straight to the driver, as the fan-out's
# inserts do (store.outbound): SQLAlchemy's work per statement and per row cost as much as
# SQLite's own. The same statements as claims.claim_due and _MARK_SENT, the same index
# (the due index's predicate, written as IS_QUEUED), the timestamps in SQLAlchemy's storage
# format.
_TS = "%Y-%m-%d %H:%M:%S.%f"
_CLAIM_SELECT = (f"SELECT id, message_id, rcpt, domain, attempts FROM {T.name} "
                 f"WHERE {QUEUED} AND priority = ? AND next_attempt_at <= ? "
                 "ORDER BY next_attempt_at LIMIT ?")
_CHUNK = 900  # ids per IN list (SQLite's oldest limit on variables is 999)
# The claimed rows as one JSON array: one step of the statement (the driver lets go of the
# GIL at every step, so a row a step costs a thread switch a row while the event loop is
# busy sending).
_CLAIM_JSON = (f"SELECT json_group_array(json_array(id, message_id, rcpt, domain, attempts)) "
               f"FROM ({_CLAIM_SELECT})")


def _in_list(n: int) -> str:
    return ", ".join("?" * n)


def _claim_sqlite(conn, owner: str, lease: float, limit: int, priority: int) -> list[Item]:
    now = utcnow()
    until = (now + dt.timedelta(seconds=lease)).strftime(_TS)
    rows = json.loads(conn.exec_driver_sql(
        _CLAIM_JSON, (priority, now.strftime(_TS), limit)).scalar() or "[]")
    for i in range(0, len(rows), _CHUNK):
        chunk = rows[i:i + _CHUNK]
        conn.exec_driver_sql(
            f"UPDATE {T.name} SET lease_owner = ?, lease_until = ?, next_attempt_at = ? "
            f"WHERE id IN ({_in_list(len(chunk))})", (owner, until, until, *(r[0] for r in chunk)))
    return [Item(rid, mid, rcpt, domain, attempts, priority=priority)
            for rid, mid, rcpt, domain, attempts in rows]


def _mark_sent_sqlite(conn, owner: str, now: dt.datetime, mta: str, ids: list[int]) -> None:
    ts = now.strftime(_TS)
    conn.exec_driver_sql(
        f"UPDATE {T.name} SET state = 'sent', attempts = attempts + 1, last_attempt_at = ?, "
        "done_at = ?, remote_mta = ?, status = '2.0.0', lease_owner = '', lease_until = NULL "
        f"WHERE id IN ({_in_list(len(ids))}) AND lease_owner = ?", (ts, ts, mta, *ids, owner))


@dataclass(frozen=True)
class MessageRow:
    id: int
    queue_id: str
    spool_path: str
    mail_from: str
    size: int
    origin: str
    arrival_at: dt.datetime
    received_from: str
    warned_at: dt.datetime | None
    personal: str = ""


_MCOLS = (M.id, M.queue_id, M.spool_path, M.mail_from, M.size, M.origin, M.arrival_at,
          M.received_from, M.warned_at, M.personal)


def messages(s: Session, ids: Iterable[int]) -> dict[int, MessageRow]:
    ids = list(set(ids))
    if not ids:
        return {}
    # select() of 10 columns is typed with a trailing *tuple[Any, ...]: too many for mypy
    return {r[0]: MessageRow(*r)  # type: ignore[call-arg]
            for r in s.execute(select(*_MCOLS).where(M.id.in_(ids)))}


def queue_ids(s: Session, ids: Iterable[int]) -> dict[int, str]:
    """id -> queue id of the messages still queued under these ids."""
    ids = list(set(ids))
    if not ids:
        return {}
    conn = s.connection()
    if conn.dialect.name == "sqlite" and len(ids) <= _CHUNK:  # once per claim: see _CLAIM_SELECT
        return dict(conn.exec_driver_sql(
            f"SELECT id, queue_id FROM {M.__tablename__} WHERE id IN ({_in_list(len(ids))})",
            tuple(ids)).fetchall())
    return {r[0]: r[1] for r in s.execute(select(M.id, M.queue_id).where(M.id.in_(ids)))}


@dataclass(frozen=True)
class Marked:
    """One transaction's result, ready to be written: the recipients' outcomes and what is
    needed to decide a deferral (attempts so far, the message's give-up time, the sender)."""

    message_id: int
    null_sender: bool
    deadline: dt.datetime
    attempts: dict[int, int]  # rid -> attempts before this one
    outcomes: Sequence[Outcome]


# Recipients sent: built once (a VERP post marks a group of members at a time, a thousand
# times for 100,000 members). Only rows this worker still leases (`queue delete` and lease
# expiry clear the owner). No `state` test here: SQLite would pick the state index over the
# primary key for it.
_MARK_SENT = update(T).where(
    T.c.id.in_(bindparam("ids", expanding=True)),
    T.c.lease_owner == bindparam("owner", type_=T.c.lease_owner.type)).values(
    state="sent", attempts=T.c.attempts + 1,
    last_attempt_at=bindparam("now", type_=T.c.last_attempt_at.type),
    done_at=bindparam("now", type_=T.c.done_at.type),
    remote_mta=bindparam("mta", type_=T.c.remote_mta.type), status="2.0.0", lease_owner="",
    lease_until=None)


def mark(s: Session, owner: str, batch: Sequence[Marked], *, min_backoff: float,
         max_backoff: float) -> set[int]:
    """Write outcomes in bulk; returns the ids of the messages touched."""
    now = utcnow()
    sent: dict[str, list[int]] = {}
    other: list[dict] = []
    for m in batch:
        for o in m.outcomes:
            if o.result == SENT:
                sent.setdefault(o.remote_mta, []).append(o.rid)
                continue
            tries = m.attempts.get(o.rid, 0) + 1
            transcript = "\n".join(o.transcript)
            if o.result == DEFERRED and now < m.deadline:
                other.append(dict(b_id=o.rid, b_state="queued", b_status=o.status,
                                  b_diag=o.diagnostic, b_mta=o.remote_mta, b_tr=transcript,
                                  b_next=next_attempt(now, tries, min_backoff, max_backoff,
                                                      m.deadline), b_done=None))
            else:
                # FAILED, or DEFERRED past the give-up time: returned to the sender (4.4.7
                # when it ran out of time), except mail from the null sender.
                status = o.status if o.result == FAILED else "4.4.7"
                other.append(dict(b_id=o.rid, b_state="failed" if m.null_sender else "bounce",
                                  b_status=status, b_diag=o.diagnostic, b_mta=o.remote_mta,
                                  b_tr=transcript, b_next=now, b_done=now))
    conn = s.connection()
    sqlite = conn.dialect.name == "sqlite"
    for mta, ids in sent.items():
        for i in range(0, len(ids), _CHUNK):
            if sqlite:
                _mark_sent_sqlite(conn, owner, now, mta, ids[i:i + _CHUNK])
            else:
                s.execute(_MARK_SENT, {"ids": ids[i:i + _CHUNK], "owner": owner, "now": now,
                                       "mta": mta})
    mine = T.c.lease_owner == owner
    if other:
        s.execute(update(T).where(T.c.id == bindparam("b_id"), mine).values(
            state=bindparam("b_state"), attempts=T.c.attempts + 1, last_attempt_at=now,
            next_attempt_at=bindparam("b_next"), status=bindparam("b_status"),
            diagnostic=bindparam("b_diag"), remote_mta=bindparam("b_mta"),
            transcript=bindparam("b_tr"), done_at=bindparam("b_done"), lease_owner="",
            lease_until=None), other)
    return {m.message_id for m in batch}


def finish(s: Session, message_ids: Iterable[int]) -> list[str]:
    """Messages whose every recipient is final lose their spool file: returns the paths to
    remove once this transaction commits (a path another message still uses is kept)."""
    paths: list[str] = []
    for mid in message_ids:
        pending = s.scalar(select(R.id).where(R.message_id == mid, IS_PENDING).limit(1))
        if pending is not None:
            continue
        if s.scalar(select(Fanout.id).where(Fanout.message_id == mid)) is not None:
            continue  # members are still being queued (posting.fanout finishes it)
        path = s.scalar(select(M.spool_path).where(M.id == mid))
        if not path:
            continue
        s.execute(update(M).where(M.id == mid).values(spool_path=""))
        shared = s.scalar(select(M.id).where(M.spool_path == path, M.id != mid).limit(1))
        if shared is None:
            paths.append(path)
    return paths


def release(s: Session, ids: Sequence[int]) -> None:
    """Give back claims not started (a worker stopping): due again now."""
    now = utcnow()
    for i in range(0, len(ids), 900):
        s.execute(update(T).where(T.c.id.in_(list(ids[i:i + 900])), T.c.state == "queued")
                  .values(lease_owner="", lease_until=None, next_attempt_at=now))


def due_count(s: Session) -> int:
    return s.scalar(select(func.count()).select_from(R).where(
        IS_QUEUED, R.next_attempt_at <= utcnow())) or 0


# --------------------------------------------------------------------------- returned mail

@dataclass(frozen=True)
class RcptRow:
    id: int
    rcpt: str
    status: str
    diagnostic: str
    remote_mta: str
    last_attempt_at: dt.datetime | None
    transcript: str
    attempts: int


_RCOLS = (R.id, R.rcpt, R.status, R.diagnostic, R.remote_mta, R.last_attempt_at, R.transcript,
          R.attempts)


def messages_to_return(s: Session, limit: int = 100) -> list[int]:
    """Messages with recipients awaiting returned mail, once their first pass is over (so one
    returned mail covers every recipient that failed at once)."""
    ids = list(s.scalars(select(R.message_id).where(IS_BOUNCE).distinct().limit(limit)))
    ready = []
    for mid in ids:
        first_pass = s.scalar(select(R.id).where(R.message_id == mid, IS_PENDING, IS_QUEUED,
                                                 R.attempts == 0).limit(1))
        if first_pass is None:
            ready.append(mid)
    return ready


def returns_pending(s: Session) -> int:
    return len(messages_to_return(s, limit=1))


def take_returns(s: Session, message_id: int) -> tuple[MessageRow | None, list[RcptRow]]:
    """Lock the message's `bounce` recipients and mark them failed (returned)."""
    q = select(*_RCOLS).where(R.message_id == message_id, IS_PENDING, IS_BOUNCE).order_by(R.id)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    rows = [RcptRow(*r) for r in s.execute(q)]
    if not rows:
        return None, []
    now = utcnow()
    for i in range(0, len(rows), 900):
        s.execute(update(T).where(T.c.id.in_([r.id for r in rows[i:i + 900]])).values(
            state="failed", done_at=now))
    return messages(s, [message_id]).get(message_id), rows


def messages_to_warn(s: Session, warn_after: float, limit: int = 100) -> list[int]:
    cutoff = utcnow() - dt.timedelta(seconds=warn_after)
    return list(s.scalars(select(M.id).where(
        M.warned_at.is_(None), M.mail_from != "", M.spool_path != "",
        M.arrival_at <= cutoff).order_by(M.id).limit(limit)))


def take_warning(s: Session, message_id: int, limit: int = 1000
                 ) -> tuple[MessageRow | None, list[RcptRow]]:
    """The recipients still deferred, if the message was not warned about yet (once only)."""
    rows = [RcptRow(*r) for r in s.execute(select(*_RCOLS).where(
        R.message_id == message_id, IS_PENDING, IS_QUEUED, R.attempts > 0)
        .order_by(R.id).limit(limit))]
    if not rows:
        return None, []
    got = s.execute(update(M).where(M.id == message_id, M.warned_at.is_(None))
                    .values(warned_at=utcnow()))
    if changed(got) != 1:
        return None, []
    return messages(s, [message_id]).get(message_id), rows


# --------------------------------------------------------------------------- housekeeping

def lease_owner_name(role: str = "delivery") -> str:
    return lease_owner(role)


def release_dead_leases(s: Session) -> int:
    """Give back the claims of dead processes of this host (after a crash or kill -9), so a
    restart does not wait for their leases to run out."""
    owners = list(s.scalars(select(R.lease_owner).where(
        R.state == "queued", R.lease_owner.like(local_prefix() + "%")).distinct()))
    n = 0
    now = utcnow()
    for owner in dead_local_owners(owners):
        n += changed(s.execute(update(T).where(T.c.lease_owner == owner,
                                               T.c.state == "queued").values(
            lease_owner="", lease_until=None, next_attempt_at=now)))
    return n


def purge_finished(s: Session, keep: float) -> int:
    """Forget messages finished more than `keep` seconds ago (their rows cascade)."""
    cutoff = utcnow() - dt.timedelta(seconds=keep)
    ids = list(s.scalars(select(M.id).where(M.spool_path == "", M.created_at < cutoff)
                         .limit(1000)))
    if ids:
        s.execute(delete(R).where(R.message_id.in_(ids)))
        s.execute(delete(M).where(M.id.in_(ids)))
    return len(ids)


# --------------------------------------------------------------------------- `listmgr queue`

@dataclass(frozen=True)
class Summary:
    counts: dict[str, int]
    due: int
    deferred: int
    oldest: tuple[str, dt.datetime] | None
    next_attempt: dt.datetime | None
    messages: int


def summary(s: Session) -> Summary:
    now = utcnow()
    counts = {st: n for st, n in s.execute(select(R.state, func.count()).group_by(R.state))}
    due = s.scalar(select(func.count()).select_from(R).where(
        IS_QUEUED, R.next_attempt_at <= now)) or 0
    deferred = s.scalar(select(func.count()).select_from(R).where(
        R.state == "queued", R.attempts > 0)) or 0
    oldest = s.execute(select(M.queue_id, M.arrival_at).where(M.spool_path != "")
                       .order_by(M.arrival_at).limit(1)).first()
    nxt = s.scalar(select(func.min(R.next_attempt_at)).where(IS_QUEUED))
    nmsg = s.scalar(select(func.count()).select_from(M).where(M.spool_path != "")) or 0
    return Summary(counts, due, deferred, (oldest[0], oldest[1]) if oldest else None, nxt,
                   nmsg)


def find_message(s: Session, queue_id: str) -> MessageRow | None:
    row = s.execute(select(*_MCOLS).where(M.queue_id == queue_id)).first()
    return MessageRow(*row) if row else None  # type: ignore[call-arg]  # as in messages()


def recipients_of(s: Session, message_id: int) -> list[tuple]:
    return list(s.execute(select(R.rcpt, R.state, R.attempts, R.next_attempt_at, R.status,
                                 R.diagnostic, R.remote_mta, R.lease_owner, R.lease_until)
                          .where(R.message_id == message_id).order_by(R.id)))


def retry_now(s: Session, message_id: int | None = None) -> int:
    """Make queued recipients due now (not those a live worker holds)."""
    now = utcnow()
    q = update(T).where(T.c.state == "queued").where(
        (T.c.lease_until.is_(None)) | (T.c.lease_until < now))
    if message_id is not None:
        q = q.where(T.c.message_id == message_id)
    return changed(s.execute(q.values(next_attempt_at=now)))


def delete_message(s: Session, message_id: int, *, returned: bool) -> int:
    """Take a message's pending recipients off the queue: `bounce` (returned mail follows)
    when `returned`, else `deleted`. Returns how many."""
    now = utcnow()
    values = dict(state="bounce", status="5.0.0",
                  diagnostic="550 5.0.0 Message deleted from the queue by the postmaster",
                  done_at=now, lease_owner="", lease_until=None) if returned else \
        dict(state="deleted", done_at=now, lease_owner="", lease_until=None)
    n = changed(s.execute(update(T).where(T.c.message_id == message_id,
                                          T.c.state == "queued").values(**values)))
    if not returned:
        s.execute(update(T).where(T.c.message_id == message_id, T.c.state == "bounce")
                  .values(state="deleted"))
    return n
