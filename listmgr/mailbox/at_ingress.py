"""Delivery at DATA: a message whose recipients are all local mailboxes, none of them with
an auto-reply on, goes straight into their Maildirs before the client is answered 250: no
spool file, no queue rows, no mailbox worker (`[smtp] mailbox_at_ingress`, on by default;
up to smtp/handler.AT_INGRESS_MAX_OCTETS in all its copies).

Each copy gets what the mailbox worker would give it (mailbox/delivery.py: our Received:,
Return-Path:, Delivered-To:) and is written to its mailbox's tmp/ and fsynced. Only when
every copy is written are they renamed into new/ and the new/ directories fsynced, so a 250
means every recipient has the message, durably; a failure before that takes every copy back
and the client is answered 451/452 (it sends again). Other mail (lists, commands, relay,
auto-replies) takes the spool and the inbound queue.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from listmgr.mail import trace
from listmgr.mailbox.delivery import trace_headers
from listmgr.mailbox.maildir import Maildir, Staged

log = logging.getLogger("listmgr.mailbox.delivery")


def deliver(data_dir: str, hostname: str, domain: str, queue_id: str, *, mail_from: str,
            helo: str, ip: str, when: dt.datetime, protocol: str,
            recipients: Sequence[tuple[str, str]], data: bytes) -> int:
    """Put `data` (line ends already CRLF) into the mailbox of each (address, user) of
    `recipients`, once per user however many of the addresses name it (as the inbound
    queue makes one task of them); returns the octets written. Raises with nothing
    delivered."""
    once: dict[str, str] = {}  # user -> the first address naming it
    for rcpt, user in recipients:
        once.setdefault(user, rcpt)
    recipients = [(rcpt, user) for user, rcpt in once.items()]
    mailboxes: dict[str, Maildir] = {}
    staged: list[tuple[str, str, Staged, int]] = []
    # LMTP's trace names the recipient only when there is one (the copies are one
    # receipt); over SMTP each copy is a delivery of its own, with its recipient.
    shared = trace.received(hostname, helo, ip, queue_id, when, protocol,
                            recipients[0][0] if len(recipients) == 1 else None) \
        if protocol == "LMTP" else None
    try:
        for i, (rcpt, user) in enumerate(recipients):
            received = shared if shared is not None else \
                trace.received(hostname, helo, ip, queue_id, when, protocol, rcpt)
            stored = trace_headers(mail_from, user, domain) + received + data
            mailbox = mailboxes.get(user)
            if mailbox is None:
                mailbox = mailboxes[user] = Maildir.for_user(data_dir, user)
            staged.append((rcpt, user, mailbox.stage(stored, f"{queue_id}.R{i}"),
                           len(stored)))
        for _, _, copy, _ in staged:
            copy.publish()
        for mailbox in mailboxes.values():
            mailbox.sync_new()
    except BaseException:
        for _, _, copy, _ in staged:
            copy.discard()
        raise
    for rcpt, user, copy, size in staged:
        log.info("%s to=<%s> mailbox=%s uid=%s size=%d status=delivered", queue_id, rcpt,
                 user, copy.uid, size)
    return sum(size for *_, size in staged)
