"""One SQLite writer at a time across processes, each woken the moment the lock is free.

SQLite lets one transaction write at a time, and a writer that finds the lock taken polls
for it with sleeps growing to 100 ms: two processes writing the same database (`listmgr
serve` with `[smtp] processes` above 1, or a CLI command beside a server) would each wait
far longer than the other's transaction lasts. Writers take this lock first instead: an
flock on `<database file>-writer.lock`, blocking in the kernel, which wakes the next
waiter as soon as the holder lets go. Inside a process the writer gate
(store.db.WriterGate) already lets one thread at a time through, so at most one thread of
a process waits here. The lock is released when the process dies, so a crashed writer
never blocks the others. A writer waits here as long as the other's transaction lasts (no
busy_timeout applies): a long transaction of a CLI command delays the server's writers
rather than failing them with "database is locked".

Re-entrant per thread, like the gate: nested transactions of one thread (two engines on
one file) take the flock once.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

_HELD = "listmgr_writer_lock"  # connection info: this connection's transaction holds it


class ProcessWriterLock:
    """An exclusive flock on one file, held for one thread of this process at a time.

    `hold(info)` takes it for the transaction whose connection info is `info` (blocking
    until the other process's or thread's transaction has ended); `let_go(info)` gives it
    back, from whatever thread ends the transaction. A thread that already holds it (a
    nested transaction) just counts one more."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._fd: int | None = None
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._depth = 0

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def hold(self, info: dict) -> None:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                info[_HELD] = True
                return
            while self._owner is not None:
                self._cond.wait()
            self._owner, self._depth = me, 1
            try:
                # Blocking in the kernel; this process's other writers wait on the
                # condition meanwhile, so holding it here delays nobody extra.
                fcntl.flock(self._open(), fcntl.LOCK_EX)
            except BaseException:
                self._owner, self._depth = None, 0
                self._cond.notify_all()
                raise
        info[_HELD] = True

    def let_go(self, info: dict) -> None:
        if not info.pop(_HELD, False):
            return
        with self._cond:
            self._depth -= 1
            if self._depth <= 0:
                self._depth = 0
                self._owner = None
                if self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                self._cond.notify_all()


def release_after_end(engine: Engine, lock: ProcessWriterLock) -> None:
    """Let `lock` go once a transaction of `engine` has really ended: after its COMMIT or
    ROLLBACK has run (SQLAlchemy's commit and rollback events come before them, when
    another process would still find SQLite's lock taken), and at the latest when the
    connection goes back to the pool or is invalidated."""
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            _let_go(lock, dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            _let_go(lock, dbapi_connection)

    setattr(dialect, "do_commit", do_commit)
    setattr(dialect, "do_rollback", do_rollback)
    for name in ("checkin", "invalidate", "soft_invalidate", "close"):
        event.listen(engine, name,
                     lambda _conn, record, *_: _let_go(lock, record))


def _let_go(lock: ProcessWriterLock, holder: Any) -> None:
    """`lock.let_go` with the info of a pooled connection or its pool record (a connection
    being set up, that never began a transaction, has none)."""
    try:
        info = holder.info
    except (AttributeError, NotImplementedError):
        return
    lock.let_go(info)


_LOCKS: dict[Path, ProcessWriterLock] = {}
_LOCKS_GUARD = threading.Lock()


def for_database(database: str | os.PathLike[str]) -> ProcessWriterLock:
    """The lock of a SQLite database file, one per file in this process (flock conflicts
    between two descriptors of one process too, so every engine on the file shares it)."""
    path = Path(os.path.abspath(database))
    with _LOCKS_GUARD:
        lock = _LOCKS.get(path)
        if lock is None:
            lock = _LOCKS[path] = ProcessWriterLock(path.with_name(path.name + "-writer.lock"))
        return lock
