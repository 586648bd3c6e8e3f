"""Enqueue mail for delivery: the one way anything leaves listmgr.

The body is written once to the spool (fsynced) and one row per recipient is added in the
caller's transaction; the delivery worker (listmgr.delivery) takes it from there.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import insert
from sqlalchemy.orm import Session

from listmgr.mail.addresses import domain_of
from listmgr.spool import Spool, new_queue_id
from listmgr.store.models import OutboundMessage, OutboundRecipient, utcnow


def _check_address(addr: str) -> str:
    if any(c in addr for c in "\r\n\0<> ") or not addr:
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
    """Add recipient rows to a queued message in one statement; returns how many."""
    now = utcnow()
    rows = [{"message_id": message_id, "rcpt": _check_address(r), "domain": domain_of(r),
             "state": "queued", "next_attempt_at": now, "attempts": 0}
            for r in recipients]
    if rows:
        s.execute(insert(OutboundRecipient), rows)
    return len(rows)
