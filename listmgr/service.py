"""Composition root for `listmgr serve`: builds the components, runs them, stops cleanly.

A component is any object with `async start()` and `async stop()`. Listeners record the
port they bound in `service.ports` (tests bind port 0 and read it back).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from typing import Any, Protocol

from listmgr.app import App
from listmgr.config import Config

log = logging.getLogger(__name__)


class Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


# Each module has `components(service) -> list[Component]`; listed in start order.
# Listeners come first so that workers start with the ports known.
COMPONENT_MODULES = (
    "listmgr.smtp.server",      # SMTP (and LMTP) ingress
    "listmgr.smtp.submission",  # submission for mail clients (587 STARTTLS, 465 TLS)
    "listmgr.pop3.server",      # POP3
    "listmgr.maps.socketmap",   # Postfix socketmap: which recipients exist
    "listmgr.pipeline",         # inbound tasks -> handlers
    "listmgr.delivery.worker",  # outbound queue -> remote MTAs
    "listmgr.posting.expiry",   # held posts expire
    "listmgr.commands.housekeeping",  # expired keys, stale rate counters
)


def build_components(service: "Service") -> list[Component]:
    """The parts of a running server, in start order (stopped in reverse)."""
    parts: list[Component] = []
    for name in COMPONENT_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not (exc.name and (name == exc.name or name.startswith(exc.name + "."))):
                raise
            continue  # a part not built yet
        parts.extend(module.components(service))
    return parts


class Service:
    def __init__(self, config: Config, app: App | None = None):
        self.config = config
        self.app = app or App.from_config(config)
        self.ports: dict[str, int] = {}
        self.components: list[Component] = []
        self._stop: asyncio.Event | None = None

    async def start(self) -> None:
        self.app.loop = asyncio.get_running_loop()
        self.components = build_components(self)
        done: list[Component] = []
        try:
            for c in self.components:
                await c.start()
                done.append(c)
        except BaseException:
            for c in reversed(done):
                await c.stop()
            raise

    async def stop(self) -> None:
        for c in reversed(self.components):
            try:
                await c.stop()
            except Exception:
                log.exception("error while stopping %s", type(c).__name__)
        self.components = []

    def request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def run(self, ready: Any = None) -> None:
        """Start, run until SIGINT/SIGTERM (or request_stop), then stop."""
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        await self.start()
        installed = []
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self._stop.set)
                    installed.append(sig)
                except (RuntimeError, ValueError):
                    pass  # not the main thread (tests): request_stop() instead
            if ready is not None:
                ready()
            await self._stop.wait()
            log.info("stopping")
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()
            self.app.store.dispose()
