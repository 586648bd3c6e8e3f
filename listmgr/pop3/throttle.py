"""Slowing down password guessing: a delay per failed login that doubles per recent failure
from the same client IP (pure: the clock is passed in)."""

from __future__ import annotations


class FailureTracker:
    """Failures per IP within `window` seconds; `delay(ip, now)` is what the next failure
    costs: base, 2*base, 4*base ... up to `cap`."""

    def __init__(self, base: float, *, cap: float = 30.0, window: float = 900.0,
                 max_ips: int = 10000):
        self.base = base
        self.cap = max(cap, base)
        self.window = window
        self.max_ips = max_ips
        self._failures: dict[str, list[float]] = {}

    def _recent(self, ip: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(ip, ()) if now - t < self.window]
        if times:
            self._failures[ip] = times
        else:
            self._failures.pop(ip, None)
        return times

    def count(self, ip: str, now: float) -> int:
        return len(self._recent(ip, now))

    def delay(self, ip: str, now: float) -> float:
        n = self.count(ip, now)
        return min(self.cap, self.base * (2 ** min(n, 16)))

    def failed(self, ip: str, now: float) -> None:
        if len(self._failures) >= self.max_ips and ip not in self._failures:
            self.prune(now)
            if len(self._failures) >= self.max_ips:  # bounded memory under a flood
                self._failures.pop(next(iter(self._failures)))
        self._recent(ip, now)
        self._failures.setdefault(ip, []).append(now)
        del self._failures[ip][:-32]

    def succeeded(self, ip: str) -> None:
        self._failures.pop(ip, None)

    def prune(self, now: float) -> None:
        for ip in list(self._failures):
            self._recent(ip, now)
