"""What every component needs: the configuration, the store, the spool, and wake-ups."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from listmgr.auth.dns import TXTLookup
from listmgr.config import Config, database_url
from listmgr.mail.dkim import Signer
from listmgr.spool import Spool
from listmgr.store.db import Store
from listmgr.store.leases import Heartbeat

log = logging.getLogger(__name__)


@dataclass
class App:
    config: Config
    store: Store
    spool: Spool
    # Wake-ups: set by a producer after it commits work ("inbound", "outbound", ...), so a
    # worker in this process need not wait for its next poll. Other processes poll.
    events: dict[str, asyncio.Event] = field(default_factory=dict)
    # Waiters with their own event per name (several workers waking on one notification).
    subscribers: dict[str, list[asyncio.Event]] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop | None = None
    _txt: TXTLookup | None = field(default=None, repr=False)
    signer: Signer | None = None  # the site's DKIM key ([dkim]); None: nothing is signed
    # Renews the leases of every claim this process's workers hold (store.leases).
    heartbeat: Heartbeat = field(default_factory=Heartbeat)

    @classmethod
    def from_config(cls, config: Config, create_dirs: bool = True) -> "App":
        """With `create_dirs` false nothing is created on disk yet (`app.spool.create()`
        does it), so a command that fails early leaves no empty data directory behind."""
        signer = Signer.from_config(config)
        spool = Spool(config.data_dir, signer=signer.sign if signer else None,
                      create=create_dirs)
        return cls(config=config, store=Store(database_url(config)), spool=spool,
                   signer=signer)

    @property
    def txt_lookup(self) -> TXTLookup:
        """TXT lookups (DMARC, SPF, DKIM keys) through `[delivery] nameservers`, cached."""
        if self._txt is None:
            self._txt = TXTLookup.from_config(self.config)
        return self._txt

    def event(self, name: str) -> asyncio.Event:
        ev = self.events.get(name)
        if ev is None:
            ev = self.events[name] = asyncio.Event()
        return ev

    def subscribe(self, name: str, ev: asyncio.Event | None = None) -> asyncio.Event:
        """An event of the caller's own (or `ev`, to share one event between several names),
        set by every notify(name); the caller clears it."""
        ev = ev or asyncio.Event()
        self.subscribers.setdefault(name, []).append(ev)
        return ev

    def unsubscribe(self, name: str, ev: asyncio.Event) -> None:
        waiters = self.subscribers.get(name, [])
        if ev in waiters:
            waiters.remove(ev)

    def _set(self, name: str) -> None:
        self.event(name).set()
        for ev in self.subscribers.get(name, ()):
            ev.set()

    def notify(self, name: str) -> None:
        """Wake the workers waiting on `name`; safe to call from any thread."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._set(name)
        else:
            loop.call_soon_threadsafe(self._set, name)

    async def wait(self, name: str, timeout: float) -> None:
        """Wait until notified or `timeout` seconds pass."""
        ev = self.event(name)
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        ev.clear()
