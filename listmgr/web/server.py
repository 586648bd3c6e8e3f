"""The web listener: uvicorn serving the Starlette app in the same event loop as SMTP/POP3.

Listens on `[web] listen` (empty: no web server); the bound port is in service.ports["web"].
The service, not uvicorn, owns SIGINT/SIGTERM. uvicorn's access log is off: ours
(listmgr.web.security.Guard) leaves the secret part of /u/TOKEN out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import uvicorn

from listmgr.app import App
from listmgr.config import split_hostport

log = logging.getLogger(__name__)


def components(service) -> list:
    if not service.config.web.listen:
        return []
    return [WebServer(service.app, service.ports)]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # the service handles signals and calls stop()
        yield


class WebServer:
    def __init__(self, app: App, ports: dict[str, int]):
        self.app = app
        self.ports = ports
        self._server: _Server | None = None
        self._task: asyncio.Task | None = None
        self._sock: socket.socket | None = None

    async def start(self) -> None:
        from listmgr.web.app import build_app
        host, port = split_hostport(self.app.config.web.listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, port), family=family, backlog=128)
        self.ports["web"] = self._sock.getsockname()[1]
        config = uvicorn.Config(build_app(self.app), log_config=None, access_log=False,
                                lifespan="off", server_header=False, timeout_keep_alive=5,
                                timeout_graceful_shutdown=5, limit_concurrency=200,
                                h11_max_incomplete_event_size=64 * 1024)
        access = logging.getLogger("uvicorn.access")  # its lines carry /u/TOKEN
        access.handlers, access.propagate, access.disabled = [], False, True
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._sock.close()
                exc = self._task.exception()
                raise RuntimeError(f"web server did not start: {exc!r}")
            await asyncio.sleep(0.01)
        log.info("web listening %s:%d", host, self.ports["web"])

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 15)
        except asyncio.TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._sock is not None:
            self._sock.close()
        self._server = None
