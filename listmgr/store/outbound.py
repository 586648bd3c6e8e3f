"""Enqueue mail for delivery: the one way anything leaves listmgr.

The body is written once to the spool (fsynced) and one row per recipient is added in the
caller's transaction; the delivery worker (listmgr.delivery) takes it from there.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable

from sqlalchemy.orm import Session

from listmgr.mail.addresses import domain_of
from listmgr.spool import Spool, new_queue_id
from listmgr.store.models import INTERACTIVE, OutboundMessage, OutboundRecipient, utcnow


_UNSAFE = re.compile(r"[\r\n\0<> ]")


def _check_address(addr: str) -> str:
    if not addr or _UNSAFE.search(addr):
        raise ValueError(f"refusing to queue unsafe address {addr!r}")
    return addr


def enqueue(s: Session, spool: Spool, *, mail_from: str, recipients: Iterable[str],
            data: bytes, origin: str = "", received_from: str = "",
            spool_path: str | None = None, personal: str = "",
            priority: int = INTERACTIVE) -> OutboundMessage:
    """Queue `data` for `recipients`. `mail_from` "" is the null sender (no DSN ever).

    Pass `spool_path` instead of writing `data` again when the body is already spooled
    (stored as is). Otherwise `data` passes the spool's signer first: mail whose From:
    address (or, failing that, envelope sender) is in our DKIM domains is stored with our
    DKIM-Signature, made once for all its recipients.
    `personal` names the list whose members' copies get per-recipient parts at send time.
    `priority` is INTERACTIVE (claimed first) or BULK (list posts).
    """
    if mail_from:
        _check_address(mail_from)
    if spool_path is None and spool.signer is not None:
        data = spool.signer(data, mail_from)
    queue_id = new_queue_id()
    path = spool_path or spool.write("out", data, queue_id)
    msg = OutboundMessage(queue_id=queue_id, spool_path=path, mail_from=mail_from,
                          size=len(data), origin=origin, received_from=received_from,
                          personal=personal)
    s.add(msg)
    s.flush()
    add_recipients(s, msg.id, recipients, priority=priority)
    return msg


def add_recipients(s: Session, message_id: int, recipients: Iterable[str], *,
                   priority: int = INTERACTIVE) -> int:
    """Add recipient rows to a queued message in bulk; returns how many.

    The fan-out path for big lists: 5,000 rows per statement, each one INSERT ... SELECT
    over the batch as one parameter (PostgreSQL: two arrays through `unnest`, one round trip
    and no per-row protocol work in the driver; SQLite: one JSON array through `json_each`,
    one step of the statement where executemany steps once per row, and the driver lets go
    of the GIL at every step, which a busy event loop in the same process turns into a
    thread switch per row).
    """
    now = utcnow()
    conn = s.connection()
    sqlite = conn.dialect.name == "sqlite"
    sql = _insert_select(sqlite)
    # SQLite: SQLAlchemy's storage format for DateTime; PostgreSQL: the driver adapts it.
    ts: object = now.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else now
    n = 0
    batch: list[tuple[str, str]] = []

    def flush() -> None:
        rows: tuple = ((json.dumps(batch),) if sqlite else
                       ([r for r, _ in batch], [d for _, d in batch]))
        conn.exec_driver_sql(sql, (message_id, ts, priority, *rows))

    for r in recipients:
        batch.append((_check_address(r), domain_of(r)))
        if len(batch) >= 5000:
            flush()
            n += len(batch)
            batch = []
    if batch:
        flush()
        n += len(batch)
    return n


@functools.cache
def _insert_select(sqlite: bool) -> str:
    """INSERT ... SELECT of a batch of recipients: message id, next attempt and priority as
    parameters, rcpt and domain from the batch's rows, every other column that has a plain
    default in the model as a literal."""
    given = ("message_id", "rcpt", "domain", "next_attempt_at", "priority")
    fixed = {col.name: col.default.arg for col in OutboundRecipient.__table__.columns
             if col.name not in given and not col.primary_key
             and col.default is not None and col.default.is_scalar}
    mark, values, source = (
        ("?", "json_extract(value, '$[0]'), json_extract(value, '$[1]')", "json_each(?)")
        if sqlite else ("%s", "u.r, u.d", "unnest(%s::text[], %s::text[]) AS u(r, d)"))
    return (f"INSERT INTO {OutboundRecipient.__tablename__} ({', '.join(given)}"
            f"{''.join(', ' + c for c in fixed)}) SELECT {mark}, {values}, {mark}, {mark}"
            f"{''.join(', ' + _literal(v) for v in fixed.values())} FROM {source}")


def _literal(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"
