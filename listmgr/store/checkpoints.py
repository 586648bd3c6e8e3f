"""SQLite WAL checkpoints taken after the writer gate, by bulk writers.

SQLite's automatic checkpoint runs inside the COMMIT that fills the WAL past 1,000 pages:
whichever transaction that is (an ingress group commit, whose clients wait for their 250s)
copies every page written since the last one into the database file and fsyncs it, with
the writer gate held. Writers that hold the gate turn it off (`wal_autocheckpoint=0`) and
checkpoint here instead: after their COMMIT, once the gate is handed on, at most every
`every` seconds; a PASSIVE checkpoint, which neither waits for nor blocks writers and
readers. Priority writers leave it to bulk writers unless none has checkpointed for
`priority_every` seconds (a process that only ingests still keeps its WAL bounded).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

EVERY = 1.0            # seconds between checkpoints, at most one per interval
PRIORITY_EVERY = 10.0  # seconds without one before a priority writer takes it


class Checkpoints:
    """See the module docstring; one per store (shared by its engines)."""

    def __init__(self, *, every: float = EVERY, priority_every: float = PRIORITY_EVERY):
        self.every = every
        self.priority_every = priority_every
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self.taken = 0  # checkpoints run (tests, logs)

    def after_commit(self, dbapi_conn: Any, priority: bool) -> None:
        """Called by a writer after its COMMIT, the gate released."""
        due = self.priority_every if priority else self.every
        if time.monotonic() - self._last < due or not self._lock.acquire(blocking=False):
            return
        try:
            self._last = time.monotonic()
            cur = dbapi_conn.cursor()
            try:
                cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
                cur.fetchall()
            finally:
                cur.close()
            self.taken += 1
        except Exception as exc:  # nothing is lost: the pages stay in the WAL until the next
            log.warning("WAL checkpoint failed: %r", exc)
        finally:
            self._lock.release()
