"""What waits in the queues, for the admin (`listmgr queue list/show/delete`, `status`).

Read-only listings of the outbound queue (messages with recipients still to send or to
return) and of the inbound queue (accepted messages whose tasks are not done: waiting, or
shunted by an error and kept for replay). Changes go through store/inbound.py and
store/outbound_claims.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from listmgr.store.models import HeldPost, InboundMessage, InboundTask, MailboxUser, MailingList
from listmgr.store.models import OutboundMessage as M
from listmgr.store.models import OutboundRecipient as R
from listmgr.store.models import utcnow


@dataclass
class Rcpt:
    address: str
    state: str        # queued, deferred, sending, returning (outbound); new, shunted (inbound)
    detail: str = ""  # the last error, the next attempt, the task kind
    task_id: int | None = None


@dataclass
class Entry:
    direction: str  # "out" or "in"
    queue_id: str
    size: int
    arrived: dt.datetime
    sender: str
    recipients: list[Rcpt] = field(default_factory=list)


def span(seconds: float) -> str:
    """A short duration: 45s, 12m, 3h05m, 2d04h (0s when already due)."""
    secs = max(0, int(seconds))
    if secs < 60:
        return f"{secs}s"
    if secs < 3600:
        return f"{secs // 60}m"
    if secs < 86400:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
    return f"{secs // 86400}d{secs % 86400 // 3600:02d}h"


def _out_state(state: str, attempts: int, nxt: dt.datetime, lease_until, now) -> str:
    if state == "bounce":
        return "returning"
    if lease_until is not None and lease_until > now:
        return "sending"
    return "deferred" if attempts else "queued"


def outbound(s: Session, limit: int = 1000) -> list[Entry]:
    """Messages with recipients queued or being returned, oldest first."""
    now = utcnow()
    msgs = s.execute(
        select(M.id, M.queue_id, M.size, M.arrival_at, M.mail_from)
        .where(M.spool_path != "", select(R.id).where(
            R.message_id == M.id, R.state.in_(("queued", "bounce"))).exists())
        .order_by(M.arrival_at, M.id).limit(limit)).all()
    entries = {mid: Entry("out", qid, size, at, sender) for mid, qid, size, at, sender in msgs}
    if not entries:
        return []
    rows = s.execute(
        select(R.message_id, R.rcpt, R.state, R.attempts, R.next_attempt_at, R.lease_until,
               R.diagnostic)
        .where(R.message_id.in_(list(entries)), R.state.in_(("queued", "bounce")))
        .order_by(R.message_id, R.id))
    for mid, rcpt, state, attempts, nxt, lease_until, diag in rows:
        st = _out_state(state, attempts, nxt, lease_until, now)
        detail = diag.splitlines()[0] if diag else ""
        if st == "deferred":
            detail = f"tries {attempts}, next in {span((nxt - now).total_seconds())}" + \
                (f": {detail}" if detail else "")
        entries[mid].recipients.append(Rcpt(rcpt, st, detail))
    return list(entries.values())


def inbound(s: Session, limit: int = 1000, queue_id: str | None = None) -> list[Entry]:
    """Accepted messages whose tasks are not all done, oldest first."""
    q = (select(InboundMessage.id, InboundMessage.queue_id, InboundMessage.size,
                InboundMessage.received_at, InboundMessage.mail_from)
         .where(select(InboundTask.id).where(InboundTask.message_id == InboundMessage.id,
                                             InboundTask.state != "done").exists())
         .order_by(InboundMessage.received_at, InboundMessage.id).limit(limit))
    if queue_id is not None:
        q = q.where(InboundMessage.queue_id == queue_id)
    entries = {mid: Entry("in", qid, size, at, sender)
               for mid, qid, size, at, sender in s.execute(q)}
    if not entries:
        return []
    rows = s.execute(
        select(InboundTask.message_id, InboundTask.id, InboundTask.rcpt, InboundTask.kind,
               InboundTask.target, InboundTask.state, InboundTask.error)
        .where(InboundTask.message_id.in_(list(entries)), InboundTask.state != "done")
        .order_by(InboundTask.message_id, InboundTask.id))
    for mid, tid, rcpt, kind, target, state, error in rows:
        what = f"task {tid}, {kind}" + (f" {target}" if target and kind != "relay" else "")
        detail = f"{what}: {error.splitlines()[0] if error else ''}".rstrip(": ")
        entries[mid].recipients.append(Rcpt(rcpt, state, detail, tid))
    return list(entries.values())


def counts(s: Session) -> dict[str, int]:
    """Outbound recipients by state and inbound tasks not done, by state."""
    out = {st: n for st, n in s.execute(
        select(R.state, func.count()).where(R.state.in_(("queued", "bounce")))
        .group_by(R.state))}
    now = utcnow()
    deferred = s.scalar(select(func.count()).select_from(R).where(
        R.state == "queued", R.attempts > 0, R.next_attempt_at > now)) or 0
    inbound_states = {st: n for st, n in s.execute(
        select(InboundTask.state, func.count()).where(InboundTask.state != "done")
        .group_by(InboundTask.state))}
    return {"outbound_queued": out.get("queued", 0), "outbound_deferred": deferred,
            "outbound_returning": out.get("bounce", 0),
            "inbound_waiting": inbound_states.get("new", 0),
            "inbound_shunted": inbound_states.get("shunted", 0)}


def oldest_deferred(s: Session) -> tuple[str, dt.datetime] | None:
    row = s.execute(select(M.queue_id, M.arrival_at).join(R, R.message_id == M.id)
                    .where(R.state == "queued", R.attempts > 0)
                    .order_by(M.arrival_at).limit(1)).first()
    return (row[0], row[1]) if row else None


def held_posts(s: Session) -> int:
    return s.scalar(select(func.count()).select_from(HeldPost).where(
        HeldPost.state == "held")) or 0


def totals(s: Session) -> tuple[int, int]:
    """(lists, mailbox users)."""
    return (s.scalar(select(func.count()).select_from(MailingList)) or 0,
            s.scalar(select(func.count()).select_from(MailboxUser)) or 0)


@dataclass
class Problem:
    when: dt.datetime | None
    queue_id: str
    what: str
    state: str
    error: str


def last_errors(s: Session, limit: int = 5) -> list[Problem]:
    """The newest delivery errors (deferred, bounced, failed) and shunted tasks."""
    out = [Problem(when, qid, f"to <{rcpt}>", "deferred" if state == "queued" else state,
                   diag.splitlines()[0][:200])
           for qid, rcpt, state, when, diag in s.execute(
               select(M.queue_id, R.rcpt, R.state, R.last_attempt_at, R.diagnostic)
               .join(M, M.id == R.message_id)
               .where(R.diagnostic != "", R.state != "sent", R.last_attempt_at.is_not(None))
               .order_by(R.last_attempt_at.desc()).limit(limit))]
    out += [Problem(when, qid, f"task {tid} {kind} <{rcpt}>", "shunted",
                    (error.splitlines() or [""])[0][:200])
            for qid, tid, kind, rcpt, when, error in s.execute(
                select(InboundMessage.queue_id, InboundTask.id, InboundTask.kind,
                       InboundTask.rcpt, InboundMessage.received_at, InboundTask.error)
                .join(InboundMessage, InboundMessage.id == InboundTask.message_id)
                .where(InboundTask.state == "shunted")
                .order_by(InboundMessage.received_at.desc()).limit(limit))]
    out.sort(key=lambda p: p.when or dt.datetime.min, reverse=True)
    return out[:limit]

