"""The spool: message bytes on disk, durably written before anyone answers 250.

Files are written to `spool/tmp`, fsynced, renamed into place, and the directory fsynced
(the Maildir way), so a crash leaves either the whole file or nothing.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from listmgr.diskspace import remove_quietly
from listmgr.durable import fsync_dir, write_all


def new_queue_id() -> str:
    """Sortable, unique: time in hex plus randomness (like Postfix long queue ids)."""
    return f"{int(time.time() * 1000):011X}{secrets.token_hex(5).upper()}"


class Spool:
    def __init__(self, data_dir: str | os.PathLike[str],
                 signer: Callable[[bytes, str], bytes] | None = None, create: bool = True):
        self.root = Path(data_dir)
        # What enqueue() passes every outgoing message (and its envelope sender) through
        # before storing it: the site's DKIM signer (listmgr.mail.dkim); None: as given.
        self.signer = signer
        self._made: set[str] = set()  # areas whose directory write() has made (or found)
        if create:
            self.create()

    def create(self) -> None:
        """Make the spool directories (and the data directory) if they are missing."""
        for sub in ("spool/tmp", "spool/in", "spool/out", "spool/held"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def write(self, area: str, data: bytes, name: str | None = None, *,
              sync_dir: bool = True) -> str:
        """Store `data` durably under spool/<area>; returns the path relative to data_dir.

        With sync_dir=False the file's bytes are fsynced but its name in spool/<area> is
        not yet: the caller calls sync_area(area) before relying on it (one directory
        fsync for a whole group of files)."""
        name = name or new_queue_id()
        root = str(self.root)
        tmp = f"{root}/spool/tmp/{name}.{os.getpid()}.{secrets.token_hex(4)}"
        final_dir = f"{root}/spool/{area}"
        if area not in self._made:
            Path(final_dir).mkdir(parents=True, exist_ok=True)
            self._made.add(area)
        final = f"{final_dir}/{name}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
            try:
                os.replace(tmp, final)
            except FileNotFoundError:  # the area's directory was removed meanwhile
                Path(final_dir).mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
        except BaseException:
            remove_quietly(tmp)  # a full disk must not stay full of half-written files
            raise
        if sync_dir:
            fsync_dir(final_dir)
        return f"spool/{area}/{name}"

    def sync_area(self, area: str) -> None:
        """Make every rename into spool/<area> so far survive a crash."""
        fsync_dir(self.root / "spool" / area)

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> bytes:
        # os calls rather than open(): no isatty probe or seek, fewer system calls per
        # message (each lets another thread take the GIL)
        fd = os.open(os.path.join(self.root, rel), os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            parts: list[bytes] = []
            while True:
                chunk = os.read(fd, max(size, 65536))
                if not chunk:
                    return b"".join(parts)
                parts.append(chunk)
        finally:
            os.close(fd)

    def remove(self, rel: str) -> None:
        try:
            os.unlink(os.path.join(self.root, rel))
        except FileNotFoundError:
            pass
