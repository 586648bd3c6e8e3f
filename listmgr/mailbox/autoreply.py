"""Per-mailbox auto-responder (vacation message), after RFC 3834.

Replies only to mail that names the user's address (at any local domain) in To or Cc (not
Bcc or list copies, RFC 3834 section 2), between the optional start and end dates (server
local time, end inclusive), at most once per sender per `autoreply_interval_days`, to the
envelope sender, from the null sender with `Auto-Submitted: auto-replied`, In-Reply-To and
References set. Never to the user itself nor to automatic or list mail
(listmgr.mail.automatic with list_mail: the null sender, robots and no-reply senders,
`Auto-Submitted`, `Precedence: bulk/list/junk`, `List-*` headers, `X-Auto-Response-Suppress`).
The reply is queued with listmgr.store.outbound.enqueue in the delivery's transaction.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import email.utils
import logging

from listmgr import clock
from listmgr.app import App
from listmgr.config import japanese_charset
from listmgr.mail import automatic
from listmgr.mail.compose import new_message, to_bytes
from listmgr.render import render
from listmgr.store.db import Session
from listmgr.store.mailboxes import User
from listmgr.store.models import InboundMessage, utcnow
from listmgr.store.ratelimit import first_in_interval
from listmgr.store.outbound import enqueue

log = logging.getLogger(__name__)

ONCE_PER = dt.timedelta(days=1)


def _header(headers, name: str) -> str:
    value = headers.get(name)
    return str(value).strip() if value is not None else ""


def skip_reason(sender: str, user_address: str, headers) -> str | None:
    """Why no auto-reply goes to this message (None: reply). Pure."""
    if sender and sender.lower() == user_address.lower():
        return "own address"
    return automatic.reason(sender, headers, list_mail=True)


def addressed_to(headers, addresses: set[str]) -> bool:
    """Does To or Cc name one of `addresses` (lower case)? Bcc and list copies do not."""
    try:
        values = [str(v) for name in ("To", "Cc") for v in (headers.get_all(name) or [])]
    except Exception:  # a header too broken to read names nobody
        return False
    found = email.utils.getaddresses(values)
    return any(addr.strip().lower() in addresses for _, addr in found)


def in_period(user: User, today: dt.date) -> bool:
    if user.autoreply_start and today < user.autoreply_start:
        return False
    if user.autoreply_end and today > user.autoreply_end:
        return False
    return True


def _first_in_interval(s: Session, user: str, sender: str, now: dt.datetime,
                       every: dt.timedelta = ONCE_PER) -> bool:
    """Record a reply to `sender`; False when one went out within `every`."""
    return first_in_interval(s, f"autoreply:{user}:{sender.lower()}"[:400], now, every)


def maybe_reply(app: App, s: Session, user: User, message: InboundMessage,
                data: bytes) -> bool:
    """Queue the user's auto-reply to this message when the rules allow; True if queued."""
    if not user.autoreply_enabled:
        return False
    local_today = clock.now().replace(tzinfo=dt.timezone.utc).astimezone().date()
    if not in_period(user, local_today):
        return False
    domain = app.config.domain
    address = f"{user.name}@{domain}"
    headers = email.message_from_bytes(data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
                                       + b"\r\n\r\n", policy=email.policy.default)
    sender = message.mail_from
    reason = skip_reason(sender, address, headers)
    if reason is None and any(c in sender for c in "\r\n\0<> "):
        reason = "unsafe sender"
    if reason is None and not addressed_to(
            headers, {f"{user.name}@{d}" for d in app.config.local_domains}):
        reason = "not in To or Cc"
    every = dt.timedelta(days=max(1, user.autoreply_interval_days))
    if reason is None and not _first_in_interval(s, user.name, sender, utcnow(), every):
        reason = "already replied in the interval"
    if reason is not None:
        log.info("%s autoreply user=%s to=<%s> skipped=%s", message.queue_id, user.name,
                 sender, reason)
        return False
    try:
        original_subject = " ".join(_header(headers, "Subject").split())
        message_id = " ".join(_header(headers, "Message-ID").split())
        references = " ".join(_header(headers, "References").split()[-10:])
    except Exception:  # a header too broken to read: reply without echoing it
        original_subject, message_id, references = "", "", ""
    text = render("autoreply.txt", app.config.language, subject=user.autoreply_subject,
                  original_subject=original_subject, body=user.autoreply_body)
    subject, _, body = text.partition("\n\n")
    body = body.rstrip() + "\n"
    reply = new_message(from_=address, to=sender, subject=subject.strip(), body=body,
                        domain=domain, in_reply_to=message_id or None,
                        references=references or None,
                        headers={"Auto-Submitted": "auto-replied",
                                 "X-Auto-Response-Suppress": "All"},
                        charset=japanese_charset(app.config))
    enqueue(s, app.spool, mail_from="", recipients=[sender], data=to_bytes(reply),
            origin="autoreply")
    log.info("%s autoreply user=%s to=<%s> queued", message.queue_id, user.name, sender)
    return True
