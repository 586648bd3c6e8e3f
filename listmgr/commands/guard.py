"""Loop and abuse rules for command mail (issue point 7), pure.

No reply to: the null sender, robots (MAILER-DAEMON, *-request, majordomo, listserv, ...),
`Auto-Submitted` other than `no`, `Precedence: bulk|list|junk`, or mail carrying our own
`X-Loop`. The service's own addresses are never requesters and never members.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Callable

from listmgr.mail.addresses import normalise

# Local parts that are programs, never people (Majordomo's $majordomo_dont_reply, widened).
_ROBOT = re.compile(r"^(mailer-daemon|uucp|listserv|listproc|majordomo|majordomo-owner|"
                    r"owner-.*|.*-request|.*-owner|.*-approval|.*-bounces?(\+.*)?|postmaster|"
                    r"noreply|no-reply|donotreply|do-not-reply)$", re.IGNORECASE)

# Local parts of this server's own service addresses (lists are checked separately).
SERVICE_LOCALS = ("majordomo", "majordomo-owner", "owner-majordomo", "postmaster",
                  "mailer-daemon", "root", "abuse", "listserv")


def _header(msg: Message, name: str) -> str:
    try:
        values = msg.get_all(name) or []
        return " ".join(str(v) for v in values)
    except Exception:
        return ""


def x_loop_value(domain: str) -> str:
    return f"majordomo@{domain}"


def refusal(msg: Message, *, mail_from: str, requester: str, domain: str) -> str | None:
    """Why this mail gets no reply at all, or None to go ahead."""
    if not mail_from:
        return "null envelope sender"
    for who in (mail_from, requester):
        local = normalise(who).rpartition("@")[0]
        if _ROBOT.match(local):
            return f"robot sender <{who}>"
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and auto.split(";", 1)[0].strip() != "no":
        return f"Auto-Submitted: {auto}"
    prec = _header(msg, "Precedence").strip().lower()
    if prec in ("bulk", "list", "junk"):
        return f"Precedence: {prec}"
    ours = x_loop_value(domain).lower()
    if ours in _header(msg, "X-Loop").lower():
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
