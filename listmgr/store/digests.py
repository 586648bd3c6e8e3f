"""Repository for digests: posts waiting for a list's next digest, and digest members.
Functions take a Session; the caller owns the transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from listmgr.store.models import DigestEntry, Member
from listmgr.store.settings import ListRef, ListSettings, read_list_by_id


@dataclass(frozen=True)
class Queue:
    count: int
    size: int
    lines: int
    oldest: dt.datetime | None


def has_digest_members(s: Session, mlist: ListRef) -> bool:
    return bool(s.scalar(select(exists().where(Member.list_id == mlist.id,
                                               Member.digest.is_(True)))))


def add_entry(s: Session, mlist: ListRef, data: bytes, *, lines: int, size: int,
              queued_at: dt.datetime | None = None) -> None:
    """`queued_at`: when the post arrived, if earlier than now (a post carried over)."""
    entry = DigestEntry(list_id=mlist.id, data=data, lines=lines, size=size)
    if queued_at is not None:
        entry.queued_at = queued_at
    s.add(entry)
    s.flush()


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_digests(s: Session, mlist: ListRef) -> list[str]:
    """content_digest of each post waiting for the list's next digest."""
    return [content_digest(d) for d in s.scalars(
        select(DigestEntry.data).where(DigestEntry.list_id == mlist.id))]


def queue_of(s: Session, mlist: ListRef) -> Queue:
    count, size, lines, oldest = s.execute(
        select(func.count(), func.coalesce(func.sum(DigestEntry.size), 0),
               func.coalesce(func.sum(DigestEntry.lines), 0), func.min(DigestEntry.queued_at))
        .where(DigestEntry.list_id == mlist.id)).one()
    return Queue(count, size, lines, oldest)


def entries(s: Session, mlist: ListRef, limit: int) -> list[tuple[int, bytes]]:
    """(id, bytes) of the oldest `limit` waiting posts."""
    q = select(DigestEntry.id, DigestEntry.data).where(DigestEntry.list_id == mlist.id) \
        .order_by(DigestEntry.id).limit(limit)
    return [(r[0], r[1]) for r in s.execute(q)]


def remove_entries(s: Session, ids: list[int]) -> None:
    s.execute(delete(DigestEntry).where(DigestEntry.id.in_(ids)))


def digest_addresses(s: Session, mlist: ListRef) -> list[str]:
    """Members in digest mode with delivery on, as stored, in id order."""
    q = select(Member.address).where(Member.list_id == mlist.id, Member.digest.is_(True),
                                     Member.delivery_enabled.is_(True)).order_by(Member.id)
    return list(s.scalars(q))


def lists_waiting(s: Session) -> list[int]:
    return list(s.scalars(select(DigestEntry.list_id).distinct()))


def list_by_id(s: Session, list_id: int) -> ListSettings | None:
    return read_list_by_id(s, list_id)
