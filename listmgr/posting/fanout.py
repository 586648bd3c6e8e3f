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
from listmgr.mail.addresses import AddressError, domain_of, parse_single
from listmgr.posting import archive, digest, mitigation
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


def _bare(stored: str) -> str:
    """The address of a member row; "" (left out, logged) if it no longer parses."""
    try:
        return parse_single(stored)  # a bare address returns at once
    except AddressError:
        log.warning("member address %r does not parse: left out of the post", stored)
        return ""


def distribute(app, s: Session, mlist: MailingList, msg: RawMessage) -> Distributed:
    """Decorate `msg`, queue it to every member with delivery on, archive it on commit."""
    t0 = time.monotonic()
    info = ListInfo.of(mlist, app.config)
    # Before the first write: a DNS lookup must not hold the store's write lock (SQLite).
    mode = mitigation.decide(app.txt_lookup, info, msg, app.config.local_domains)
    seq = next_sequence(s, mlist)
    data = decorate(msg, info, seq=seq, mitigation=mode)
    if app.config.dkim.arc and app.signer is not None:
        data = app.signer.arc_seal(data, app.config.domain, app.config.hostname)
    envelope = f"owner-{mlist.name}@{app.config.domain}"
    # Per-recipient parts (VERP, one-click unsubscribe) are added at send time.
    personal = mlist.name if mlist.verp != "off" or app.config.web.base_url else ""
    out = enqueue(s, app.spool, mail_from=envelope, recipients=(), data=data,
                  origin=f"post:{mlist.name}", personal=personal)
    total = 0
    for batch in iter_member_batches(s, mlist, batch=app.config.posting.fanout_batch,
                                     digest=False):
        addrs = [b for _, a in batch if (b := _bare(a))]  # strip = no keeps "Name <addr>"
        addrs.sort(key=domain_of)  # stable: members of one domain stay in id order
        total += add_recipients(s, out.id, addrs)
    if total == 0:
        # Nobody to send to: keep no empty message in the queue.
        s.execute(delete(OutboundMessage).where(OutboundMessage.id == out.id))
        hooks.after_commit(s, lambda: app.spool.remove(out.spool_path))
    hooks.after_commit(s, lambda: _archive(app, mlist.name, data, envelope))
    if digest.has_digest_members(s, mlist):
        digest.queue_post(app, s, mlist, data)
    elapsed = time.monotonic() - t0
    metrics.FANOUT.observe(elapsed)
    log.info("%s list=%s seq=%d recipients=%d size=%d dmarc=%s fanout=%.3fs", out.queue_id,
             mlist.name, seq, total, len(data), mode, elapsed)
    return Distributed(out.queue_id, total, seq)


def _archive(app, list_name: str, data: bytes, envelope: str) -> None:
    try:
        archive.append(app.config, list_name, data, envelope_from=envelope)
    except OSError:
        log.exception("list=%s archive append failed", list_name)
