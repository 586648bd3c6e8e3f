"""The inbound queue's one owner: creates, claims, finishes, shunts and replays inbound tasks.

An inbound message (its bytes fsynced in the spool) has one task per destination; all remote
(relayed) recipients of a message share one `relay` task, whose `recipients` column lists
them. Workers claim tasks of their own kinds with a lease; a task is `new` until it is
`done` (its effects committed in the same transaction) or `shunted` (a handler raised; kept
for `listmgr queue retry --shunted`). The last task done deletes its message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from listmgr.store import claims
from listmgr.store.models import InboundMessage, InboundTask, utcnow

RELAY = "relay"
BOUNCE = "bounce"
NEW, DONE, SHUNTED = "new", "done", "shunted"


@dataclass(frozen=True)
class Destination:
    """Where one accepted recipient goes: kind (command, post, relay, ...), target (list
    name, mailbox user or remote address) and the address as the client gave it."""

    kind: str
    target: str
    rcpt: str


def create(s: Session, *, queue_id: str, spool_path: str, mail_from: str, size: int,
           destinations: Iterable[Destination], client_ip: str = "",
           client_helo: str = "") -> tuple[int, set[str]]:
    """Store a message and its tasks; returns the message id and the kinds of work queued.

    The same destination twice (case, aliases) is one task; every remote recipient goes into
    the message's one relay task.
    """
    msg = InboundMessage(queue_id=queue_id, spool_path=spool_path, mail_from=mail_from,
                         client_ip=client_ip, client_helo=client_helo, size=size)
    s.add(msg)
    s.flush()
    rows = _tasks(destinations)
    for row in rows:
        s.add(InboundTask(message_id=msg.id, **row))
    return msg.id, {row["kind"] for row in rows}


@dataclass(frozen=True)
class NewMessage:
    """One accepted message for create_many: its spool file and destinations."""

    queue_id: str
    spool_path: str
    mail_from: str
    size: int
    destinations: tuple[Destination, ...]
    client_ip: str = ""
    client_helo: str = ""


def _tasks(destinations: Iterable[Destination]) -> list[dict]:
    """The task rows of one message's destinations: the same destination twice (case,
    aliases) is one task; all remote recipients share one relay task; each VERP bounce
    address names its own member (one bounce task each)."""
    seen: set[tuple[str, str, str]] = set()
    relay: list[Destination] = []
    rows: list[dict] = []
    for d in destinations:
        key = (d.kind, d.target, d.rcpt.lower() if d.kind == BOUNCE else "")
        if key in seen:
            continue
        seen.add(key)
        if d.kind == RELAY:
            relay.append(d)
            continue
        rows.append({"kind": d.kind, "target": d.target, "rcpt": d.rcpt, "recipients": ""})
    if relay:
        rows.append({"kind": RELAY, "target": relay[0].target, "rcpt": relay[0].rcpt,
                     "recipients": "\n".join(d.target for d in relay)})
    return rows


_MESSAGES = cast(Table, InboundMessage.__table__)
_TASKS = cast(Table, InboundTask.__table__)
# Built once (Core, not ORM: no unit of work, no per-call statement construction).
_INSERT_MESSAGE = _MESSAGES.insert()
_IDS = select(_MESSAGES.c.queue_id, _MESSAGES.c.id).where(
    _MESSAGES.c.queue_id.in_(bindparam("queue_ids", expanding=True)))
_INSERT_TASK = _TASKS.insert()
_FINISH = _TASKS.update().where(
    _TASKS.c.id.in_(bindparam("ids", expanding=True)), _TASKS.c.state == NEW,
    _TASKS.c.lease_owner == bindparam("owner")).values(
    state=DONE, done_at=bindparam("now"), lease_until=None)
_PENDING = select(_TASKS.c.message_id).where(
    _TASKS.c.message_id.in_(bindparam("ids", expanding=True)),
    _TASKS.c.state != DONE).distinct()
_PATHS = select(_MESSAGES.c.id, _MESSAGES.c.spool_path).where(
    _MESSAGES.c.id.in_(bindparam("ids", expanding=True)))
_DELETE = _MESSAGES.delete().where(_MESSAGES.c.id.in_(bindparam("ids", expanding=True)))


def create_many(s: Session, messages: Sequence[NewMessage]) -> None:
    """Store many messages and their tasks in session `s` (the ingress group commit); the
    same rows as `create` for each."""
    if not messages:
        return
    now = utcnow()
    rows = [{"queue_id": m.queue_id, "spool_path": m.spool_path, "mail_from": m.mail_from,
             "client_ip": m.client_ip, "client_helo": m.client_helo, "size": m.size,
             "received_at": now} for m in messages]
    # One executemany for the group's messages, then their ids by queue id (unique): two
    # statements however many messages (RETURNING in a given order is a row at a time).
    s.execute(_INSERT_MESSAGE, rows)
    ids = {q: i for q, i in s.execute(_IDS, {"queue_ids": [m.queue_id for m in messages]})}
    task_rows: list[dict] = []
    for m in messages:
        msg_id = ids[m.queue_id]
        for row in _tasks(m.destinations):
            row.update(message_id=msg_id, state=NEW, lease_owner="", attempts=0, error="")
            task_rows.append(row)
    if task_rows:
        s.execute(_INSERT_TASK, task_rows)


def finish_many(s: Session, tasks: Sequence[InboundTask], owner: str) -> list[str]:
    """`finish` for many tasks at once: all of them still new and leased by `owner` (else
    NotOurs, and the caller rolls back); the messages left with nothing to do are deleted.
    Returns their spool paths, for the caller to remove after commit."""
    if not tasks:
        return []
    ids = [t.id for t in tasks]
    done = claims.changed(s.execute(_FINISH, {"ids": ids, "owner": owner, "now": utcnow()}))
    if done != len(set(ids)):
        raise NotOurs(ids)
    messages = {t.message_id for t in tasks}
    pending = set(s.scalars(_PENDING, {"ids": list(messages)}))
    over = list(messages - pending)
    if not over:
        return []
    paths = [path for _, path in s.execute(_PATHS, {"ids": over})]
    s.execute(_DELETE, {"ids": over})
    return paths


def recipients(task: InboundTask) -> list[str]:
    """A relay task's remote recipients (any other task: its one target)."""
    found = [r for r in (task.recipients or "").split("\n") if r]
    return found or [task.target]


def claim(s: Session, kinds: Sequence[str], *, owner: str, lease: float,
          limit: int) -> list[int]:
    """Lease up to `limit` new tasks of the given kinds, oldest first; returns their ids."""
    return claims.claim(s, InboundTask, where=[InboundTask.state == NEW,
                                               InboundTask.kind.in_(list(kinds))],
                        owner=owner, lease=lease, limit=limit)


class NotOurs(Exception):
    """The task was finished, shunted or taken over by another worker meanwhile (its lease
    ran out): this worker's transaction must roll back."""


_CLAIMABLE = select(_TASKS.c.id).where(
    _TASKS.c.state == NEW, _TASKS.c.kind.in_(bindparam("kinds", expanding=True)),
    (_TASKS.c.lease_until.is_(None)) | (_TASKS.c.lease_until < bindparam("now"))
).order_by(_TASKS.c.id).limit(bindparam("limit"))
_CLAIMABLE_LOCKED = _CLAIMABLE.with_for_update(skip_locked=True)
_LEASE = _TASKS.update().where(_TASKS.c.id.in_(bindparam("ids", expanding=True))).values(
    lease_owner=bindparam("owner"), lease_until=bindparam("until"))
_TASK_COLUMNS = [c for c in _TASKS.c]
_MESSAGE_COLUMNS = [c for c in _MESSAGES.c]
_SNAPSHOTS = select(*_TASK_COLUMNS, *_MESSAGE_COLUMNS).join_from(
    _TASKS, _MESSAGES, _MESSAGES.c.id == _TASKS.c.message_id).where(
    _TASKS.c.id.in_(bindparam("ids", expanding=True))).order_by(_TASKS.c.id)


class MessageSnapshot:
    """An inbound message's columns as read at claim time (what handlers read of an
    InboundMessage)."""

    __slots__ = tuple(c.key for c in _MESSAGES.c)

    def __init__(self, values: Sequence) -> None:
        for key, value in zip(self.__slots__, values):
            setattr(self, key, value)


class TaskSnapshot:
    """An inbound task's columns as read at claim time, and its message (`message`)."""

    __slots__ = tuple(c.key for c in _TASKS.c) + ("message",)

    def __init__(self, values: Sequence, message: MessageSnapshot) -> None:
        for key, value in zip(self.__slots__, values):
            setattr(self, key, value)
        self.message = message


def claim_snapshots(s: Session, kinds: Sequence[str], *, owner: str, lease: float,
                    limit: int) -> list[InboundTask]:
    """Claim like `claim` and return the tasks, each with its message: read-only
    snapshots (TaskSnapshot, MessageSnapshot: the same attributes as the models' columns),
    usable after this session ends. Core statements built once: a worker claims often."""
    now = utcnow()
    locked = s.get_bind().dialect.name == "postgresql"
    ids = list(s.scalars(_CLAIMABLE_LOCKED if locked else _CLAIMABLE,
                         {"kinds": list(kinds), "now": now, "limit": limit}))
    if not ids:
        return []
    s.execute(_LEASE, {"ids": ids, "owner": owner,
                       "until": now + dt.timedelta(seconds=lease)})
    n = len(_TASK_COLUMNS)
    messages: dict[int, MessageSnapshot] = {}
    tasks = []
    for row in s.execute(_SNAPSHOTS, {"ids": ids}):
        msg = messages.get(row[n])
        if msg is None:
            msg = messages[row[n]] = MessageSnapshot(row[n:])
        tasks.append(TaskSnapshot(row[:n], msg))
    return cast(list[InboundTask], tasks)  # duck-typed: handlers read columns only


def finish(s: Session, task: InboundTask, owner: str) -> str | None:
    """Mark the task done, if it is still new and leased by `owner` (else NotOurs). When it
    was its message's last task, delete the message in the same transaction (nobody sees
    "all done" with the message still there) and return its spool path, for the caller to
    remove after commit."""
    done = claims.changed(s.execute(update(InboundTask).where(
        InboundTask.id == task.id, InboundTask.state == NEW,
        InboundTask.lease_owner == owner).values(
        state=DONE, done_at=utcnow(), lease_until=None)))
    if not done:
        raise NotOurs(task.id)
    pending = s.scalar(select(func.count()).select_from(InboundTask).where(
        InboundTask.message_id == task.message_id, InboundTask.state != DONE))
    if pending:
        return None
    path = s.scalar(select(InboundMessage.spool_path).where(
        InboundMessage.id == task.message_id))
    s.execute(delete(InboundMessage).where(InboundMessage.id == task.message_id))
    return path


def release(s: Session, ids: Sequence[int], owner: str) -> None:
    """Give back claimed tasks not worked (a worker stopping)."""
    if ids:
        s.execute(update(InboundTask).where(
            InboundTask.id.in_(list(ids)), InboundTask.state == NEW,
            InboundTask.lease_owner == owner).values(lease_owner="", lease_until=None))


def shunt(s: Session, task_id: int, error: str) -> None:
    """Set the task aside with its error (a bug or bad data); kept for replay."""
    s.execute(update(InboundTask).where(InboundTask.id == task_id, InboundTask.state == NEW)
              .values(state=SHUNTED, error=error, attempts=InboundTask.attempts + 1,
                      lease_until=None))


def defer(s: Session, task_id: int, error: str, delay: float) -> None:
    """Leave the task new but untouched for `delay` seconds (a full disk: retried later,
    not shunted); no owner, so only the lease's end gives it back."""
    s.execute(update(InboundTask).where(InboundTask.id == task_id, InboundTask.state == NEW)
              .values(error=error[:2000], attempts=InboundTask.attempts + 1, lease_owner="",
                      lease_until=utcnow() + dt.timedelta(seconds=delay)))


def shunted_count(s: Session) -> int:
    return s.scalar(select(func.count()).select_from(InboundTask).where(
        InboundTask.state == SHUNTED)) or 0


def retry_shunted(s: Session, task_id: int | None = None) -> int:
    """Queue shunted tasks again (all, or one); returns how many."""
    q = update(InboundTask).where(InboundTask.state == SHUNTED)
    if task_id is not None:
        q = q.where(InboundTask.id == task_id)
    return claims.changed(s.execute(q.values(state=NEW, lease_owner="", lease_until=None)))


def release_dead(s: Session) -> int:
    """Give back the new tasks claimed by dead processes of this host (after a crash or
    kill -9), so a restart works them at once instead of waiting out their lease."""
    owners = list(s.scalars(select(InboundTask.lease_owner).where(
        InboundTask.state == NEW,
        InboundTask.lease_owner.like(claims.local_prefix() + "%")).distinct()))
    n = 0
    for owner in claims.dead_local_owners(owners):
        n += claims.changed(s.execute(update(InboundTask).where(
            InboundTask.lease_owner == owner, InboundTask.state == NEW).values(
            lease_owner="", lease_until=None)))
    return n


class NotShunted(Exception):
    """The task does not exist or is not shunted (only shunted tasks may be deleted)."""


def delete_shunted(s: Session, task_ids: list[int]) -> tuple[list[str], list[str]]:
    """Remove shunted inbound tasks. Returns (the queue ids touched, spool paths of messages
    that have nothing left to do, for the caller to remove after the commit)."""
    touched: list[str] = []
    paths: list[str] = []
    for tid in task_ids:
        task = s.get(InboundTask, tid, with_for_update=True)
        if task is None or task.state != SHUNTED:
            raise NotShunted(tid)
        msg = s.get(InboundMessage, task.message_id)
        assert msg is not None  # the task's message_id is a foreign key
        s.delete(task)
        s.flush()
        if msg.queue_id not in touched:
            touched.append(msg.queue_id)
        left = s.scalar(select(func.count()).select_from(InboundTask).where(
            InboundTask.message_id == msg.id, InboundTask.state != DONE))
        if not left:
            paths.append(msg.spool_path)
            s.delete(msg)
            s.flush()
    return touched, paths


def shunted_task_ids(s: Session, queue_id: str) -> list[int]:
    return list(s.scalars(select(InboundTask.id).join(
        InboundMessage, InboundMessage.id == InboundTask.message_id).where(
        InboundMessage.queue_id == queue_id, InboundTask.state == SHUNTED)))
