"""Repository for lists and members. Functions take a Session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from listmgr.listconfig import SETTINGS, SettingError, parse_value, valid_list_name
from listmgr.mail.addresses import (AddressError, address_list, domain_of, normalise,
                                    parse_single)
from listmgr.passwords import hash_password
from listmgr.store.models import MailingList, Member, utcnow


class ListError(Exception):
    """A list operation that cannot be done; the message is for the user."""


class NoSuchList(ListError):
    pass


def get_list(s: Session, name: str) -> MailingList | None:
    return s.scalars(select(MailingList).where(MailingList.name == name.lower())).first()


def require_list(s: Session, name: str) -> MailingList:
    mlist = get_list(s, name)
    if mlist is None:
        raise NoSuchList(f"no list named '{name}'")
    return mlist


def all_lists(s: Session) -> list[MailingList]:
    return list(s.scalars(select(MailingList).order_by(MailingList.name)))


def create_list(s: Session, name: str, owners: Iterable[str], *, password: str | None = None,
                description: str = "", reserved: Iterable[str] = ()) -> MailingList:
    if not valid_list_name(name):
        raise ListError(f"'{name}' is not a valid list name (letters, digits, - and _ only)")
    lname = name.lower()
    if lname in {r.lower() for r in reserved} or lname.endswith(("-request", "-owner",
                                                                  "-approval")) \
            or lname.startswith("owner-"):
        raise ListError(f"'{name}' is reserved and cannot be a list name")
    if get_list(s, lname) is not None:
        raise ListError(f"list '{lname}' already exists")
    owner_text = "\n".join(owners)
    try:
        owner_value = parse_value("owners", owner_text)
    except SettingError as exc:
        raise ListError(str(exc)) from None
    mlist = MailingList(name=lname, owners=owner_value, description=description.strip())
    if password:
        mlist.admin_passwd_hash = hash_password(password)
        mlist.approve_passwd_hash = mlist.admin_passwd_hash
    s.add(mlist)
    s.flush()
    return mlist


def delete_list(s: Session, name: str) -> None:
    mlist = require_list(s, name)
    s.execute(delete(Member).where(Member.list_id == mlist.id))
    s.delete(mlist)


def set_setting(s: Session, mlist: MailingList, key: str, text: str) -> None:
    """Set one setting from its text form; SettingError on a bad key or value."""
    value = parse_value(key, text)
    setting = SETTINGS[key.lower()]
    if setting.secret:
        if not value:
            raise SettingError(f"'{setting.key}' cannot be empty")
        value = hash_password(value)
    setattr(mlist, setting.attr, value)
    if setting.key == "admin_passwd" and not mlist.approve_passwd_hash:
        mlist.approve_passwd_hash = value


def owners_of(mlist: MailingList) -> list[str]:
    return address_list(mlist.owners)


# --------------------------------------------------------------------------- members

@dataclass
class BulkResult:
    added: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (line, why)
    missing: list[str] = field(default_factory=list)  # for removals


def find_member(s: Session, mlist: MailingList, address: str) -> Member | None:
    return s.scalars(select(Member).where(Member.list_id == mlist.id,
                                          Member.key == normalise(address))).first()


def is_member(s: Session, mlist: MailingList, address: str) -> bool:
    return find_member(s, mlist, address) is not None


def member_count(s: Session, mlist: MailingList) -> int:
    return s.scalar(select(func.count()).select_from(Member).where(Member.list_id == mlist.id))


def _insert(s: Session):
    return sqlite_insert if s.get_bind().dialect.name == "sqlite" else pg_insert


def add_members(s: Session, mlist: MailingList, addresses: Iterable[str],
                *, chunk: int = 2000, progress=None) -> BulkResult:
    """Add many addresses fast; duplicates and invalid lines are reported, not fatal."""
    result = BulkResult()
    batch: dict[str, str] = {}
    insert = _insert(s)

    def flush() -> None:
        if not batch:
            return
        now = utcnow()
        rows = [{"list_id": mlist.id, "address": addr, "key": k, "domain": domain_of(addr),
                 "delivery_enabled": True, "subscribed_at": now}
                for k, addr in batch.items()]
        # One round of INSERT ... ON CONFLICT DO NOTHING RETURNING: what comes back was
        # added, the rest were already members.
        table = Member.__table__
        stmt = insert(table).on_conflict_do_nothing().returning(table.c.key)
        inserted = set(s.connection().execute(stmt, rows).scalars())
        for k, addr in batch.items():
            (result.added if k in inserted else result.duplicates).append(addr)
        batch.clear()
        if progress:
            progress(len(result.added) + len(result.duplicates) + len(result.invalid))

    for line in addresses:
        raw = line.strip()
        if not raw or raw.startswith("#"):
            continue
        try:
            addr = parse_single(raw)
        except AddressError as exc:
            result.invalid.append((raw, str(exc)))
            continue
        key = normalise(addr)
        if mlist.strip is False:
            addr = raw
        if key in batch:
            result.duplicates.append(addr)
            continue
        batch[key] = addr
        if len(batch) >= chunk:
            flush()
    flush()
    return result


def remove_members(s: Session, mlist: MailingList, addresses: Iterable[str],
                   *, chunk: int = 2000) -> BulkResult:
    result = BulkResult()
    keys: list[str] = []

    def flush() -> None:
        if not keys:
            return
        present = set(s.scalars(select(Member.key).where(
            Member.list_id == mlist.id, Member.key.in_(keys))))
        s.execute(delete(Member).where(Member.list_id == mlist.id, Member.key.in_(list(present))))
        for k in keys:
            (result.added if k in present else result.missing).append(k)
        keys.clear()

    for line in addresses:
        raw = line.strip()
        if not raw or raw.startswith("#"):
            continue
        try:
            keys.append(normalise(parse_single(raw)))
        except AddressError as exc:
            result.invalid.append((raw, str(exc)))
            continue
        if len(keys) >= 500:
            flush()
    flush()
    return result


def iter_member_batches(s: Session, mlist: MailingList, *, batch: int = 5000,
                        after_id: int = 0, enabled_only: bool = True
                        ) -> Iterator[list[tuple[int, str]]]:
    """Stream (id, address) in id order, `batch` at a time: never the whole roster in memory."""
    last = after_id
    while True:
        q = select(Member.id, Member.address).where(Member.list_id == mlist.id, Member.id > last)
        if enabled_only:
            q = q.where(Member.delivery_enabled.is_(True))
        rows = [(r[0], r[1]) for r in s.execute(q.order_by(Member.id).limit(batch))]
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def lists_of(s: Session, address: str) -> list[str]:
    """Names of the lists `address` is on."""
    q = select(MailingList.name).join(Member, Member.list_id == MailingList.id).where(
        Member.key == normalise(address)).order_by(MailingList.name)
    return list(s.scalars(q))
