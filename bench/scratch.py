"""A scratch database for one benchmark run: a SQLite file in a folder, or a fresh
PostgreSQL schema (LISTMGR_TEST_PG_URL, as the tests use) dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

PG = os.environ.get("LISTMGR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def scratch_database(kind: str, directory: str) -> Iterator[str]:
    """Yield a database URL for `kind` ("sqlite" or "postgres"); cleaned up on exit."""
    if kind == "sqlite":
        yield f"sqlite:///{directory}/bench.sqlite3"
        return
    if kind != "postgres":
        raise SystemExit(f"unknown database {kind!r}: use sqlite or postgres")
    from sqlalchemy import create_engine, text
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG else "?"
    try:
        yield f"{PG}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
