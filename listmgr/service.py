"""Composition root for `listmgr serve`: builds the components, runs them, stops cleanly.

A component is any object with `async start()` and `async stop()`. Listeners record the
port they bound in `service.ports` (tests bind port 0 and read it back).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any, Protocol

from listmgr import children, diskspace, logsetup
from listmgr.app import App
from listmgr.bounces import housekeeping as bounce_housekeeping
from listmgr.bounces.inbound import handle_bounce
from listmgr.commands import housekeeping as command_housekeeping
from listmgr.commands.worker import handle_command
from listmgr.config import Config
from listmgr.delivery import worker as delivery
from listmgr.forward import worker as forward
from listmgr import exporter
from listmgr.maps import socketmap
from listmgr.mailbox.delivery import deliver_local
from listmgr.pipeline import Handler, InboundWorker
from listmgr.pop3 import server as pop3
from listmgr.posting import expiry as held_expiry
from listmgr.posting import scrub
from listmgr.posting import fanout as post_fanout
from listmgr.posting.worker import handle_post
from listmgr.smtp import server as smtp
from listmgr.web import server as web
from listmgr.smtp import submission

log = logging.getLogger(__name__)


class Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


# Inbound workers: name -> {task kind (set by smtp/routing.py at RCPT) -> handler}. Each
# worker has its own claim loop and threads, so one kind of work never waits behind another
# (a post to a big list does not delay a command reply or a mailbox delivery).
INBOUND_WORKERS: dict[str, dict[str, Handler]] = {
    "commands": {
        "command": handle_command,     # majordomo@, LIST-request@ -> a reply
    },
    "posts": {
        "post": handle_post,           # LIST@ -> chain, then fan-out, hold or reject
    },
    "mailbox": {
        "local": deliver_local,        # a mailbox user -> its Maildir (+ auto-reply)
    },
    "forward": {
        "relay": forward.relay,        # a message's remote recipients, one queued copy
        "owner": forward.owner,        # LIST-owner@ -> the list's owners
        "approval": forward.approval,  # LIST-approval@ -> moderator, else owners
        "admins": forward.admins,      # majordomo-owner@, postmaster@ -> site_admins
    },
    "bounces": {
        "bounce": handle_bounce,       # owner-LIST@, owner-LIST+member=domain@ (VERP), abuse@
    },
}

# Every kind, for whoever works all kinds in one loop (tests, `listmgr queue`).
INBOUND_HANDLERS: dict[str, Handler] = {
    kind: fn for handlers in INBOUND_WORKERS.values() for kind, fn in handlers.items()}


def build_components(service: "Service") -> list[Component]:
    """The parts of a running server, in start order (stopped in reverse).

    Listeners come first so that workers start with the ports known.
    """
    return [
        *smtp.components(service),                  # SMTP (and LMTP) ingress
        *submission.components(service),            # mail clients: 587 STARTTLS, 465 TLS
        *pop3.components(service),                  # POP3
        *web.components(service),                   # web pages, one-click unsubscribe
        *socketmap.components(service),             # Postfix socketmap: recipients that exist
        *exporter.components(service),              # Prometheus /metrics
        *[InboundWorker(service.app, name, handlers)  # inbound tasks -> handlers
          for name, handlers in INBOUND_WORKERS.items()],
        *post_fanout.components(service),           # big posts: members queued in batches
        *delivery.components(service),              # outbound queue -> remote MTAs
        *held_expiry.components(service),           # held posts expire, digests by age
        *command_housekeeping.components(service),  # expired keys, stale rate counters
        *bounce_housekeeping.components(service),   # bounce notices, removals, stale scores
    ]


class Service:
    def __init__(self, config: Config, app: App | None = None):
        self.config = config
        self.app = app or App.from_config(config)
        self.ports: dict[str, int] = {}
        self.components: list[Component] = []
        self._stop: asyncio.Event | None = None

    async def start(self) -> None:
        self.app.loop = asyncio.get_running_loop()
        # Half-written files of a process that died (a full disk, a crash) go first.
        await asyncio.to_thread(diskspace.clean_tmp, self.config.data_dir)
        await asyncio.to_thread(scrub.run_pending, self.app)  # once, after its migration
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

    def _reopen_logs(self) -> None:
        """SIGHUP: reopen the log file here and in the SMTP acceptor processes."""
        logsetup.reopen()
        for c in self.components:
            forward = getattr(c, "forward_signal", None)
            if forward is not None:
                forward(signal.SIGHUP)

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
            for sig, action in ((signal.SIGINT, self._stop.set),
                                (signal.SIGTERM, self._stop.set),
                                (signal.SIGHUP, self._reopen_logs)):
                try:
                    loop.add_signal_handler(sig, action)
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
            log.info("listmgr stopped")


USAGE = ("usage: python -m listmgr.service --acceptor INDEX LISTEN_FD LINK_FD | --delivery "
         "INDEX COUNT SMTP_PORT (started by `listmgr serve`)")


def child_main(argv: list[str]) -> int:
    """A child process of `listmgr serve`, its configuration on stdin: an SMTP acceptor
    (`--acceptor INDEX LISTEN_FD LINK_FD`, smtp/acceptors.py) or a delivery process
    (`--delivery INDEX COUNT SMTP_PORT`, delivery/processes.py)."""
    from listmgr.delivery import processes
    from listmgr.smtp import acceptors
    runs = {"--acceptor": acceptors.serve, "--delivery": processes.run}
    if len(argv) != 4 or argv[0] not in runs or not all(v.isdigit() for v in argv[1:]):
        raise SystemExit(USAGE)
    a, b, c = (int(v) for v in argv[1:])
    config = children.read_config(sys.stdin.buffer)
    logsetup.configure(config)
    asyncio.run(runs[argv[0]](config, a, b, c, on_hup=logsetup.reopen))
    return 0


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1:]))
