"""Notices about posts (held, rejected, expired, administrivia), from templates.

A notice template's first line is the Subject, then a blank line, then the body. Notices
to posters go from the null sender with `Auto-Submitted: auto-replied` (RFC 3834), so a
bounce or an auto-responder can never start a loop; none is sent to the null sender or to
mail that is itself automatic (listmgr.mail.automatic).
"""

from __future__ import annotations

import email
import email.policy
import logging

from listmgr.config import japanese_charset
from listmgr.store.ratelimit import mail_budget_ok
from listmgr.mail import mimelimits
from listmgr.mail.compose import JIS, jis_ok, new_message, to_bytes
from listmgr.render import render
from listmgr.store.outbound import enqueue

# Header fields unfolded (a BOUNCE Subject stays on one line), CRLF line ends.
INLINE_POLICY = email.policy.SMTP.clone(max_line_length=None)

log = logging.getLogger(__name__)


def language(app, mlist) -> str:
    return getattr(mlist, "language", "") or app.config.language


def render_notice(name: str, lang: str, **ctx) -> tuple[str, str]:
    text = render(name, lang, **ctx)
    subject, _, body = text.partition("\n")
    return subject.strip(), body.lstrip("\n")


def send(app, s, *, mlist, to: list[str], template: str, mail_from: str,
         attach: bytes | None = None, inline: bytes | None = None, auto: bool = True,
         limit: bool = False, **ctx) -> None:
    """Render `template` and queue it to `to` (with `limit`, only to addresses still within
    their hourly budget). `attach` adds a message as message/rfc822; `inline` puts it after
    the text, as it came, with the Subject on one line (Majordomo's BOUNCE notice, which
    moderators' `approve` scripts read)."""
    to = [t for t in to if t]
    if limit:
        # The poster's share of the one budget of mails per address per hour (replies,
        # confirmations and notices alike): forged senders get no flood of backscatter.
        allowed = [t for t in to if mail_budget_ok(s, t, app.config.commands.replies_per_hour)]
        if not allowed:
            log.warning("notice %s to %s not sent: rate limit", template, ", ".join(to))
            return
        to = allowed
    if not to:
        return
    domain = app.config.domain
    subject, body = render_notice(template, language(app, mlist), list=mlist.name,
                                  domain=domain, **ctx)
    headers = {"Auto-Submitted": "auto-replied"} if auto else {}
    msg = new_message(from_=f"owner-{mlist.name}@{domain}", to=to, subject=subject,
                      body=body, domain=domain, headers=headers,
                      charset=japanese_charset(app.config))
    if attach is not None:
        if mimelimits.check(attach):
            # Too complex to parse (or for a moderator's reader): sent as opaque bytes.
            msg.add_attachment(attach, maintype="application", subtype="octet-stream",
                               filename="message.eml")
        else:
            inner = email.message_from_bytes(attach, policy=email.policy.default)
            msg.add_attachment(inner)
    if inline is not None:
        # The post as text, never parsed: no MIME limits apply to it here.
        text = inline.replace(b"\r\n", b"\n").decode("utf-8", "replace")
        full = body.rstrip("\n") + "\n\n" + text
        long_lines = any(len(ln) > 900 for ln in full.split("\n"))
        if japanese_charset(app.config) == JIS and not long_lines and not full.isascii() \
                and jis_ok(full):
            msg.set_content(full, charset=JIS, cte="7bit")  # as the other Japanese notices
        else:
            msg.set_content(full, cte="quoted-printable" if long_lines else "8bit")
        del msg["Subject"]
        msg["Subject"] = subject[:900]
        data = msg.as_bytes(policy=INLINE_POLICY)
    else:
        data = to_bytes(msg)
    enqueue(s, app.spool, mail_from=mail_from, recipients=to, data=data,
            origin=f"notice:{mlist.name}")
