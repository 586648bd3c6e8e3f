"""The site secret: 32 random bytes in `data_dir/site.key` (mode 0600), made on first use.

Every process of a site must see the same secret (it signs one-click unsubscribe links and
web sessions), so with several hosts the data directory's key file is copied to each.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from listmgr.durable import fsync_dir, write_all

FILENAME = "site.key"
SIZE = 32


def load(data_dir: str | os.PathLike[str]) -> bytes:
    """The site secret, created (atomically, 0600) when the data directory has none yet."""
    path = Path(data_dir) / FILENAME
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return _read(path)
    try:
        write_all(fd, secrets.token_bytes(SIZE))
    finally:
        os.close(fd)
    fsync_dir(path.parent)
    return _read(path)


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) < SIZE:
        raise ValueError(f"{path}: site secret is shorter than {SIZE} bytes; remove it to "
                         "make a new one (old unsubscribe links stop working)")
    return data[:SIZE]
