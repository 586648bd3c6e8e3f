"""SQLite WAL checkpoints in a thread of their own, outside every writer's transaction.

SQLite's automatic checkpoint runs inside the COMMIT that fills the WAL past 1,000 pages:
whichever transaction that is (an ingress group commit, whose clients wait for their 250s,
or the delivery worker's outcomes, which its connections wait for) copies every page
written since the last one into the database file and fsyncs it, with the writer gate
held. Writers that take the gate turn it off (`wal_autocheckpoint=0`) and tell this
checkpointer after each COMMIT instead; at most every `every` seconds it runs a PASSIVE
checkpoint on its own connection, which neither waits for nor blocks writers and readers.
Only bulk writers' commits start one, unless none has for `priority_every` seconds (a
process that only ingests still keeps its WAL bounded).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

EVERY = 1.0            # seconds between checkpoints, at most
PRIORITY_EVERY = 10.0  # seconds without one before a priority writer's commit starts one


class Checkpoints:
    """See the module docstring; one per store and database file (shared by its engines)."""

    def __init__(self, path: Path | None, *, every: float = EVERY,
                 priority_every: float = PRIORITY_EVERY):
        self.path = path
        self.every = every
        self.priority_every = priority_every
        self.taken = 0  # checkpoints run (tests, logs)
        self._last = time.monotonic()
        self._wake = threading.Event()
        self._stop = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def after_commit(self, priority: bool) -> None:
        """A writer's COMMIT is done (the gate handed on): start a checkpoint if one is due."""
        if self.path is None:
            return
        due = self.priority_every if priority else self.every
        if time.monotonic() - self._last < due:
            return
        self._last = time.monotonic()
        with self._lock:
            if self._stop:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wal-checkpoint",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            self._stop = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(30)

    def _run(self) -> None:
        assert self.path is not None
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                             check_same_thread=False)
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop:
                    return
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.taken += 1
                except sqlite3.Error as exc:  # nothing lost: the pages wait in the WAL
                    log.warning("WAL checkpoint failed: %r", exc)
        finally:
            db.close()
