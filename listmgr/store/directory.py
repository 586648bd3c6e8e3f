"""Which local names exist, for the SMTP router (smtp/routing.Directory): read-only Core
queries on one connection per lookup, no ORM session (RCPT is on every message's path).

`lookup(store, lists, users)` asks for every name an RCPT may need in one statement
(smtp/routing.questions lists them) and answers from that; a name it was not told about
is asked on its own, so the answers never depend on the list being complete. The same
statement tells which of the users have an auto-reply on (their mail goes through the
mailbox worker, which sends it).

On SQLite, `InlineNames` runs that statement on a plain sqlite3 connection of the calling
thread: a WAL read of a few indexed rows takes tens of microseconds, less than handing the
lookup to a thread pool and back, so the SMTP event loop asks it itself. On PostgreSQL,
`AsyncNames` runs it on the event loop too, over an asynchronous psycopg connection (a
network round trip that the loop waits for without blocking, instead of a thread hop).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sqlalchemy import Connection, bindparam, case, literal, make_url, select, union_all
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg

from listmgr.store.db import Store
from listmgr.store.lists import sender_query
from listmgr.store.models import MailboxUser, MailingList

_LIST = select(MailingList.id).where(MailingList.name == bindparam("name")).limit(1)
_USER = select(MailboxUser.id).where(MailboxUser.name == bindparam("name")).limit(1)


def _names_query(lists: int, users: int):
    """Which of `lists` list names (:l0, :l1...) and `users` user names (:u0...) exist, in
    one statement: rows (kind, name), kind "l" for a list, "u" for a user, "a" for a user
    whose auto-reply is on."""
    parts = []
    if lists:
        parts.append(select(literal("l").label("kind"), MailingList.name.label("name")).where(
            MailingList.name.in_([bindparam(f"l{i}") for i in range(lists)])))
    if users:
        kind = case((MailboxUser.autoreply_enabled, literal("a")), else_=literal("u"))
        parts.append(select(kind.label("kind"), MailboxUser.name.label("name")).where(
            MailboxUser.name.in_([bindparam(f"u{i}") for i in range(users)])))
    return parts[0] if len(parts) == 1 else union_all(*parts)


# By the number of names asked (plain parameters: an "expanding" IN is rewritten on every
# execution); routing asks a handful of names at most.
_NAMES = {(n, m): _names_query(n, m) for n in range(9) for m in range(3) if n or m}


def _query(lists: int, users: int):
    """The names statement for that many names: built once for the usual counts."""
    query = _NAMES.get((lists, users))
    return query if query is not None else _names_query(lists, users)


class Directory:
    """has_list / has_user over an open read-only connection."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def has_list(self, name: str) -> bool:
        return self.conn.execute(_LIST, {"name": name}).first() is not None

    def has_user(self, name: str) -> bool:
        return self.conn.execute(_USER, {"name": name.lower()}).first() is not None

    def list_of_sender(self, local: str) -> str | None:
        return self.conn.execute(sender_query(local)).scalar()


class Prefetched(Directory):
    """A Directory that read the answers for some names at once; other names are asked
    on the connection that `connect()` gives (opened only then). `autoreplying`: the users
    found whose auto-reply is on."""

    def __init__(self, connect: Callable[[], Connection], lists: Iterable[str],
                 users: Iterable[str], found_lists: set[str], found_users: set[str],
                 autoreplying: set[str] | None = None):
        self._connect = connect
        self.asked_lists = set(lists)
        self.asked_users = set(users)
        self.found_lists = found_lists
        self.found_users = found_users
        self.autoreplying = autoreplying or set()

    @property
    def conn(self) -> Connection:  # type: ignore[override]
        return self._connect()

    def has_list(self, name: str) -> bool:
        if name in self.asked_lists:
            return name in self.found_lists
        return super().has_list(name)

    def has_user(self, name: str) -> bool:
        if name.lower() in self.asked_users:
            return name.lower() in self.found_users
        return super().has_user(name)


@contextlib.contextmanager
def lookup(store: Store, lists: Iterable[str] = (), users: Iterable[str] = ()
           ) -> Iterator[Prefetched]:
    """A Directory reading without a write lock (on SQLite each statement on its own: the
    answers need no common snapshot), with the answers for `lists` and `users` read in one
    statement before it is handed out (no connection at all when both are empty and
    nothing else is asked)."""
    lists = list(dict.fromkeys(lists))
    users = list(dict.fromkeys(u.lower() for u in users))
    with contextlib.ExitStack() as stack:
        opened: list[Connection] = []

        def connect() -> Connection:
            if not opened:
                opened.append(stack.enter_context(store.lookup_engine.connect()))
            return opened[0]

        rows: Iterable[tuple[str, str]] = ()
        if lists or users:
            rows = connect().execute(_query(len(lists), len(users)), _params(lists, users))
        yield _answers(connect, lists, users, rows)


def _params(lists: list[str], users: list[str]) -> dict[str, str]:
    params = {f"l{i}": name for i, name in enumerate(lists)}
    params.update((f"u{i}", name) for i, name in enumerate(users))
    return params


def _answers(connect: Callable[[], Connection], lists: list[str], users: list[str],
             rows: Iterable[tuple[str, str]]) -> Prefetched:
    found_lists: set[str] = set()
    found_users: set[str] = set()
    autoreplying: set[str] = set()
    for kind, name in rows:
        if kind == "l":
            found_lists.add(name)
        else:
            found_users.add(name)
            if kind == "a":
                autoreplying.add(name)
    return Prefetched(connect, lists, users, found_lists, found_users, autoreplying)


class NotRead(Exception):
    """An inline lookup was asked about a name it did not read: ask through `lookup`."""


def _not_read() -> Connection:
    raise NotRead()


class InlineNames:
    """`lookup`'s one statement for SQLite, on a plain sqlite3 connection of the calling
    thread's own (opened on first use, read-only, waiting at most `busy_timeout` seconds
    for a lock: a WAL reader waits only while the WAL is being reset). `read` raises
    sqlite3.Error when the database cannot answer now, and the Prefetched it returns
    raises NotRead for a name it was not given; either way the caller asks through
    `lookup` instead."""

    def __init__(self, path: str, busy_timeout: float = 0.05):
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._sql: dict[tuple[int, int], tuple[str, list[str], dict[str, Any]]] = {}

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread off only so that close() may close it from any thread
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    def _statement(self, lists: int, users: int) -> tuple[str, list[str], dict[str, Any]]:
        sql = self._sql.get((lists, users))
        if sql is None:
            compiled = _query(lists, users).compile(dialect=sqlite.dialect())
            sql = self._sql[(lists, users)] = (compiled.string, list(compiled.positiontup or []),
                                               dict(compiled.params))
        return sql

    def read(self, lists: Iterable[str], users: Iterable[str]) -> Prefetched:
        lists = list(dict.fromkeys(lists))
        users = list(dict.fromkeys(u.lower() for u in users))
        rows: list[tuple[str, str]] = []
        if lists or users:
            text, order, constants = self._statement(len(lists), len(users))
            values = {**constants, **_params(lists, users)}
            rows = self._connection().execute(text, [values[k] for k in order]).fetchall()
        return _answers(_not_read, lists, users, rows)

    def close(self) -> None:
        """Close every thread's connection (the threads are done with them)."""
        with self._lock:
            opened, self._opened = self._opened, []
        self._local = threading.local()
        for conn in opened:
            conn.close()


class AsyncNames:
    """`lookup`'s one statement for PostgreSQL, on the event loop itself: one psycopg
    AsyncConnection (autocommit, read-only), opened on first use, one statement at a time,
    each given at most `timeout` seconds. Any error (no connection, a timeout, a server
    gone) drops the connection, which is opened again at the next read but not before
    `retry` seconds have passed, and raises: the caller asks through `lookup` instead, as
    it does when the Prefetched raises NotRead."""

    def __init__(self, conninfo: str, timeout: float = 1.0, retry: float = 5.0):
        self.conninfo = conninfo
        self.timeout = timeout
        self.retry = retry
        self._conn: Any = None
        self._lock = asyncio.Lock()  # one statement at a time on the one connection
        self._failed_at = float("-inf")
        self._sql: dict[tuple[int, int], tuple[str, dict[str, Any]]] = {}

    @classmethod
    def for_url(cls, url: str, **kwargs: Any) -> "AsyncNames":
        u = make_url(url).set(drivername="postgresql")
        return cls(u.render_as_string(hide_password=False), **kwargs)

    def _statement(self, lists: int, users: int) -> tuple[str, dict[str, Any]]:
        sql = self._sql.get((lists, users))
        if sql is None:
            compiled = _query(lists, users).compile(dialect=pg_psycopg.dialect())
            sql = self._sql[(lists, users)] = (compiled.string, dict(compiled.params))
        return sql

    async def read(self, lists: Iterable[str], users: Iterable[str]) -> Prefetched:
        lists = list(dict.fromkeys(lists))
        users = list(dict.fromkeys(u.lower() for u in users))
        rows: list[tuple[str, str]] = []
        if lists or users:
            text, constants = self._statement(len(lists), len(users))
            async with self._lock:
                try:
                    rows = await asyncio.wait_for(
                        self._execute(text, {**constants, **_params(lists, users)}),
                        self.timeout)
                except BaseException:
                    await self._drop()
                    raise
        return _answers(_not_read, lists, users, rows)

    async def _execute(self, text: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        if self._conn is None:
            if time.monotonic() - self._failed_at < self.retry:
                raise ConnectionError("the inline PostgreSQL lookup is resting after an error")
            import psycopg
            self._conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
            await self._conn.execute("SET default_transaction_read_only = on")
        cur = await self._conn.execute(text, params)
        return await cur.fetchall()

    async def _drop(self) -> None:
        self._failed_at = time.monotonic()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
