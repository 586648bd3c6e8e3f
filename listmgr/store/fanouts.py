"""Fan-out rows (the cursor of a big post's queueing) and the queries posting/fanout.py runs."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from listmgr.store.claims import changed, dead_local_owners, local_prefix
from listmgr.store.models import Fanout, OutboundMessage


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
