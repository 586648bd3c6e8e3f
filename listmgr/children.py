"""What the server's child processes (SMTP acceptors, delivery processes) share with it:
the configuration handed over their stdin, their exit status in words, and the removal of
what a dead one left half-written in the spool."""

from __future__ import annotations

import os
import pickle
import signal
import struct
from pathlib import Path
from typing import Any

from listmgr.config import Config
from listmgr.diskspace import remove_quietly


def send_config(config: Config) -> bytes:
    """The configuration as the server writes it to a child's stdin."""
    payload = pickle.dumps(config)
    return struct.pack("!I", len(payload)) + payload


def read_config(stream: Any) -> Config:
    """The server's configuration, as it wrote it to our stdin."""
    head = stream.read(4)
    if len(head) != 4:
        raise SystemExit("no configuration on stdin (started by `listmgr serve` only)")
    (size,) = struct.unpack("!I", head)
    config = pickle.loads(stream.read(size))
    if not isinstance(config, Config):
        raise SystemExit("not a configuration on stdin (started by `listmgr serve` only)")
    return config


def status_text(code: int) -> str:
    """An exit status as the log says it: `status 1`, `SIGKILL`."""
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def remove_tmp_of(data_dir: Path, pid: int) -> int:
    """Remove the half-written spool files of process `pid` (spool.Spool.write names them
    `<name>.<pid>.<random>`); returns how many."""
    n = 0
    try:
        names = os.listdir(data_dir / "spool" / "tmp")
    except FileNotFoundError:
        return 0
    for name in names:
        parts = name.split(".")
        if len(parts) >= 3 and parts[-2] == str(pid):
            remove_quietly(data_dir / "spool" / "tmp" / name)
            n += 1
    return n
