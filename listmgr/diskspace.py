"""Disk space: how much is free, which errors mean "try again later", stale temporary files.

A full disk is a transient condition (Postfix's `queue_minfree`, `452 4.3.1 Insufficient
system storage`): mail is refused before 250 while it lasts, work already accepted waits and
is retried, and temporary files left by a failed or crashed write are removed.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

INSUFFICIENT_STORAGE = "452 4.3.1 Insufficient system storage"
# Errors that a later attempt may not meet: the disk or quota filled, memory ran short.
TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.ENOMEM, errno.EAGAIN, errno.EIO}


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes available to us on the filesystem holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def has_room(path: str | os.PathLike[str], size: int, reserve: int) -> bool:
    """Whether `size` more bytes fit on `path`'s filesystem and leave `reserve` free."""
    try:
        return free_bytes(path) - max(size, 0) >= reserve
    except OSError:
        return True  # cannot tell: the write itself will say


def is_transient(exc: BaseException | None) -> bool:
    """Whether `exc` (or an error it wraps, as the database layer does) is a full disk or
    a like condition that a later attempt may not meet."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
            return True
        text = str(exc).lower()
        if "database or disk is full" in text or "no space left on device" in text:
            return True
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "orig", None)
        seen += 1
    return False


def remove_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_tmp(data_dir: str | os.PathLike[str], *, older_than: float = 3600.0) -> int:
    """Remove temporary files no writer will finish: in spool/tmp those whose writing
    process is gone (the name ends `.<pid>.<random>`), and in spool/tmp and every
    mailboxes/*/tmp those older than `older_than` seconds. Returns how many were removed."""
    root = Path(data_dir)
    now = time.time()
    removed = 0
    dirs = [root / "spool" / "tmp", *sorted((root / "mailboxes").glob("*/tmp"))]
    for d in dirs:
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if not e.is_file(follow_symlinks=False):
                    continue
                stale = now - e.stat(follow_symlinks=False).st_mtime > older_than
                if not stale and d.name == "tmp" and d.parent.name == "spool":
                    parts = e.name.rsplit(".", 2)
                    stale = len(parts) == 3 and parts[1].isdigit() and \
                        not _pid_alive(int(parts[1]))
                if stale:
                    os.unlink(e.path)
                    removed += 1
            except OSError:
                continue
    if removed:
        log.warning("removed %d stale temporary file(s) under %s", removed, root)
    return removed
