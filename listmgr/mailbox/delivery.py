"""Local delivery: the inbound handler for kind "local" (task.target = mailbox user name).

The message gets `Return-Path:` (the envelope sender, RFC 5321 section 4.4),
`Delivered-To:` and our `Received:` (unless it arrived over LMTP with it) on top and is written to the user's Maildir (tmp/, fsync, rename into new/).
The Maildir file name is derived from the task, so a task replayed after a crash between
the file write and the commit does not leave a second copy.
"""

from __future__ import annotations

import logging

from listmgr.app import App
from listmgr.mail import trace
from listmgr.mail.compose import normalise_line_ends
from listmgr.mailbox import autoreply
from listmgr.mailbox.maildir import Maildir
from listmgr.store import mailboxes
from listmgr.store.db import Session
from listmgr.store.models import InboundMessage, InboundTask

log = logging.getLogger(__name__)


class LocalDeliveryError(Exception):
    """The message cannot go into the mailbox (the task is shunted, kept for replay)."""


def trace_headers(mail_from: str, user: str, domain: str) -> bytes:
    sender = mail_from.replace("\r", "").replace("\n", "")
    return f"Return-Path: <{sender}>\r\nDelivered-To: {user}@{domain}\r\n".encode(
        "utf-8", "surrogateescape")


def deliver_local(app: App, s: Session, task: InboundTask, message: InboundMessage,
                  data: bytes) -> None:
    user = mailboxes.get_user(s, task.target)
    if user is None:
        raise LocalDeliveryError(f"no mailbox user {task.target!r}")
    limit = app.config.smtp.max_message_size
    # Our own LMTP trace header does not count against the limit the client was held to.
    own = trace.ours_length(data, app.config.hostname, message.queue_id)
    if limit and len(data) - own > limit:
        raise LocalDeliveryError(f"message of {len(data)} octets is over the {limit} limit")
    data = normalise_line_ends(data)
    if not trace.has_ours(data, app.config.hostname, message.queue_id):
        data = trace.received(app.config.hostname, message.client_helo, message.client_ip,
                              message.queue_id, message.received_at, "ESMTP",
                              task.rcpt) + data
    stored = trace_headers(message.mail_from, user.name, app.config.domain) + data
    uid = Maildir.for_user(app.config.data_dir, user.name).deliver(
        stored, unique=f"{message.queue_id}.T{task.id}")
    log.info("%s to=<%s> mailbox=%s uid=%s size=%d status=delivered", message.queue_id,
             task.rcpt, user.name, uid, len(stored))
    try:
        with s.begin_nested():  # a failed auto-reply must not undo or repeat the delivery
            autoreply.maybe_reply(app, s, user, message, data)
    except Exception:
        log.exception("%s autoreply user=%s failed", message.queue_id, user.name)
