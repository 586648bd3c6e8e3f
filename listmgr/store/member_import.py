"""Members in bulk for an import: rows already parsed, inserted through the driver's
executemany, no ORM objects, counts from the database itself.

`INSERT ... ON CONFLICT DO NOTHING` makes a re-run idempotent: a member already on the list
(from an earlier run, or earlier in the same file) is left as it is and counted as already
there (`rowcount` says how many rows each batch really added). The caller owns the
transaction; one commit per list keeps the number of syncs small.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from listmgr.store.models import Member, utcnow

_COLUMNS = ("list_id", "address", "key", "domain", "delivery_enabled", "digest",
            "subscribed_at")
_PARAMS_PER_QUERY = 900  # under SQLite's oldest limit of 999 variables a statement


def prepare(s: Session) -> None:
    """SQLite: a page cache big enough for the member indexes of a million-member import
    (the default is 2 MB), and a WAL checkpoint every 64 MB instead of every 4 MB, so an
    index page changed by many lists is copied into the database once, with one pair of
    fsyncs, rather than after every list's commit."""
    if s.get_bind().dialect.name == "sqlite":
        conn = s.connection()
        conn.exec_driver_sql("PRAGMA cache_size=-65536")
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint=16384")


def member_constants(s: Session, digest: bool) -> tuple:
    """delivery_enabled, digest and subscribed_at as the driver wants them: through the
    columns' own bind processors, so rows are stored exactly as the ORM stores them."""
    dialect = s.connection().dialect
    table = cast(Table, Member.__table__)
    out = []
    value: bool | dt.datetime | str
    for name, value in (("delivery_enabled", True), ("digest", digest),
                        ("subscribed_at", utcnow())):
        proc = table.c[name].type.bind_processor(dialect)
        if proc is None and dialect.name == "sqlite" and isinstance(value, dt.datetime):
            value = value.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite form
        out.append(proc(value) if proc else value)
    return tuple(out)


def _mark(s: Session) -> str:
    style = s.connection().dialect.paramstyle
    try:
        return {"qmark": "?", "format": "%s", "pyformat": "%s"}[style]
    except KeyError:
        raise RuntimeError(f"bulk member import does not know paramstyle {style}") from None


def insert_members(s: Session, list_id: int, rows: Iterable[tuple[str, str, str]], *,
                   digest: bool = False) -> int:
    """Insert (address, key, domain) rows for list `list_id`; returns how many were added
    (the others were on the list already). Rows keep their order: members are listed in
    the order they were added, as Majordomo lists its file."""
    batch = list(rows)
    if not batch:
        return 0
    enabled, dig, now = member_constants(s, digest)
    mark = _mark(s)
    cols = ", ".join(f'"{c}"' for c in _COLUMNS)
    sql = (f"INSERT INTO {Member.__tablename__} ({cols}) VALUES ({', '.join([mark] * 7)}) "
           f"ON CONFLICT DO NOTHING")
    result = s.connection().exec_driver_sql(
        sql, [(list_id, a, k, d, enabled, dig, now) for a, k, d in batch])
    return int(result.rowcount)


def present_keys(s: Session, list_id: int, keys: list[str]) -> set[str]:
    """Which of `keys` are members of list `list_id` already (a plain driver query per
    chunk: SQLAlchemy's expanding IN costs more than the lookup at this size)."""
    out: set[str] = set()
    mark = _mark(s)
    conn = s.connection()
    for i in range(0, len(keys), _PARAMS_PER_QUERY):
        chunk = keys[i:i + _PARAMS_PER_QUERY]
        sql = (f'SELECT "key" FROM {Member.__tablename__} WHERE list_id = {mark} '
               f'AND "key" IN ({", ".join([mark] * len(chunk))})')
        out.update(k for (k,) in conn.exec_driver_sql(sql, (list_id, *chunk)))
    return out


def digest_off(s: Session, list_id: int, keys: list[str]) -> list[str]:
    """Of `keys`, the members of list `list_id` not in digest mode."""
    out: list[str] = []
    mark = _mark(s)
    conn = s.connection()
    off = member_constants(s, False)[1]
    for i in range(0, len(keys), _PARAMS_PER_QUERY):
        chunk = keys[i:i + _PARAMS_PER_QUERY]
        sql = (f'SELECT "key" FROM {Member.__tablename__} WHERE list_id = {mark} '
               f'AND digest = {mark} AND "key" IN ({", ".join([mark] * len(chunk))})')
        out.extend(k for (k,) in conn.exec_driver_sql(sql, (list_id, off, *chunk)))
    return out
