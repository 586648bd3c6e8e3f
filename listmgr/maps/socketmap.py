"""Postfix's socketmap protocol on `[maps] listen`: "is this address ours?" at RCPT time.

A request is one netstring `LEN:NAME KEY,`; the reply is a netstring `OK KEY` when mail to
KEY is accepted here (lists and their -request/-owner/-approval/owner- addresses,
majordomo, postmaster, mailbox users, at every local domain), `NOTFOUND ` when not,
`TEMP reason` when the store cannot answer, `PERM reason` for a malformed request. The map
NAME is not looked at: any name works. Postfix keeps the connection open for more requests.

Limits: a request is at most MAX_REQUEST bytes (a longer length prefix gets `PERM` and the
connection is closed), must arrive whole within REQUEST_TIME seconds once it has started, a
connection idle for `[maps] timeout` is closed, and at most `[maps] max_connections` are
open at once (more are closed at once; Postfix retries). Lookups run in a small thread pool.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from listmgr.maps.addresses import is_ours
from listmgr.streamserver import StreamServer

log = logging.getLogger("listmgr.maps")

MAX_REQUEST = 1000  # bytes in one netstring: a map name and an address (at most 320)
MAX_LENGTH_DIGITS = 4  # "1000"
REQUEST_TIME = 10.0  # seconds for a started request to arrive whole
THREADS = 4


class BadRequest(Exception):
    """A request that is not a netstring within the limits: answered PERM, then closed."""


def netstring(text: str) -> bytes:
    data = text.encode("utf-8", "replace")
    return b"%d:%s," % (len(data), data)


async def read_netstring(reader: asyncio.StreamReader, idle: float) -> bytes | None:
    """One netstring's payload; None at a clean end of input or after `idle` seconds."""
    try:
        first = await asyncio.wait_for(reader.read(1), idle)
    except asyncio.TimeoutError:
        return None
    if not first:
        return None
    return await asyncio.wait_for(_rest(reader, first), REQUEST_TIME)


async def _rest(reader: asyncio.StreamReader, first: bytes) -> bytes:
    digits = first
    while True:
        if not digits[-1:].isdigit():
            raise BadRequest("netstring length expected")
        c = await reader.read(1)
        if not c:
            raise BadRequest("incomplete netstring")
        if c == b":":
            break
        digits += c
        if len(digits) > MAX_LENGTH_DIGITS:
            raise BadRequest(f"request longer than {MAX_REQUEST} bytes")
    length = int(digits)
    if length > MAX_REQUEST:
        raise BadRequest(f"request longer than {MAX_REQUEST} bytes")
    try:
        payload = await reader.readexactly(length + 1)
    except asyncio.IncompleteReadError:
        raise BadRequest("incomplete netstring") from None
    if payload[-1:] != b",":
        raise BadRequest("netstring does not end with ','")
    return payload[:-1]


class SocketmapServer(StreamServer):
    """A service component on `[maps] listen` (service.ports["maps"])."""

    def __init__(self, app: Any, ports: dict[str, int]):
        cfg = app.config
        super().__init__("maps", cfg.maps.listen, ports,
                         max_connections=cfg.maps.max_connections)
        self.app = app
        self.cfg = cfg
        self.local_domains = cfg.local_domains
        self.executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="maps")

    async def stop(self) -> None:
        await super().stop()
        await asyncio.to_thread(self.executor.shutdown, True)

    def lookup(self, key: str) -> bool:
        with self.app.store.session() as s:
            return is_ours(s, key, self.local_domains)

    async def answer(self, request: bytes) -> str:
        try:
            text = request.decode("utf-8")
        except UnicodeDecodeError:
            return "NOTFOUND "  # our addresses are ASCII
        name, sep, key = text.partition(" ")
        if not sep or not name:
            raise BadRequest("expected 'NAME KEY'")
        try:
            ours = await asyncio.get_running_loop().run_in_executor(self.executor,
                                                                    self.lookup, key)
        except Exception:
            log.exception("socketmap lookup of %r failed", key[:320])
            return "TEMP lookup failed, see listmgr's log"
        return f"OK {key}" if ours else "NOTFOUND "

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await read_netstring(reader, self.cfg.maps.timeout)
                if request is None:
                    return
                reply = await self.answer(request)
            except BadRequest as exc:
                writer.write(netstring(f"PERM {exc}"))
                await writer.drain()
                return
            writer.write(netstring(reply))
            await writer.drain()


def components(service: Any) -> list:
    if not service.config.maps.listen:
        return []
    return [SocketmapServer(service.app, service.ports)]
