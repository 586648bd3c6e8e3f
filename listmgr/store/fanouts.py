"""Fan-out rows (the cursor of a big post's queueing) and the queries posting/fanout.py runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.orm import Session

from listmgr.store.claims import changed, dead_local_owners, local_prefix
from listmgr.store.models import Fanout, Member, OutboundMessage, utcnow


@dataclass(frozen=True)
class Position:
    """Where a fan-out stands: read before its next batch is queued."""

    message_id: int
    list_id: int
    cursor: int
    queued: int


def position(s: Session, fid: int, owner: str) -> Position | None:
    """Fan-out `fid` as leased by `owner`; None if it is finished or someone else's."""
    row = s.execute(select(Fanout.message_id, Fanout.list_id, Fanout.cursor, Fanout.queued)
                    .where(Fanout.id == fid, Fanout.lease_owner == owner)).first()
    return None if row is None else Position(row[0], row[1], row[2], row[3])


def advance(s: Session, fid: int, owner: str, *, cursor: int, to: int, queued: int,
            lease: float) -> bool:
    """Move fan-out `fid` from `cursor` to `to` with `queued` more recipients, renewing
    `owner`'s lease; False (nothing changed) if it is no longer at `cursor` or not
    `owner`'s. Run it in the transaction that queues those recipients, before them: on
    PostgreSQL it locks the row until that commit."""
    return changed(s.execute(update(Fanout).where(
        Fanout.id == fid, Fanout.lease_owner == owner, Fanout.cursor == cursor).values(
        cursor=to, queued=Fanout.queued + queued,
        lease_until=utcnow() + dt.timedelta(seconds=lease)))) == 1


def release_dead_local(s: Session) -> int:
    """Fan-outs leased by dead processes of this host: made free to take at once."""
    owners = s.scalars(select(Fanout.lease_owner).where(
        Fanout.lease_owner.like(local_prefix() + "%")).distinct())
    n = 0
    for owner in dead_local_owners(list(owners)):
        n += changed(s.execute(update(Fanout).where(
            Fanout.lease_owner == owner).values(lease_owner="", lease_until=None)))
    return n


def drop_message(s: Session, message_id: int) -> None:
    """Delete an outbound message that got no recipients."""
    s.execute(delete(OutboundMessage).where(OutboundMessage.id == message_id))


def roster_summary(s: Session, list_id: int) -> tuple[int, bool]:
    """(members a post goes to: delivery on, not in digest mode; whether any member is in
    digest mode), in one pass over the list's members."""
    row = s.execute(select(
        func.count().filter(and_(Member.delivery_enabled.is_(True), Member.digest.is_(False))),
        func.max(case((Member.digest.is_(True), 1), else_=0)),
    ).where(Member.list_id == list_id)).one()
    return int(row[0] or 0), bool(row[1])
