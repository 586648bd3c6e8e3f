"""Mailbox users (who may log in over POP3) and relay grants (POP-before-SMTP).

Repository functions take a session and return plain dataclasses. Passwords are only ever
handled as argon2id hashes here (listmgr.passwords); the clear text is never stored or logged.

The SMTP gate asks `relay_allowed(s, ip)`: true while some grant for that client IP has
`expires_at > now`. Every successful POP3 login adds a grant (`grant_relay`); expired rows are
removed by `purge_expired_grants`.
"""

from __future__ import annotations

import dataclasses
import functools
import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal, cast

from sqlalchemy import Connection, CursorResult, Table, bindparam, delete, func, select
from sqlalchemy.orm import Session

from listmgr.passwords import hash_password
from listmgr.store.claims import changed
from listmgr.store.models import MailingList, MailboxUser, RelayGrant, utcnow

# Addresses the server answers itself, and the lists' own suffixes: never a mailbox.
RESERVED = ("majordomo", "majordomo-owner", "owner-majordomo", "postmaster", "mailer-daemon",
            "root", "abuse", "listserv")
LIST_SUFFIXES = ("-request", "-owner", "-approval")

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9_])?$")


class UserError(Exception):
    """A refused user operation, worded for the administrator."""


class NoSuchUser(UserError):
    pass


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    autoreply_enabled: bool
    autoreply_subject: str
    autoreply_body: str
    created_at: dt.datetime
    autoreply_start: dt.date | None = None
    autoreply_end: dt.date | None = None  # inclusive
    autoreply_interval_days: int = 1  # one sender gets at most one reply per this many days


@dataclass(frozen=True)
class Grant:
    ip: str
    user: str
    granted_at: dt.datetime
    expires_at: dt.datetime


def _user(row: MailboxUser) -> User:
    return User(row.name, row.password_hash, bool(row.autoreply_enabled),
                row.autoreply_subject or "", row.autoreply_body or "", row.created_at,
                row.autoreply_start, row.autoreply_end, row.autoreply_interval_days or 1)


def check_name(name: str) -> str:
    """The lower-case mailbox name, or UserError saying what is wrong with it."""
    lname = name.strip().lower()
    if not _NAME.match(lname) or ".." in lname:
        raise UserError(f"'{name}' is not a usable mailbox name (letters, digits, '.', '_', "
                        "'+', '-'; at most 64 characters)")
    if lname in RESERVED or lname.startswith("owner-") or lname.endswith(LIST_SUFFIXES):
        raise UserError(f"'{name}' is reserved and cannot be a mailbox name")
    return lname


_USERS = cast(Table, MailboxUser.__table__)
_GET_USER = select(_USERS).where(_USERS.c.name == bindparam("name"))


def get_user(s: Session | Connection, name: str) -> User | None:
    """The mailbox user `name`; `s` a session or a bare connection (a Core statement, built
    once: local delivery asks this for every batch)."""
    row = s.execute(_GET_USER, {"name": name.lower()}).first()
    return _user(row) if row is not None else None  # type: ignore[arg-type]


def user_exists(s: Session, name: str) -> bool:
    """For the SMTP router: is NAME@<domain> a local mailbox?"""
    return (s.scalar(select(func.count()).select_from(MailboxUser).where(
        MailboxUser.name == name.lower())) or 0) > 0


def all_users(s: Session) -> list[User]:
    return [_user(r) for r in s.scalars(select(MailboxUser).order_by(MailboxUser.name))]


def _row(s: Session, name: str) -> MailboxUser:
    row = s.scalar(select(MailboxUser).where(MailboxUser.name == name.lower()))
    if row is None:
        raise NoSuchUser(f"no mailbox user '{name}'")
    return row


def add_user(s: Session, name: str, password: str) -> User:
    lname = check_name(name)
    if not password:
        raise UserError("the password must not be empty")
    if get_user(s, lname) is not None:
        raise UserError(f"mailbox user '{lname}' already exists")
    if s.scalar(select(func.count()).select_from(MailingList).where(
            MailingList.name == lname)):
        raise UserError(f"'{lname}' is the name of a mailing list")
    row = MailboxUser(name=lname, password_hash=hash_password(password))
    s.add(row)
    s.flush()
    return _user(row)


def set_password(s: Session, name: str, password: str) -> None:
    if not password:
        raise UserError("the password must not be empty")
    _row(s, name).password_hash = hash_password(password)


def delete_user(s: Session, name: str) -> None:
    s.delete(_row(s, name))
    s.flush()


MAX_INTERVAL_DAYS = 365


def set_autoreply(s: Session, name: str, *, enabled: bool, subject: str | None = None,
                  body: str | None = None, start: dt.date | None | Literal[False] = False,
                  end: dt.date | None | Literal[False] = False,
                  interval_days: int | None = None) -> None:
    """Change the auto-responder; arguments left out (None, or False for the dates) keep
    their stored value."""
    row = _row(s, name)
    row.autoreply_enabled = enabled
    if subject is not None:
        row.autoreply_subject = subject
    if body is not None:
        row.autoreply_body = body
    if start is not False:
        row.autoreply_start = start or None
    if end is not False:
        row.autoreply_end = end or None
    if row.autoreply_start and row.autoreply_end and row.autoreply_end < row.autoreply_start:
        raise UserError("the auto-responder's end date is before its start date")
    if interval_days is not None:
        if not 1 <= interval_days <= MAX_INTERVAL_DAYS:
            raise UserError(f"the reply interval must be 1 to {MAX_INTERVAL_DAYS} days")
        row.autoreply_interval_days = interval_days


# --------------------------------------------------------------------------- relay grants

@functools.lru_cache(maxsize=1024)  # asked several times per SMTP transaction
def normalise_ip(ip: str) -> str:
    """Canonical text of a client IP: '::ffff:127.0.0.1' -> '127.0.0.1', zones dropped."""
    text = ip.strip().split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr)


def grant_relay(s: Session, ip: str, user: str, window: float,
                now: dt.datetime | None = None) -> Grant:
    """Record a successful login: `ip` may relay until `window` seconds from now."""
    now = now or utcnow()
    row = RelayGrant(ip=normalise_ip(ip), user=user.lower(), granted_at=now,
                     expires_at=now + dt.timedelta(seconds=window))
    s.add(row)
    s.flush()
    return Grant(row.ip, row.user, row.granted_at, row.expires_at)


def _live(now: dt.datetime, window: float | None) -> list:
    """Where-clauses of a live grant: not expired, and, when the current `window` is given,
    granted within it (a shortened `[pop3] relay_window` applies to grants made before)."""
    clauses = [RelayGrant.expires_at > now]
    if window is not None:
        clauses.append(RelayGrant.granted_at > now - dt.timedelta(seconds=window))
    return clauses


def relay_allowed(s: Session, ip: str, now: dt.datetime | None = None,
                  window: float | None = None) -> bool:
    """True while a grant for this client IP has not expired (POP-before-SMTP)."""
    now = now or utcnow()
    return (s.scalar(select(func.count()).select_from(RelayGrant).where(
        RelayGrant.ip == normalise_ip(ip), *_live(now, window))) or 0) > 0


def live_grants(s: Session, now: dt.datetime | None = None,
                window: float | None = None) -> list[Grant]:
    """One line per (ip, user): the latest login and when its window closes."""
    now = now or utcnow()
    rows = s.execute(
        select(RelayGrant.ip, RelayGrant.user, func.max(RelayGrant.granted_at),
               func.max(RelayGrant.expires_at))
        .where(*_live(now, window))
        .group_by(RelayGrant.ip, RelayGrant.user)
        .order_by(RelayGrant.ip, RelayGrant.user)).all()
    grants = [Grant(*r) for r in rows]
    if window is not None:
        grants = [dataclasses.replace(g, expires_at=min(
            g.expires_at, g.granted_at + dt.timedelta(seconds=window))) for g in grants]
    return grants


def revoke_grants(s: Session, who: str) -> int:
    """End every grant of a client IP, or of a mailbox user (`alice`); returns how many."""
    who = who.strip()
    try:
        ipaddress.ip_address(who.split("%", 1)[0])
        where = RelayGrant.ip == normalise_ip(who)
    except ValueError:
        where = RelayGrant.user == who.lower()
    return cast(CursorResult, s.execute(delete(RelayGrant).where(where))).rowcount or 0


def purge_expired_grants(s: Session, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    return changed(s.execute(delete(RelayGrant).where(RelayGrant.expires_at <= now)))
