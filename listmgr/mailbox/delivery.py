"""Local delivery: the inbound handler for kind "local" (task.target = mailbox user name).

The message gets `Return-Path:` (the envelope sender, RFC 5321 section 4.4),
`Delivered-To:` and our `Received:` (unless it arrived over LMTP with it) on top and is written to the user's Maildir (tmp/, fsync, rename into new/).
The Maildir file name is derived from the task, so a task replayed after a crash between
the file write and the commit does not leave a second copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


def mailbox_bytes(app: App, user: str, task: InboundTask, message: InboundMessage,
                  data: bytes) -> tuple[bytes, bytes]:
    """(the message with our Received:, what goes into the mailbox: that with Return-Path:
    and Delivered-To: on top). LocalDeliveryError when it is over the size limit."""
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
    return data, trace_headers(message.mail_from, user, app.config.domain) + data


def _write(app: App, user: str, task: InboundTask, message: InboundMessage, stored: bytes,
           *, sync: bool) -> Maildir:
    mailbox = Maildir.for_user(app.config.data_dir, user)
    uid = mailbox.deliver(stored, unique=f"{message.queue_id}.T{task.id}", sync=sync)
    log.info("%s to=<%s> mailbox=%s uid=%s size=%d status=delivered", message.queue_id,
             task.rcpt, user, uid, len(stored))
    return mailbox


def _autoreply(app: App, s: Session, user: mailboxes.User, message: InboundMessage,
               data: bytes) -> bool:
    if not user.autoreply_enabled:
        return False
    try:
        with s.begin_nested():  # a failed auto-reply must not undo or repeat the delivery
            return autoreply.maybe_reply(app, s, user, message, data)
    except Exception:
        log.exception("%s autoreply user=%s failed", message.queue_id, user.name)
        return False


def deliver_local(app: App, s: Session, task: InboundTask, message: InboundMessage,
                  data: bytes) -> None:
    user = mailboxes.get_user(s, task.target)
    if user is None:
        raise LocalDeliveryError(f"no mailbox user {task.target!r}")
    data, stored = mailbox_bytes(app, user.name, task, message, data)
    _write(app, user.name, task, message, stored, sync=True)
    _autoreply(app, s, user, message, data)


@dataclass
class _Staged:
    user: mailboxes.User
    message: InboundMessage
    data: bytes


class LocalBatch:
    """deliver_local for a batch of tasks (pipeline.InboundWorker's batch step): stage()
    writes each message's Maildir file, its bytes fsynced, with no transaction open; sync()
    makes the new names durable, one directory fsync per mailbox; commit() runs for each in
    the batch's one transaction (the auto-reply), which also marks the tasks done. A crash
    before that commit replays the tasks, and the Maildir names (derived from the tasks)
    keep them from being delivered twice."""

    def __init__(self, app: App):
        self.app = app
        self.users: dict[str, mailboxes.User | None] = {}
        self.mailboxes: dict[str, Maildir] = {}
        self.queued = False  # an auto-reply was queued (the outbound workers have work)

    def _user(self, name: str) -> mailboxes.User | None:
        if name not in self.users:
            with self.app.store.lookup_engine.connect() as conn:  # one read, no ORM session
                self.users[name] = mailboxes.get_user(conn, name)
        return self.users[name]

    def stage(self, task: InboundTask, message: InboundMessage, data: bytes) -> _Staged:
        user = self._user(task.target)
        if user is None:
            raise LocalDeliveryError(f"no mailbox user {task.target!r}")
        data, stored = mailbox_bytes(self.app, user.name, task, message, data)
        self.mailboxes[user.name] = _write(self.app, user.name, task, message, stored,
                                           sync=False)
        return _Staged(user, message, data)

    def sync(self) -> None:
        for mailbox in self.mailboxes.values():
            mailbox.sync_new()

    def commit(self, s: Session, staged: _Staged) -> None:
        if _autoreply(self.app, s, staged.user, staged.message, staged.data):
            self.queued = True


deliver_local.batch = LocalBatch  # type: ignore[attr-defined]
