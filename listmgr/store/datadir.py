"""One data_dir per site: every `listmgr serve` of a database must see the same data_dir.

Message bodies (the spool), list archives and mailboxes live under `data_dir`, so several
hosts serving one PostgreSQL database must all mount the same data_dir (NFS or another
shared filesystem): a host with a data_dir of its own would miss the bodies the others
received. The data_dir carries a marker file with a random id, and the database keeps the
id of the data_dir it was first served with; a process whose data_dir does not carry that
id refuses to start (ForeignDataDir). `adopt` makes this data_dir the site's (a new id in
both places): after moving the data to a new volume, say.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from listmgr.durable import fsync_dir, write_all
from listmgr.store.db import Store
from listmgr.store.models import SiteSetting

MARKER = "data_dir.id"
KEY = "data_dir_id"


class ForeignDataDir(Exception):
    """This data_dir is not the one the database is served with."""


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _write(data_dir: Path, value: str, *, replace: bool) -> str:
    """Write the marker (durably); without `replace`, keep one another process wrote first
    and return its id."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / MARKER
    tmp = data_dir / f".{MARKER}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, (value + "\n").encode())
    finally:
        os.close(fd)
    if replace:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)  # fails if another process made one meanwhile
        except FileExistsError:
            value = _read(path)
        finally:
            os.unlink(tmp)
    fsync_dir(data_dir)
    return value


def marker_id(data_dir: str | os.PathLike[str]) -> str:
    return _read(Path(data_dir) / MARKER)


def check(store: Store, data_dir: str | os.PathLike[str], *, adopt: bool = False) -> str:
    """Make sure `data_dir` is the database's; record it on the first start. Returns the id.

    Raises ForeignDataDir when the database was served with another data_dir (or this one
    has no marker), unless `adopt`."""
    root = Path(data_dir)
    if adopt:
        value = _write(root, secrets.token_hex(16), replace=True)
        with store.session() as s:
            row = s.get(SiteSetting, KEY)
            if row is None:
                s.add(SiteSetting(key=KEY, value=value))
            else:
                row.value = value
        return value
    with store.session() as s:
        row = s.get(SiteSetting, KEY)
        recorded = row.value if row is not None else ""
    mine = marker_id(root)
    if not recorded:
        # First start on this database: this data_dir becomes the site's.
        if not mine:
            mine = _write(root, secrets.token_hex(16), replace=False)
        try:
            with store.session() as s:
                s.add(SiteSetting(key=KEY, value=mine))
        except IntegrityError:  # another host recorded its data_dir first: check it
            return check(store, data_dir)
        return mine
    if mine != recorded:
        what = f"carries id {mine}" if mine else f"has no {MARKER}"
        raise ForeignDataDir(
            f"data_dir {root.resolve()} is not this database's (the database's data_dir id "
            f"is {recorded}; this one {what}): every host serving one database must mount "
            f"the same data_dir (e.g. over NFS); if this is the site's data_dir now (moved), "
            f"start once with `listmgr serve --adopt-data-dir`")
    return mine
