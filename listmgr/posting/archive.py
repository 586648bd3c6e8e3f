"""The list archive: each distributed post appended to a monthly mbox under data_dir.

`archive/LIST/LIST.YYYYMM`, mboxrd format (LF line ends, `From ` lines quoted with `>`),
under an exclusive lock so concurrent posts never interleave. The `index` and `get`
commands serve these files.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
from pathlib import Path

from listmgr import clock
from listmgr.durable import write_all

_FROM_LINE = re.compile(rb"^(>*From )", re.M)


def archive_dir(config, list_name: str) -> Path:
    return Path(config.data_dir) / "archive" / list_name


def archive_path(config, list_name: str, when: dt.datetime) -> Path:
    return archive_dir(config, list_name) / f"{list_name}.{when:%Y%m}"


def mbox_entry(data: bytes, *, envelope_from: str, when: dt.datetime) -> bytes:
    text = data.replace(b"\r\n", b"\n")
    text = _FROM_LINE.sub(rb">\1", text)
    if not text.endswith(b"\n"):
        text += b"\n"
    stamp = when.strftime("%a %b %d %H:%M:%S %Y")
    return f"From {envelope_from or 'MAILER-DAEMON'} {stamp}\n".encode() + text + b"\n"


def append(config, list_name: str, data: bytes, *, envelope_from: str,
           when: dt.datetime | None = None) -> Path:
    """Append one message to this month's mbox of the list; returns the file's path."""
    when = when or clock.now().replace(tzinfo=dt.timezone.utc)
    path = archive_path(config, list_name, when)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = mbox_entry(data, envelope_from=envelope_from, when=when)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        write_all(fd, entry)
    finally:
        os.close(fd)
    return path
