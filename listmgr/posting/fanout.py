"""Fan-out: decorate an accepted post once, store it once, queue every member.

Members are streamed from the store `fanout_batch` at a time (never the whole roster in
memory), each batch sorted by destination domain and added to ONE outbound message with
one multi-row INSERT. All of it happens in the caller's transaction (the inbound worker's), so
a crash leaves either the whole fan-out queued or none of it, and on PostgreSQL two
`listmgr serve` processes never fan one post out twice (the inbound task is claimed).
The envelope sender is owner-LIST@domain, so bounces reach the list, not the poster.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from listmgr import metrics
from listmgr.mail.addresses import domain_of
from listmgr.posting import archive
from listmgr.posting.decorate import ListInfo, decorate
from listmgr.posting.message import RawMessage
from listmgr.store.lists import iter_member_batches
from listmgr.store.models import MailingList, OutboundMessage
from listmgr.store.outbound import add_recipients, enqueue

from . import hooks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    queue_id: str
    recipients: int
    seq: int


def next_sequence(s: Session, mlist: MailingList) -> int:
    """Atomically take the list's next post number."""
    s.execute(update(MailingList).where(MailingList.id == mlist.id).values(
        post_sequence=MailingList.post_sequence + 1))
    s.refresh(mlist, ["post_sequence"])
    return mlist.post_sequence


def distribute(app, s: Session, mlist: MailingList, msg: RawMessage) -> Distributed:
    """Decorate `msg`, queue it to every member with delivery on, archive it on commit."""
    t0 = time.monotonic()
    seq = next_sequence(s, mlist)
    data = decorate(msg, ListInfo.of(mlist, app.config), seq=seq)
    envelope = f"owner-{mlist.name}@{app.config.domain}"
    out = enqueue(s, app.spool, mail_from=envelope, recipients=(), data=data,
                  origin=f"post:{mlist.name}")
    total = 0
    for batch in iter_member_batches(s, mlist, batch=app.config.posting.fanout_batch):
        addrs = [a for _, a in batch]
        addrs.sort(key=domain_of)  # stable: members of one domain stay in id order
        total += add_recipients(s, out.id, addrs)
    if total == 0:
        # Nobody to send to: keep no empty message in the queue.
        s.execute(delete(OutboundMessage).where(OutboundMessage.id == out.id))
        hooks.after_commit(s, lambda: app.spool.remove(out.spool_path))
    hooks.after_commit(s, lambda: _archive(app, mlist.name, data, envelope))
    elapsed = time.monotonic() - t0
    metrics.FANOUT.observe(elapsed)
    log.info("%s list=%s seq=%d recipients=%d size=%d fanout=%.3fs", out.queue_id,
             mlist.name, seq, total, len(data), elapsed)
    return Distributed(out.queue_id, total, seq)


def _archive(app, list_name: str, data: bytes, envelope: str) -> None:
    try:
        archive.append(app.config, list_name, data, envelope_from=envelope)
    except OSError:
        log.exception("list=%s archive append failed", list_name)
