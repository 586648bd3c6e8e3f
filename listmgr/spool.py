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
        if create:
            self.create()

    def create(self) -> None:
        """Make the spool directories (and the data directory) if they are missing."""
        for sub in ("spool/tmp", "spool/in", "spool/out", "spool/held"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def write(self, area: str, data: bytes, name: str | None = None) -> str:
        """Store `data` durably under spool/<area>; returns the path relative to data_dir."""
        name = name or new_queue_id()
        tmp = self.root / "spool" / "tmp" / f"{name}.{os.getpid()}.{secrets.token_hex(4)}"
        final_dir = self.root / "spool" / area
        final_dir.mkdir(parents=True, exist_ok=True)
        final = final_dir / name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            try:
                write_all(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            remove_quietly(tmp)  # a full disk must not stay full of half-written files
            raise
        fsync_dir(final_dir)
        return str(final.relative_to(self.root))

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def remove(self, rel: str) -> None:
        try:
            (self.root / rel).unlink()
        except FileNotFoundError:
            pass
