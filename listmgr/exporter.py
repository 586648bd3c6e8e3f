"""The Prometheus exporter: GET /metrics on `[metrics] listen` serves the process-wide
counters of listmgr/metrics.py and the queue sizes, read from the store at each scrape (so
every `serve` on one PostgreSQL reports the same queue).

A small asyncio server: GET only, a request head of at most 8 KB that must arrive within 10
seconds, at most 20 connections at once; the store queries of a scrape run in a thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from listmgr.store import queue_report
from listmgr.streamserver import StreamServer

log = logging.getLogger("listmgr.metrics")

MAX_REQUEST_HEAD = 8192
REQUEST_TIME = 10.0
MAX_CONNECTIONS = 20


class QueueCollector:
    """Queue sizes, read from the store at scrape time."""

    def __init__(self, app: Any):
        self.app = app

    def collect(self):
        try:
            with self.app.store.session() as s:
                counts = queue_report.counts(s)
                held = queue_report.held_posts(s)
        except Exception:
            log.exception("metrics: queue counts failed")
            return
        g = GaugeMetricFamily("listmgr_queue_recipients", "Outbound recipients by state",
                              labels=["state"])
        g.add_metric(["queued"], counts["outbound_queued"])
        g.add_metric(["deferred"], counts["outbound_deferred"])
        g.add_metric(["returning"], counts["outbound_returning"])
        yield g
        g = GaugeMetricFamily("listmgr_inbound_tasks", "Inbound tasks not done, by state",
                              labels=["state"])
        g.add_metric(["waiting"], counts["inbound_waiting"])
        g.add_metric(["shunted"], counts["inbound_shunted"])
        yield g
        yield GaugeMetricFamily("listmgr_held_posts", "Posts held for a moderator",
                                value=held)


class _Process:
    """The process-wide metrics (counters above, Python/process collectors)."""

    def collect(self):
        yield from REGISTRY.collect()


class MetricsServer(StreamServer):
    """A service component serving GET /metrics on `[metrics] listen`."""

    def __init__(self, app: Any, ports: dict[str, int]):
        super().__init__("metrics", app.config.metrics.listen, ports,
                         max_connections=MAX_CONNECTIONS, limit=MAX_REQUEST_HEAD)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Process())
        self.registry.register(QueueCollector(app))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIME)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await self._reply(writer, "400 Bad Request", b"bad request\n")
            return
        method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        path = rest.split(" ", 1)[0].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            await self._reply(writer, "405 Method Not Allowed", b"GET only\n")
        elif path not in ("/metrics", "/"):
            await self._reply(writer, "404 Not Found", b"see /metrics\n")
        else:
            body = await asyncio.to_thread(generate_latest, self.registry)
            await self._reply(writer, "200 OK", body if method == "GET" else b"",
                              CONTENT_TYPE_LATEST, length=len(body))

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: str, body: bytes,
                     ctype: str = "text/plain; charset=utf-8", length: int | None = None
                     ) -> None:
        n = len(body) if length is None else length
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {n}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
        await asyncio.wait_for(writer.drain(), REQUEST_TIME)


def components(service: Any) -> list:
    if not service.config.metrics.listen:
        return []
    return [MetricsServer(service.app, service.ports)]
