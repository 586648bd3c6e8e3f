"""Loop and abuse rules for command mail, pure.

No reply to automatic mail or robots (listmgr.mail.automatic: the null sender,
MAILER-DAEMON, *-request, majordomo, ..., `Auto-Submitted`, `Precedence: bulk|list|junk`),
nor to mail carrying our own `X-Loop`. The service's own addresses are never requesters and never members.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Callable

from listmgr.mail import automatic
from listmgr.mail.addresses import normalise

# Local parts of this server's own service addresses (lists are checked separately).
SERVICE_LOCALS = ("majordomo", "majordomo-owner", "owner-majordomo", "postmaster",
                  "mailer-daemon", "root", "abuse", "listserv")


def x_loop_value(domain: str) -> str:
    return f"majordomo@{domain}"


def refusal(msg: Message, *, mail_from: str, requester: str, domain: str) -> str | None:
    """Why this mail gets no reply at all, or None to go ahead."""
    why = automatic.reason(mail_from, msg, sender=requester)
    if why is not None:
        return why
    ours = x_loop_value(domain).lower()
    if ours in automatic.header(msg, "X-Loop").lower():
        return "X-Loop: ours"
    return None


def canonical_address(address: str) -> tuple[str, str]:
    """(local part, domain) as a mail server would deliver it: lower case, a quoted local
    part unquoted (`"lista"` is `lista`, RFC 5321 4.1.2), no trailing dot on the domain."""
    addr = normalise(address)
    local, at, dom = addr.rpartition("@")
    if not at:
        return addr, ""
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    return local.strip(), dom.strip().rstrip(".")


def is_service_address(address: str, *, local_domains: tuple[str, ...],
                       has_list: Callable[[str], bool] = lambda name: False) -> bool:
    """True for any address this server itself answers (majordomo@, LIST@, LIST-request@,
    owner-LIST@, postmaster@ ...), in any spelling that reaches it: quoted, any case, a
    trailing dot on the domain."""
    local, dom = canonical_address(address)
    if dom not in local_domains:
        return False
    if local in SERVICE_LOCALS or local.startswith("owner-") or has_list(local):
        return True
    for suffix in ("-request", "-owner", "-approval", "-bounces", "-outgoing", "-digest"):
        if local.endswith(suffix):
            return True
    return False
