"""Which local names exist, for the SMTP router (smtp/routing.Directory): read-only Core
queries on one connection per lookup, no ORM session (RCPT is on every message's path)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Connection, bindparam, select

from listmgr.store.db import READ_ONLY, Store
from listmgr.store.lists import sender_query
from listmgr.store.models import MailboxUser, MailingList

_LIST = select(MailingList.id).where(MailingList.name == bindparam("name")).limit(1)
_USER = select(MailboxUser.id).where(MailboxUser.name == bindparam("name")).limit(1)


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


@contextlib.contextmanager
def lookup(store: Store) -> Iterator[Directory]:
    """A Directory reading in one read-only transaction (on SQLite: no write lock)."""
    engine = store.engine.execution_options(**{READ_ONLY: True})
    with engine.connect() as conn:
        yield Directory(conn)
