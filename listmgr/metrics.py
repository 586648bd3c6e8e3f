"""Prometheus metrics (prometheus-client), served on `[metrics] listen` at /metrics.

Counters are process-wide and incremented where things happen; the queue sizes are read
from the store at each scrape (so every `serve` on one PostgreSQL reports the same queue).

    listmgr_messages_accepted_total{listener}        messages stored (250 after DATA)
    listmgr_messages_refused_total{listener,reason}  RCPT / MAIL / DATA refusals by reason
    listmgr_deliveries_total{outcome}                recipients sent / deferred / bounced
    listmgr_fanout_seconds                           time to queue one post to its members
    listmgr_pop3_logins_total{result}                POP3 logins ok / failed
    listmgr_smtp_auth_total{result}                  SMTP AUTH ok / failed
    listmgr_queue_recipients{state}                  outbound: queued, deferred, returning
    listmgr_inbound_tasks{state}                     inbound: waiting, shunted
    listmgr_held_posts                               posts waiting for a moderator

The HTTP side is a small asyncio server: GET only, a request head of at most 8 KB that must
arrive within 10 seconds, at most 20 connections at once; the store queries of a scrape run
in a thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, \
    Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from listmgr.streamserver import StreamServer

log = logging.getLogger("listmgr.metrics")

ACCEPTED = Counter("listmgr_messages_accepted", "Messages accepted and stored", ["listener"])
REFUSED = Counter("listmgr_messages_refused", "Transactions or recipients refused, by reason",
                  ["listener", "reason"])
DELIVERIES = Counter("listmgr_deliveries", "Delivery attempts per recipient, by outcome",
                     ["outcome"])
FANOUT = Histogram("listmgr_fanout_seconds", "Time to queue one list post to its members",
                   buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120))
POP3_LOGINS = Counter("listmgr_pop3_logins", "POP3 logins", ["result"])
SMTP_AUTH = Counter("listmgr_smtp_auth", "SMTP AUTH logins", ["result"])

MAX_REQUEST_HEAD = 8192
REQUEST_TIME = 10.0
MAX_CONNECTIONS = 20


def refusal_reason(reply: str) -> str:
    """A short label for an SMTP refusal reply."""
    code, _, rest = reply.partition(" ")
    detail = rest.split(" ", 1)[0]
    return {
        "5.1.1": "user_unknown", "5.7.1": "relay_denied", "5.1.3": "bad_address",
        "5.1.7": "bad_address", "5.1.8": "bad_address", "4.5.3": "too_many_recipients",
        "5.3.4": "size", "5.5.2": "syntax", "5.4.6": "loop", "4.3.0": "internal_error",
        "4.3.2": "busy", "5.6.0": "no_from",
    }.get(detail, f"other_{code}")


class QueueCollector:
    """Queue sizes, read from the store at scrape time."""

    def __init__(self, app: Any):
        self.app = app

    def collect(self):
        from listmgr.store import queue_report
        from sqlalchemy import func, select
        from listmgr.store.models import HeldPost
        try:
            with self.app.store.session() as s:
                counts = queue_report.counts(s)
                held = s.scalar(select(func.count()).select_from(HeldPost).where(
                    HeldPost.state == "held")) or 0
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
