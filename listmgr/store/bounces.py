"""Members as delivery and bounce processing see them: per-recipient lookups, scores,
disabling. Every function takes a session (one transaction) and returns plain values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from listmgr.store.models import MailingList, Member
from listmgr.store.settings import ListRef, ListSettings, settings_of


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


def list_bounce_base(s: Session, list_name: str) -> str:
    """The local part the list's VERP addresses are built on: its `sender`'s, or "" for
    the default owner-LIST."""
    sender = s.scalar(select(MailingList.sender).where(MailingList.name == list_name)) or ""
    sender = sender.strip()
    return (sender.rpartition("@")[0] if "@" in sender else sender).lower()


def _candidates(address: str) -> list[str]:
    """Lookup keys for an address: as given, and with an IDN domain in either form."""
    key = address.strip().strip("<>").lower()
    local, _, domain = key.rpartition("@")
    out = [key]
    try:
        if domain.isascii() and "xn--" in domain:
            out.append(f"{local}@{domain.encode('ascii').decode('idna')}")
        elif not domain.isascii():
            out.append(f"{local}@{domain.encode('idna').decode('ascii')}")
    except UnicodeError:
        pass
    return out


def find_member(s: Session, mlist: ListRef, address: str) -> Member | None:
    """The member row of `address` on `mlist` (its key, either form of an IDN domain)."""
    return s.scalars(select(Member).where(Member.list_id == mlist.id,
                                          Member.key.in_(_candidates(address)))).first()


def member_by_id(s: Session, member_id: int) -> Member | None:
    return s.get(Member, member_id)


def remove_member(s: Session, m: Member) -> None:
    s.execute(delete(Member).where(Member.id == m.id))


def all_lists(s: Session) -> list[ListSettings]:
    return [settings_of(r) for r in s.scalars(select(MailingList).order_by(MailingList.id))]


def clear_stale_scores(s: Session, mlist: ListRef, before: dt.datetime) -> int:
    """Scores of members with delivery on whose last bounce is older than `before`: zero."""
    return cast(CursorResult, s.execute(update(Member).where(
        Member.list_id == mlist.id, Member.delivery_enabled.is_(True),
        Member.bounce_score > 0, Member.last_bounce_at < before)
        .values(bounce_score=0.0))).rowcount or 0


def disabled_by_bounces(s: Session, mlist: ListRef, limit: int = 1000) -> list[Member]:
    return list(s.scalars(select(Member).where(
        Member.list_id == mlist.id, Member.delivery_enabled.is_(False),
        Member.disabled_reason == "bounces").order_by(Member.id).limit(limit)))


def with_bounces(s: Session, mlist: ListRef) -> list[Member]:
    """Members with a bounce score or disabled by bounces, by address."""
    return list(s.scalars(select(Member).where(
        Member.list_id == mlist.id,
        or_(Member.bounce_score > 0, Member.disabled_reason == "bounces"))
        .order_by(Member.key)))


def member_batches(s: Session, mlist: ListRef, batch: int = 5000) -> Iterator[list[Member]]:
    """Every member row of the list in id order, `batch` at a time."""
    last = 0
    while True:
        rows = list(s.scalars(select(Member).where(Member.list_id == mlist.id,
                                                   Member.id > last)
                              .order_by(Member.id).limit(batch)))
        if not rows:
            return
        yield rows
        last = rows[-1].id
