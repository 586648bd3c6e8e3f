"""Claims kept alive by a heartbeat, so a dead process's work is taken over within seconds.

Every claim (an inbound task, a fan-out, an outbound recipient) is leased for a short time
(`[store] lease`, 30 s by default). While a process runs, one heartbeat renews every claim
its workers still hold: each claiming worker registers its owner name here while it runs,
and every `lease / 3` seconds the heartbeat moves the lease end of all their rows with ONE
UPDATE per kind (not per row). A process that dies (kill -9, a lost host) stops renewing,
and any live process, on any host, claims its rows once their lease has run out.

Results are written only by the lease's owner (store.inbound.finish, outbound_claims.mark,
posting.fanout's step check `lease_owner`), so a process that lost its lease cannot
overwrite the result of the one that took the work over. The heartbeat itself never waits
for a row lock (PostgreSQL: SKIP LOCKED): a row locked by the worker that is finishing it
needs no renewal, and no lock order can deadlock against the workers' own writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import Table, select, text, update
from sqlalchemy.orm import Session

from listmgr.store.models import LEASED, Fanout, InboundTask, OutboundRecipient, utcnow

log = logging.getLogger(__name__)

INBOUND, FANOUT, OUTBOUND = "inbound", "fanout", "outbound"

# ix_outbound_recipients_leased holds only claimed rows; its predicate (LEASED) is repeated
# literally so that SQLite and generic PostgreSQL plans use it.


def _target(kind: str) -> tuple[Table, list[Any]]:
    if kind == INBOUND:
        t = InboundTask.__table__
        return t, [t.c.state == "new", t.c.lease_until.is_not(None)]  # type: ignore[return-value]
    if kind == FANOUT:
        return Fanout.__table__, []  # type: ignore[return-value]
    if kind == OUTBOUND:
        t = OutboundRecipient.__table__
        return t, [text(LEASED), t.c.state == "queued"]  # type: ignore[return-value]
    raise ValueError(f"unknown claim kind {kind!r}")


def renew(s: Session, kind: str, owners: Collection[str], lease: float) -> int:
    """Move the lease end of every row of `kind` still held by `owners` to now + `lease`
    (an outbound recipient's due time with it: it comes back by itself when the lease runs
    out). One statement; rows locked by someone else are skipped. Returns how many."""
    if not owners:
        return 0
    t, conds = _target(kind)
    until = utcnow() + dt.timedelta(seconds=lease)
    values: dict[str, Any] = {"lease_until": until}
    if kind == OUTBOUND:
        values["next_attempt_at"] = until
    mine = [t.c.lease_owner.in_(sorted(owners)), *conds]
    if s.get_bind().dialect.name == "postgresql":
        held = select(t.c.id).where(*mine).with_for_update(skip_locked=True)
        stmt = update(t).where(t.c.id.in_(held.scalar_subquery()))
    else:
        stmt = update(t).where(*mine)  # SQLite: one writer at a time, no row locks
    return int(getattr(s.execute(stmt.values(values)), "rowcount", 0) or 0)


class Heartbeat:
    """One per process (App.heartbeat): renews the claims of the owners registered with
    `hold` until they `drop`; runs while at least one owner is registered."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, float]] = {}  # kind -> {owner: lease}
        self._busy: dict[tuple[str, str], Callable[[], bool]] = {}
        self._store: Any = None
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self.beats = 0

    def hold(self, store: Any, kind: str, owner: str, lease: float,
             busy: Callable[[], bool] | None = None) -> None:
        """Keep `owner`'s claims of `kind` alive from now on (call from the event loop).

        `busy`, when given, says whether the worker is working on claims at all: while it is
        idle its rows are not renewed, so a claim it lost track of (an error path that could
        not give it back) runs out and is taken again instead of being held forever."""
        _target(kind)
        self._store = store
        self._held.setdefault(kind, {})[owner] = lease
        if busy is not None:
            self._busy[(kind, owner)] = busy
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="lease-heartbeat")

    async def drop(self, kind: str, owner: str) -> None:
        """Stop renewing `owner`'s claims; the last owner stops the heartbeat."""
        self._held.get(kind, {}).pop(owner, None)
        self._busy.pop((kind, owner), None)
        if any(self._held.values()) or self._task is None:
            return
        task, self._task = self._task, None
        assert self._wake is not None
        self._wake.set()
        await task

    def interval(self) -> float:
        leases = [v for owners in self._held.values() for v in owners.values()]
        return max(0.2, min(leases, default=30.0) / 3)

    def beat(self) -> int:
        """Renew every held claim now (in a thread): one UPDATE per kind and lease."""
        work: dict[tuple[str, float], list[str]] = {}
        for kind, owners in list(self._held.items()):
            for owner, lease in list(owners.items()):
                busy = self._busy.get((kind, owner))
                if busy is None or busy():
                    work.setdefault((kind, lease), []).append(owner)
        n = 0
        if work:  # idle: no transaction at all (on SQLite it would take the write lock)
            with self._store.session() as s:
                for (kind, lease), names in work.items():
                    n += renew(s, kind, names, lease)
        self.beats += 1
        return n

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while any(self._held.values()):
            try:
                await asyncio.wait_for(wake.wait(), self.interval())
            except asyncio.TimeoutError:
                pass
            if wake.is_set():
                return
            try:
                await asyncio.to_thread(self.beat)
            except Exception:
                log.exception("lease heartbeat failed; retried at the next beat")
