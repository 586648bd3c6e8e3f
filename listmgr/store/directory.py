"""Which local names exist, for the SMTP router (smtp/routing.Directory): read-only Core
queries on one connection per lookup, no ORM session (RCPT is on every message's path).

`lookup(store, lists, users)` asks for every name an RCPT may need in one statement
(smtp/routing.questions lists them) and answers from that; a name it was not told about
is asked on its own, so the answers never depend on the list being complete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import Connection, bindparam, literal, select, union_all

from listmgr.store.db import Store
from listmgr.store.lists import sender_query
from listmgr.store.models import MailboxUser, MailingList

_LIST = select(MailingList.id).where(MailingList.name == bindparam("name")).limit(1)
_USER = select(MailboxUser.id).where(MailboxUser.name == bindparam("name")).limit(1)


def _names_query(lists: int, users: int):
    """Which of `lists` list names (:l0, :l1...) and `users` user names (:u0...) exist, in
    one statement."""
    parts = []
    if lists:
        parts.append(select(literal("l").label("kind"), MailingList.name.label("name")).where(
            MailingList.name.in_([bindparam(f"l{i}") for i in range(lists)])))
    if users:
        parts.append(select(literal("u").label("kind"), MailboxUser.name.label("name")).where(
            MailboxUser.name.in_([bindparam(f"u{i}") for i in range(users)])))
    return parts[0] if len(parts) == 1 else union_all(*parts)


# By the number of names asked (plain parameters: an "expanding" IN is rewritten on every
# execution); routing asks a handful of names at most.
_NAMES = {(n, m): _names_query(n, m) for n in range(9) for m in range(3) if n or m}


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
    on the connection that `connect()` gives (opened only then)."""

    def __init__(self, connect: Callable[[], Connection], lists: Iterable[str],
                 users: Iterable[str], found_lists: set[str], found_users: set[str]):
        self._connect = connect
        self.asked_lists = set(lists)
        self.asked_users = set(users)
        self.found_lists = found_lists
        self.found_users = found_users

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
           ) -> Iterator[Directory]:
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

        found_lists: set[str] = set()
        found_users: set[str] = set()
        if lists or users:
            query = _NAMES.get((len(lists), len(users)))
            if query is None:
                query = _names_query(len(lists), len(users))
            params = {f"l{i}": name for i, name in enumerate(lists)}
            params.update((f"u{i}", name) for i, name in enumerate(users))
            for kind, name in connect().execute(query, params):
                (found_lists if kind == "l" else found_users).add(name)
        yield Prefetched(connect, lists, users, found_lists, found_users)
