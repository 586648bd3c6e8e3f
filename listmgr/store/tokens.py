"""Token rows: look one up by the hash of its secret, delete the long expired."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from listmgr.store.claims import changed
from listmgr.store.models import Token


def token_by_hash(s: Session, token_hash: str) -> Token | None:
    return s.scalars(select(Token).where(Token.token_hash == token_hash)).first()


def delete_expired_before(s: Session, cutoff: dt.datetime) -> int:
    """Delete tokens that expired before `cutoff`; how many."""
    return changed(s.execute(delete(Token).where(Token.expires_at < cutoff)))
