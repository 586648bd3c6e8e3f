"""One-off flags in site_settings that a migration sets and the server clears when it has
done the work (work outside the database, which a migration cannot reach)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from listmgr.store.models import SiteSetting


def is_set(s: Session, key: str) -> bool:
    return s.get(SiteSetting, key) is not None


def clear(s: Session, key: str) -> None:
    row = s.get(SiteSetting, key)
    if row is not None:
        s.delete(row)
