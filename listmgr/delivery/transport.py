"""Sending transactions to a route's hosts and turning replies into per-recipient outcomes.

A route is the smarthost, this server's own listener (for its local domains), or a remote
domain (MX lookup). A connection is reused for the next transaction to the same route
(RSET in between only when a transaction was left open). Failing hops are tried in order:
refused connections, timeouts and 4xx/5xx greetings move on to the next address.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from listmgr.delivery.mx import Hop, MXResolver, Route
from listmgr.delivery.personal import ListParts
from listmgr.mail.dkim_copies import CopySigner
from listmgr.delivery.queue import (
    DEFERRED,
    FAILED,
    SENT,
    Outcome,
    Reply,
    Transaction,
)
from listmgr.delivery.smtpclient import SMTPClient, SMTPClientError, TxResult

log = logging.getLogger(__name__)

SMARTHOST = "[smarthost]"
LOCAL = "[local]"


@dataclass
class Message:
    """What a transaction needs of a queued message (loaded once per message, cached)."""

    id: int
    queue_id: str
    mail_from: str
    payload: bytes          # prepared: CRLF, dot-stuffed, final dot
    hops: int               # Received: fields
    size: int
    arrival_at: dt.datetime
    deadline: dt.datetime   # give-up time
    personal: ListParts | None = None  # per-recipient parts of a list post
    copy_signer: CopySigner | None = None  # signs each copy (payload then lacks our signature)


class Transport:
    def __init__(self, *, resolver: MXResolver | None, helo: str, port: int,
                 smarthost: tuple[str, int] | None, local: tuple[str, int] | None,
                 timeout: float, connect_timeout: float, starttls: bool):
        self.resolver = resolver
        self.helo = helo
        self.port = port
        self.smarthost = smarthost
        self.local = local
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.starttls = starttls

    async def route(self, name: str) -> tuple[Route, int]:
        if name == SMARTHOST and self.smarthost:
            host, port = self.smarthost
            return Route(hops=(Hop(host, host),)), port
        if name == LOCAL and self.local:
            host, port = self.local
            return Route(hops=(Hop(host, host),)), port
        assert self.resolver is not None
        return await self.resolver.route(name), self.port

    async def connect(self, name: str) -> tuple[SMTPClient | None, Route | None, str]:
        """Open a connection for route `name`. Returns (client, None, "") or, when no hop
        takes it, (None, route-with-result, reason)."""
        route, port = await self.route(name)
        if route.result:
            return None, route, ""
        last = f"no host for {name}"
        for hop in route.hops:
            try:
                client, greeting = await SMTPClient.connect(
                    hop.address, port, host=hop.host, helo=self.helo, timeout=self.timeout,
                    connect_timeout=self.connect_timeout, starttls=self.starttls)
            except SMTPClientError as exc:
                last = str(exc)
                log.info("route=%s host=%s addr=%s port=%d error=%s", name, hop.host,
                         hop.address, port, last)
                continue
            if greeting.code != 220:
                last = f"{hop.host} greeted: {greeting.line()}"
                await client.quit()
                continue
            return client, None, ""
        return None, None, last

    async def send(self, client: SMTPClient, tx: Transaction, msg: Message
                   ) -> tuple[list[Outcome], bool]:
        """One transaction (or a group of them: per-recipient parts) on an open connection.
        Returns (outcomes in the order of tx.items, connection still good)."""
        if tx.group is not None:
            return await self._send_group(client, tx.group, msg)
        rcpts = [it.rcpt for it in tx.items]
        mail_from = msg.mail_from if tx.mail_from is None else tx.mail_from
        try:
            res = await client.transaction(mail_from, rcpts, msg.payload, head=tx.head)
        except SMTPClientError as exc:
            return _lost(tx, client.host, exc), False
        except ValueError as exc:  # an unsafe address: never on the wire, never retried
            return _unsafe(tx, exc), True
        return _outcomes(tx, res, mail_from, client.host)

    async def _send_group(self, client: SMTPClient, group: list[Transaction], msg: Message
                          ) -> tuple[list[Outcome], bool]:
        """Transactions of one message with their own parts, pipelined back to back."""
        envelopes = [(msg.mail_from if t.mail_from is None else t.mail_from,
                      [it.rcpt for it in t.items], t.head) for t in group]
        results, error = await client.transactions(envelopes, msg.payload)
        out: list[Outcome] = []
        keep = error is None
        for t, (mail_from, _, _), res in zip(group, envelopes, results):
            if res is None:  # not finished when the connection failed: try again later
                out.extend(_lost(t, client.host, error or SMTPClientError("no reply")))
            elif isinstance(res, ValueError):
                out.extend(_unsafe(t, res))
            else:
                outs, k = _outcomes(t, res, mail_from, client.host)
                out.extend(outs)
                keep = keep and k
        return out, keep


def _lost(tx: Transaction, host: str, exc: Exception) -> list[Outcome]:
    reason = f"451 4.4.2 {exc}"
    return [Outcome(it.rid, DEFERRED, "4.4.2", reason, host,
                    (f"... while talking to {host}:", f"<<< {exc}")) for it in tx.items]


def _unsafe(tx: Transaction, exc: Exception) -> list[Outcome]:
    return [Outcome(it.rid, FAILED, "5.1.3", f"553 5.1.3 {exc}") for it in tx.items]


def _outcomes(tx: Transaction, res: TxResult, mail_from: str, host: str
              ) -> tuple[list[Outcome], bool]:
    """Per-recipient outcomes of one finished transaction, and whether to keep talking."""
    out: list[Outcome] = []
    keep = True
    data_ok = res.data is not None and 200 <= res.data.code < 300
    data_status = res.data.status if data_ok and res.data is not None else ""
    for it, rr in zip(tx.items, res.rcpts):
        if data_ok and 200 <= rr.code < 300:  # the common case, kept cheap
            out.append(Outcome(it.rid, SENT, data_status, "", host))
            continue
        if rr is res.mail and not 200 <= res.mail.code < 300:
            reply, said = rr, f">>> MAIL From:<{mail_from}>"
        elif not 200 <= rr.code < 300:
            reply, said = rr, f">>> RCPT To:<{it.rcpt}>"
        else:
            reply = res.data if res.data is not None else Reply(451, "4.3.0 no reply")
            said = ">>> DATA"
        if reply.code == 421:
            keep = False
        result = reply.outcome
        if result == SENT:
            out.append(Outcome(it.rid, SENT, reply.status, "", host))
        else:
            line = reply.line()
            out.append(Outcome(it.rid, result, reply.status, line, host,
                               (f"... while talking to {host}:", said, f"<<< {line}")))
    return out, keep


def route_outcomes(route: Route, tx: Transaction) -> list[Outcome]:
    """Every recipient of `tx` gets the route's own verdict (Host unknown, null MX, ...)."""
    out = []
    for it in tx.items:
        diag = route.diagnostic.replace("{rcpt}", it.rcpt)
        out.append(Outcome(it.rid, route.result, route.status, diag, "",
                           route.transcript + (diag,)))
    return out


def unreachable_outcomes(reason: str, tx: Transaction) -> list[Outcome]:
    diag = f"451 4.4.1 {reason}"
    return [Outcome(it.rid, DEFERRED, "4.4.1", diag, "", (f"<{it.rcpt}>... Deferred: {reason}",))
            for it in tx.items]
