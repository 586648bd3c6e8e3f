"""Mail the command processor sends: the reply, confirmations, welcomes, owner notices.

Every message leaves through listmgr.store.outbound.enqueue in the command's transaction,
with `X-Loop` and `Auto-Submitted` so that robots (ours included) never answer it, and a
body starting with Majordomo's `--` line, which ends command processing if the message is
ever mailed back to a command address. Mail to third parties is rate-limited per address.
"""

from __future__ import annotations

import logging

from listmgr.commands.guard import x_loop_value
from listmgr.mail.compose import new_message, to_bytes
from listmgr.store.outbound import enqueue
from listmgr.store.ratelimit import MAIL_BUDGET_PREFIX as RATE_PREFIX, mail_budget_ok

log = logging.getLogger(__name__)



def rate_ok(ctx, address: str) -> bool:
    """Count one message to `address`; False once it had `replies_per_hour` this hour."""
    return rate_ok_requester(ctx.app, ctx.s, address)


def rate_ok_requester(app, s, address: str) -> bool:
    return mail_budget_ok(s, address, app.config.commands.replies_per_hour)


def send(ctx, *, to: str | list[str], subject: str, body: str, envelope: str | None = None,
         reply: bool = False, limit: bool = False, origin: str = "command",
         extra: dict[str, str] | None = None) -> bool:
    """Queue one message; returns False when it was not sent because of the rate limit."""
    recipients = [to] if isinstance(to, str) else list(to)
    recipients = [r for r in recipients if r]
    if not recipients:
        return False
    if limit:
        recipients = [r for r in recipients if rate_ok(ctx, r)]
        if not recipients:
            log.warning("command mail to %s not sent: rate limit", to)
            return False
    headers = {"X-Loop": x_loop_value(ctx.domain),
               "Auto-Submitted": "auto-replied" if reply else "auto-generated"}
    if reply:
        headers["Reply-To"] = ctx.whoami
    headers.update(extra or {})
    if not body.startswith("--\n"):
        body = "--\n\n" + body
    msg = new_message(from_=ctx.whoami, to=recipients, subject=subject, body=body,
                      domain=ctx.domain, headers=headers,
                      in_reply_to=(ctx.req.message_id or None) if reply else None,
                      references=(ctx.req.references or None) if reply else None)
    enqueue(ctx.s, ctx.app.spool, mail_from=envelope if envelope is not None
            else ctx.whoami_owner, recipients=recipients, data=to_bytes(msg), origin=origin)
    return True


def results_subject(ctx) -> str:
    subject = " ".join((ctx.req.subject or "").split())
    return ctx.t("subject_results", subject=subject[:40])
