"""Repository for lists and members. Functions take a Session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from listmgr.listconfig import SETTINGS, SettingError, parse_value, put_value, valid_list_name
from listmgr.mail.addresses import (AddressError, address_list, domain_of, normalise,
                                    parse_single)
from listmgr.passwords import hash_password
from listmgr.store.member_import import member_constants
from listmgr.store.models import HeldPost, MailingList, Member, utcnow
from listmgr.store.settings import ListError, ListRef, ListSettings, NoSuchList, row_of


def get_list(s: Session, name: str) -> MailingList | None:
    return s.scalars(select(MailingList).where(MailingList.name == name.lower())).first()


def list_of_sender(s: Session, local: str) -> str | None:
    """The list whose `sender` has this local part (bounces to it are the list's), if any;
    the default owner-LIST is not stored and not looked up here."""
    return s.scalar(sender_query(local))


def sender_query(local: str):
    """The statement behind list_of_sender (also run on bare connections)."""
    local = local.lower()
    col = func.lower(MailingList.sender)
    return select(MailingList.name).where(
        (col == local) | col.startswith(local + "@", autoescape=True)
    ).order_by(MailingList.id).limit(1)


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
    put_value(mlist, setting, value)
    if setting.key == "admin_passwd" and not mlist.approve_passwd_hash:
        mlist.approve_passwd_hash = value


def update_setting(s: Session, mlist: ListSettings, key: str, text: str) -> None:
    """set_setting on the row behind a ListSettings value."""
    set_setting(s, row_of(s, mlist), key, text)


def owners_of(mlist: ListRef) -> list[str]:
    if isinstance(mlist, ListSettings):
        return list(mlist.owners)
    return address_list(mlist.owners)


# --------------------------------------------------------------------------- members

@dataclass
class BulkResult:
    added: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (line, why)
    missing: list[str] = field(default_factory=list)  # for removals


def find_member(s: Session, mlist: ListRef, address: str) -> Member | None:
    return s.scalars(select(Member).where(Member.list_id == mlist.id,
                                          Member.key == normalise(address))).first()


def is_member(s: Session, mlist: ListRef, address: str) -> bool:
    return find_member(s, mlist, address) is not None


def may_post(s: Session, mlist: ListRef, address: str) -> bool:
    """Majordomo's restrict_post: a member of one of the lists it names, else of this list."""
    names = mlist.restrict_post.split() if mlist.restrict_post.strip() else [mlist.name]
    if names == [mlist.name]:
        return is_member(s, mlist, address)
    q = select(Member.id).join(MailingList, Member.list_id == MailingList.id).where(
        MailingList.name.in_(names), Member.key == normalise(address)).limit(1)
    return s.scalar(q) is not None


def _keys(addresses: Iterable[str]) -> list[str]:
    out = []
    for a in addresses:
        try:
            out.append(normalise(parse_single(a)))
        except AddressError:
            continue
    return out


def set_digest(s: Session, mlist: ListRef, addresses: Iterable[str], on: bool) -> None:
    """Put these members in (or out of) digest mode."""
    keys = _keys(addresses)
    for i in range(0, len(keys), 1000):
        s.execute(update(Member).where(Member.list_id == mlist.id,
                                       Member.key.in_(keys[i:i + 1000])).values(digest=on))


def not_in_digest(s: Session, mlist: ListRef, addresses: Iterable[str]) -> list[str]:
    keys = _keys(addresses)
    out: list[str] = []
    for i in range(0, len(keys), 1000):
        out += s.scalars(select(Member.key).where(
            Member.list_id == mlist.id, Member.key.in_(keys[i:i + 1000]),
            Member.digest.is_(False)))
    return out


def member_count(s: Session, mlist: ListRef) -> int:
    return s.scalar(select(func.count()).select_from(Member).where(
        Member.list_id == mlist.id)) or 0


def delivering_count(s: Session, mlist: ListRef) -> int:
    """Members with delivery on and not in digest mode: who a post goes to."""
    return s.scalar(select(func.count()).select_from(Member).where(
        Member.list_id == mlist.id, Member.delivery_enabled.is_(True),
        Member.digest.is_(False))) or 0


def _insert(s: Session):
    return sqlite_insert if s.get_bind().dialect.name == "sqlite" else pg_insert


_MEMBER_COLUMNS = ("list_id", "address", "key", "domain", "delivery_enabled", "digest",
                   "subscribed_at")


def _insert_rows(s: Session, list_id: int, rows: list[tuple[str, str, str]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING of (address, key, domain) member rows through the
    driver's executemany: SQLAlchemy's per-row parameter processing costs more than the
    insert itself at a million rows. The constant columns go through their own bind
    processors once, so rows are stored exactly as the ORM stores them."""
    conn = s.connection()
    dialect = conn.dialect
    table = cast(Table, Member.__table__)
    consts = list(member_constants(s, digest=False))
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
    if mark is None:  # another driver: the portable path
        conn.execute(_insert(s)(table).on_conflict_do_nothing(), [
            {"list_id": list_id, "address": a, "key": k, "domain": d, "delivery_enabled": True,
             "digest": False, "subscribed_at": utcnow()} for a, k, d in rows])
        return
    enabled, digest, now = consts
    cols = ", ".join(f'"{c}"' for c in _MEMBER_COLUMNS)
    sql = (f"INSERT INTO {table.name} ({cols}) VALUES ({', '.join([mark] * 7)}) "
           f"ON CONFLICT DO NOTHING")
    conn.exec_driver_sql(sql, [(list_id, a, k, d, enabled, digest, now) for a, k, d in rows])


def add_members(s: Session, mlist: ListRef, addresses: Iterable[str],
                *, chunk: int = 2000, progress=None) -> BulkResult:
    """Add many addresses fast; duplicates and invalid lines are reported, not fatal."""
    result = BulkResult()
    batch: dict[str, str] = {}
    list_id = mlist.id
    keep_raw = mlist.strip is False

    def flush() -> None:
        if not batch:
            return
        present = set(s.scalars(select(Member.key).where(Member.list_id == list_id,
                                                         Member.key.in_(list(batch)))))
        rows = [(addr, k, domain_of(k)) for k, addr in batch.items() if k not in present]
        if rows:
            _insert_rows(s, list_id, rows)
        for k, addr in batch.items():
            (result.duplicates if k in present else result.added).append(addr)
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
        if keep_raw:
            addr = raw
        if key in batch:
            result.duplicates.append(addr)
            continue
        batch[key] = addr
        if len(batch) >= chunk:
            flush()
    flush()
    return result


def remove_members(s: Session, mlist: ListRef, addresses: Iterable[str],
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


def iter_member_batches(s: Session, mlist: ListRef, *, batch: int = 5000,
                        after_id: int = 0, enabled_only: bool = True,
                        digest: bool | None = None) -> Iterator[list[tuple[int, str]]]:
    """Stream (id, address) in id order, `batch` at a time: never the whole roster in memory.
    `digest` True / False keeps only members in / not in digest mode."""
    last = after_id
    while True:
        q = select(Member.id, Member.address).where(Member.list_id == mlist.id, Member.id > last)
        if enabled_only:
            q = q.where(Member.delivery_enabled.is_(True))
        if digest is not None:
            q = q.where(Member.digest.is_(digest))
        rows = [(r[0], r[1]) for r in s.execute(q.order_by(Member.id).limit(batch))]
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def find_in_rosters(s: Session, list_ids: Iterable[int], text: str,
                    limit: int) -> list[tuple[str, str]]:
    """(list name, member address) of members of these lists whose address contains
    `text` in any case, by list name then member id; at most `limit`."""
    q = select(MailingList.name, Member.address).join(
        Member, Member.list_id == MailingList.id).where(
        MailingList.id.in_(list(list_ids)),
        func.lower(Member.address).contains(text.lower(), autoescape=True)
    ).order_by(MailingList.name, Member.id).limit(limit)
    return [(r[0], r[1]) for r in s.execute(q)]


def lists_of(s: Session, address: str) -> list[str]:
    """Names of the lists `address` is on."""
    q = select(MailingList.name).join(Member, Member.list_id == MailingList.id).where(
        Member.key == normalise(address)).order_by(MailingList.name)
    return list(s.scalars(q))


def search_members(s: Session, mlist: ListRef, text: str = "", *, offset: int = 0,
                   limit: int = 100) -> tuple[list[tuple[str, bool, object, bool]], int]:
    """(address, delivery on, subscribed at, digest mode) of members whose address contains
    `text`, in address order, one page at a time; and how many match in all."""
    cond = [Member.list_id == mlist.id]
    if text:
        cond.append(Member.key.contains(text.lower(), autoescape=True))
    total = s.scalar(select(func.count()).select_from(Member).where(*cond)) or 0
    rows = s.execute(select(Member.address, Member.delivery_enabled, Member.subscribed_at,
                            Member.digest)
                     .where(*cond).order_by(Member.key).offset(offset).limit(limit)).all()
    return [(a, bool(d), t, bool(g)) for a, d, t, g in rows], total


def held_counts(s: Session) -> dict[int, int]:
    """Posts waiting for a decision, per list id (lists with none are left out)."""
    return dict(s.execute(select(HeldPost.list_id, func.count()).where(
        HeldPost.state == "held").group_by(HeldPost.list_id)).all())
