"""Message submission for mail clients (RFC 6409, RFC 8314): `[submission] listen` (port 587,
STARTTLS required before AUTH) and `[submission] tls_listen` (port 465, implicit TLS).

Only mailbox users who authenticated (AUTH PLAIN or LOGIN, their POP3 password) may send,
to anyone (local or remote), within `[smtp] max_message_size`. The envelope sender and every
From: address must be one of the user's own addresses (`user@` each local domain); anything
else gets `553 5.7.1` at MAIL or `550 5.7.1` at the end of DATA, so a login cannot send as
someone else. POP-before-SMTP stays on the port-25 listener.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
import logging
from typing import Any

from listmgr import metrics
from listmgr.smtp.handler import IngressHandler, client_desc, log_transaction
from listmgr.smtp.server import Listener, tls_context

log = logging.getLogger("listmgr.smtp")

MAX_HEADER_BYTES = 256 * 1024  # the header block read for From: (the body is not parsed)


def auth_user(session) -> str:
    data = getattr(session, "auth_data", None)
    login = getattr(data, "login", b"") or b""
    return login.decode("utf-8", "replace") if isinstance(login, bytes) else str(login)


def from_addresses(data: bytes) -> list[str]:
    """Every address in the From: header field(s) of a message, lower case."""
    end = data.find(b"\r\n\r\n", 0, MAX_HEADER_BYTES)
    head = data[:MAX_HEADER_BYTES] if end < 0 else data[:end + 2]
    msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    values = [str(v) for v in msg.get_all("From", [])]
    return [addr.lower() for _, addr in email.utils.getaddresses(values)]


class SubmissionHandler(IngressHandler):
    """IngressHandler plus: the sender must be the authenticated user."""

    def own(self, user: str, address: str) -> bool:
        local, at, domain = address.lower().rpartition("@")
        return bool(at) and local == user and domain.rstrip(".") in self.local_domains

    def own_addresses(self, user: str) -> str:
        return ", ".join(f"{user}@{d}" for d in self.local_domains)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        user = auth_user(session)
        if not user:  # aiosmtpd refuses MAIL before AUTH; this is a second lock
            return "530 5.7.0 Authentication required"
        if not self.own(user, address):
            metrics.REFUSED.labels(self.name, "not_own_sender").inc()
            log.info("NOQUEUE client=%s user=%s from=<%s> result=rejected (not the user's "
                     "address)", client_desc(session), user, address)
            return (f"553 5.7.1 <{address}>: sender address is not yours (you may send as "
                    f"{self.own_addresses(user)})")
        return await super().handle_MAIL(server, session, envelope, address, mail_options)

    async def handle_DATA(self, server, session, envelope):
        user = auth_user(session)
        try:
            senders = from_addresses(envelope.original_content or b"")
        except Exception:
            senders = []
        if not senders:
            reply = "550 5.6.0 The message has no From: address"
        else:
            strangers = [a for a in senders if not self.own(user, a)]
            if not strangers:
                return await super().handle_DATA(server, session, envelope)
            reply = (f"550 5.7.1 From: <{strangers[0][:320]}> is not yours (you may send as "
                     f"{self.own_addresses(user)})")
        metrics.REFUSED.labels(self.name, "not_own_from").inc()
        log_transaction("NOQUEUE", session, envelope, "?", f"rejected ({reply})")
        return reply


def components(service: Any) -> list:
    cfg = service.config
    sub = cfg.submission
    if not (sub.listen or sub.tls_listen):
        return []
    cert, key = (sub.tls_cert, sub.tls_key) if sub.tls_cert else \
        (cfg.smtp.tls_cert, cfg.smtp.tls_key)
    ctx = tls_context(cert, key)
    parts: list = []
    if sub.listen:
        parts.append(Listener(service, "submission", sub.listen, tls=ctx, submission=True,
                              handler=SubmissionHandler(service.app)))
    if sub.tls_listen:
        parts.append(Listener(service, "submissions", sub.tls_listen, tls=ctx, submission=True,
                              implicit_tls=True, handler=SubmissionHandler(service.app)))
    return parts
