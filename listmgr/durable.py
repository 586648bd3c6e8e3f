"""Durable file writes: every byte written and fsynced, renames made durable by a
directory fsync. Shared by the spool, the Maildir mailboxes and the list archives."""

from __future__ import annotations

import os
from pathlib import Path


def write_all(fd: int, *parts: bytes) -> None:
    """Write every byte of `parts`, one after another, to `fd` (os.writev: a header and a
    body without joining them into one more copy; it may write less than asked), then
    fsync."""
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        n = os.writev(fd, views)
        while n and views:
            if n >= len(views[0]):
                n -= len(views.pop(0))
            else:
                views[0] = views[0][n:]
                n = 0
    os.fsync(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or create in directory `path` survive a crash."""
    fd = os.open(Path(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
