"""The writer gate: one SQLite writer at a time in this process, interactive writers first.

SQLite lets one transaction write at a time; a writer that finds the lock taken polls for
it with sleeps growing to 100 ms, so under contention a short transaction (an ingress group
commit, whose clients wait for their 250s) can wait far longer than the transaction holding
the lock. Writers of this process queue here instead, each handed the gate the moment the
previous one's transaction has ended (its COMMIT done), so none of them polls.

Two classes of writer queue apart. A *priority* writer (what a client is waiting for: the
ingress group commit) goes before the *bulk* writers already waiting (fan-out batches,
delivery claims and outcomes), so it waits at most for the one transaction in progress.
Bulk is not starved: after `bulk_every` priority writers in a row have gone while bulk
writers waited, the oldest bulk writer goes next. Within a class, first come first served.
Other processes on the same file still meet SQLite's own lock. Re-entrant per thread.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator

BULK_EVERY = 4  # priority writers in a row, at most, while a bulk writer waits


class _Waiter:
    __slots__ = ("ident", "cond", "granted")

    def __init__(self, ident: int, lock: threading.Lock):
        self.ident = ident
        self.cond = threading.Condition(lock)
        self.granted = False


class WriterGate:
    """See the module docstring."""

    def __init__(self, *, bulk_every: int = BULK_EVERY) -> None:
        self.bulk_every = max(1, bulk_every)
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._priority: collections.deque[_Waiter] = collections.deque()
        self._bulk: collections.deque[_Waiter] = collections.deque()
        self._run = 0  # priority writers let go in a row while bulk writers waited

    def acquire(self, priority: bool = False) -> None:
        me = threading.get_ident()
        with self._lock:
            if self._owner == me:
                self._depth += 1
                return
            if self._owner is None:  # free, hence nobody waiting (it is handed over)
                self._owner, self._depth = me, 1
                return
            w = _Waiter(me, self._lock)
            (self._priority if priority else self._bulk).append(w)
            while not w.granted:
                w.cond.wait()

    def release(self) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth:
                return
            w = self._next()
            if w is None:
                self._owner = None
                return
            self._owner, self._depth = w.ident, 1
            w.granted = True
            w.cond.notify()

    def _next(self) -> _Waiter | None:
        """Who goes next (removed from its queue); called with the lock held."""
        if self._priority and (not self._bulk or self._run < self.bulk_every):
            if self._bulk:
                self._run += 1
            return self._priority.popleft()
        self._run = 0
        return self._bulk.popleft() if self._bulk else None

    @property
    def waiting(self) -> tuple[int, int]:
        """(priority, bulk) writers waiting now."""
        with self._lock:
            return len(self._priority), len(self._bulk)

    @contextlib.contextmanager
    def held(self, priority: bool = False) -> Iterator[None]:
        self.acquire(priority)
        try:
            yield
        finally:
            self.release()
