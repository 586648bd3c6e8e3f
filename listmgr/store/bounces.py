"""Members as delivery and bounce processing see them: per-recipient lookups, scores,
disabling. Every function takes a session (one transaction) and returns plain values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from listmgr.store.models import MailingList, Member


@dataclass(frozen=True)
class MemberInfo:
    """What per-recipient parts need of a member row."""

    id: int
    key: str
    bounce_score: float


def member_infos(s: Session, list_name: str, keys: Iterable[str]) -> dict[str, MemberInfo]:
    """{key: MemberInfo} for the members of `list_name` among `keys` (lower-case keys)."""
    keys = list(set(keys))
    out: dict[str, MemberInfo] = {}
    list_id = s.scalar(select(MailingList.id).where(MailingList.name == list_name))
    if list_id is None:
        return out
    for i in range(0, len(keys), 900):
        for mid, key, score in s.execute(select(Member.id, Member.key, Member.bounce_score).where(
                Member.list_id == list_id, Member.key.in_(keys[i:i + 900]))):
            out[key] = MemberInfo(mid, key, score)
    return out


def list_parts_settings(s: Session, list_name: str) -> str | None:
    """The list's `verp` setting, or None when the list is gone."""
    return s.scalar(select(MailingList.verp).where(MailingList.name == list_name))
