"""Enqueue mail for delivery: the one way anything leaves listmgr.

The body is written once to the spool (fsynced) and one row per recipient is added in the
caller's transaction; the delivery worker (listmgr.delivery) takes it from there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy.orm import Session

from listmgr.spool import Spool, new_queue_id
from listmgr.store.models import OutboundMessage, OutboundRecipient, utcnow


_UNSAFE = re.compile(r"[\r\n\0<> ]")


def _check_address(addr: str) -> str:
    if not addr or _UNSAFE.search(addr):
        raise ValueError(f"refusing to queue unsafe address {addr!r}")
    return addr


def enqueue(s: Session, spool: Spool, *, mail_from: str, recipients: Iterable[str],
            data: bytes, origin: str = "", received_from: str = "",
            spool_path: str | None = None) -> OutboundMessage:
    """Queue `data` for `recipients`. `mail_from` "" is the null sender (no DSN ever).

    Pass `spool_path` instead of writing `data` again when the body is already spooled.
    """
    if mail_from:
        _check_address(mail_from)
    queue_id = new_queue_id()
    path = spool_path or spool.write("out", data, queue_id)
    msg = OutboundMessage(queue_id=queue_id, spool_path=path, mail_from=mail_from,
                          size=len(data), origin=origin, received_from=received_from)
    s.add(msg)
    s.flush()
    add_recipients(s, msg.id, recipients)
    return msg


def add_recipients(s: Session, message_id: int, recipients: Iterable[str]) -> int:
    """Add recipient rows to a queued message in bulk; returns how many.

    A post to 100,000 members goes through here, so rows go straight to the driver's
    executemany (5,000 a call): SQLAlchemy's per-row parameter processing would cost more
    than the database's own work.
    """
    now = utcnow()
    conn = s.connection()
    if conn.dialect.name == "sqlite":
        # SQLAlchemy's storage format for DateTime on SQLite.
        stamp: object = now.strftime("%Y-%m-%d %H:%M:%S.%f")
        mark = "?"
    else:
        stamp, mark = now, "%s"
    sql = (f"INSERT INTO {OutboundRecipient.__tablename__} (message_id, rcpt, domain, state, "
           f"next_attempt_at, attempts, lease_owner, status, diagnostic, remote_mta, "
           f"transcript) VALUES ({mark}, {mark}, {mark}, 'queued', {mark}, 0, '', '', '', '', '')")
    n = 0
    batch: list[tuple] = []
    for r in recipients:
        _check_address(r)
        batch.append((message_id, r, r.rpartition("@")[2].lower().rstrip("."), stamp))
        if len(batch) >= 5000:
            conn.exec_driver_sql(sql, batch)
            n += len(batch)
            batch = []
    if batch:
        conn.exec_driver_sql(sql, batch)
        n += len(batch)
    return n
