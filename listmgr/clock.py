"""The one clock: every "now" in listmgr comes from here, so tests can move time.

`now()` is naive UTC, like every timestamp in the store (SQLite and PostgreSQL alike).
Tests swap the clock with `use(ManualClock())` and move it with `advance()`: queue
give-up and warnings, the relay window, key expiry and held-post expiry then happen at
once, without sleeping. Timers that only say how often to look (poll intervals, idle
timeouts on sockets) stay in real time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class ManualClock:
    """A clock that moves only when told (thread-safe: servers read it from threads)."""

    def __init__(self, start: dt.datetime | None = None):
        self._now = start if start is not None else SystemClock().now()
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0.0, **delta: float) -> dt.datetime:
        with self._lock:
            self._now += dt.timedelta(seconds=seconds, **delta)
            return self._now


_clock: Clock = SystemClock()


def now() -> dt.datetime:
    """Naive UTC now, from the current clock."""
    return _clock.now()


def current() -> Clock:
    return _clock


@contextlib.contextmanager
def use(clock: Clock) -> Iterator[Clock]:
    """Make `clock` the process's clock for the duration of the block."""
    global _clock
    previous, _clock = _clock, clock
    try:
        yield clock
    finally:
        _clock = previous
