"""A small asyncio TCP listener as a service component: binds `host:port`, records the port
bound in `ports[name]`, caps open connections (one more is closed at once), and closes every
connection on stop. Subclasses implement `handle(reader, writer)`; the writer is closed
after it returns or fails with a connection error."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging

from listmgr.config import split_hostport

log = logging.getLogger(__name__)


class StreamServer(abc.ABC):
    def __init__(self, name: str, listen: str, ports: dict[str, int], *, max_connections: int,
                 limit: int = 2 ** 16):
        self.name = name
        self.listen = listen
        self.ports = ports
        self.max_connections = max_connections
        self.limit = limit
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        host, port = split_hostport(self.listen)
        self.server = await asyncio.start_server(self._accept, host, port, limit=self.limit)
        self.ports[self.name] = self.server.sockets[0].getsockname()[1]
        log.info("%s listening on %s:%d", self.name, host, self.ports[self.name])

    async def stop(self) -> None:
        if self.server is None:
            return
        self.server.close()
        for w in list(self.writers):
            w.close()
        await self.server.wait_closed()
        self.server = None

    @abc.abstractmethod
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection."""

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.writers) >= self.max_connections:
            log.warning("%s: too many connections, closing one from %s", self.name,
                        writer.get_extra_info("peername"))
            writer.close()
            return
        self.writers.add(writer)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
