"""Held posts waiting for a moderator: the queries posting/moderation.py decides on."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from listmgr.store.models import HeldPost, MailingList


def list_name_of(s: Session, held: HeldPost) -> str | None:
    return s.scalar(select(MailingList.name).where(MailingList.id == held.list_id))


def pending(s: Session, list_name: str | None = None) -> list[HeldPost]:
    """Posts still held, oldest first; of one list when `list_name` is given."""
    q = select(HeldPost).where(HeldPost.state == "held").order_by(HeldPost.id)
    if list_name:
        q = q.join(MailingList, MailingList.id == HeldPost.list_id).where(
            MailingList.name == list_name.lower())
    return list(s.scalars(q))


def pending_of_list(s: Session, list_id: int) -> list[HeldPost]:
    return list(s.scalars(select(HeldPost).where(HeldPost.list_id == list_id,
                                                 HeldPost.state == "held")))


def due_to_expire(s: Session, now: dt.datetime, limit: int) -> list[HeldPost]:
    """Held posts whose time is up, oldest first; on PostgreSQL locked for this
    transaction, skipping those another process is expiring."""
    q = select(HeldPost).where(HeldPost.state == "held", HeldPost.expires_at <= now) \
        .order_by(HeldPost.id).limit(limit)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    return list(s.scalars(q))


def pending_paths(s: Session) -> set[str]:
    """Spool paths of the posts still held."""
    return set(s.scalars(select(HeldPost.spool_path).where(HeldPost.state == "held")))
