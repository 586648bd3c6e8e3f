"""Inbound handlers that pass a message on unchanged, with a Received: header on top.

relay:     the remote recipients (the gate allowed each at RCPT), original envelope sender.
owner:     owner-LIST@ / LIST-owner@ -> the list's owners.
approval:  LIST-approval@ -> the list's moderator if set, else its owners.
admins:    majordomo-owner@, postmaster@ -> `site_admins`.

The envelope sender is kept (as an alias expansion does), so bounces go back to whoever sent
the message, and mail from the null sender stays null (no DSN loops).
"""

from __future__ import annotations

from listmgr.app import App
from listmgr.mail import trace
from listmgr.mail.addresses import address_list
from listmgr.store import inbound
from listmgr.store.db import Session
from listmgr.store.lists import owners_of
from listmgr.store.models import InboundMessage, InboundTask
from listmgr.store.outbound import enqueue
from listmgr.store.settings import read_list


class NowhereToSend(LookupError):
    """No address to forward to (e.g. no site_admins): the task is shunted, not lost."""


def received_header(app: App, message: InboundMessage, rcpt: str | None = None) -> bytes:
    """RFC 5321 4.4 trace header for our hop, folded, CRLF-terminated."""
    return trace.received(app.config.hostname, message.client_helo, message.client_ip,
                          message.queue_id, message.received_at, "ESMTP", rcpt)


def with_trace(app: App, message: InboundMessage, data: bytes, rcpt: str | None = None
               ) -> bytes:
    """`data` with our Received: on top, unless it came with one (LMTP adds it on arrival)."""
    if trace.has_ours(data, app.config.hostname, message.queue_id):
        return data
    return received_header(app, message, rcpt) + data


def forward(app: App, s: Session, message: InboundMessage, data: bytes, recipients: list[str],
            origin: str, for_rcpt: str | None = None) -> None:
    if not recipients:
        raise NowhereToSend(f"no recipients for {origin}")
    enqueue(s, app.spool, mail_from=message.mail_from, recipients=recipients,
            data=with_trace(app, message, data, for_rcpt), origin=origin,
            received_from=f"{message.client_helo or 'unknown'} [{message.client_ip}]")


def list_owners(s: Session, name: str) -> list[str]:
    mlist = read_list(s, name)
    return owners_of(mlist) if mlist is not None else []


def relay(app: App, s: Session, task: InboundTask, message: InboundMessage,
          data: bytes) -> None:
    """All remote recipients of one message (its one relay task) leave as one queued
    message (one spool copy)."""
    targets = inbound.recipients(task)
    forward(app, s, message, data, targets, "relay",
            for_rcpt=targets[0] if len(targets) == 1 else None)


def owner(app: App, s: Session, task: InboundTask, message: InboundMessage,
          data: bytes) -> None:
    # A list deleted since RCPT: its owners are gone, the site admins get it instead.
    to = list_owners(s, task.target) or list(app.config.site_admins)
    forward(app, s, message, data, to, f"owner:{task.target}")


def approval(app: App, s: Session, task: InboundTask, message: InboundMessage,
             data: bytes) -> None:
    mlist = read_list(s, task.target)
    to = address_list(mlist.moderator) if mlist is not None else []
    to = to or list_owners(s, task.target) or list(app.config.site_admins)
    forward(app, s, message, data, to, f"approval:{task.target}")


def admins(app: App, s: Session, task: InboundTask, message: InboundMessage,
           data: bytes) -> None:
    forward(app, s, message, data, list(app.config.site_admins), "admins")
