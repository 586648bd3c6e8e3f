"""Is this mail automatic, or from a robot? The one rule (RFC 3834), pure.

Whoever answers mail by itself (command replies, notices to posters, the mailbox
auto-responder, bounce handling) asks here, so the answer is the same everywhere:

- the null sender (a bounce) is automatic;
- a robot sender is automatic: MAILER-DAEMON, postmaster, list and list-manager addresses
  (owner-*, *-request, *-owner, *-approval, *-bounce(s), *-admin, majordomo, listserv ...),
  noreply addresses;
- `Auto-Submitted` other than `no` (RFC 3834 section 5), `Precedence: bulk|list|junk`.

`reason(..., list_mail=True)` also counts mail from a mailing list (`List-Id` and the other
RFC 2369/2919 fields, `X-Loop`, `Mailing-List`) and `X-Auto-Response-Suppress`: what a
personal auto-responder must not answer (RFC 3834 section 2).
"""

from __future__ import annotations

import re
from typing import Any

# Local parts that are programs, never people (Majordomo's $majordomo_dont_reply, widened).
ROBOT_LOCAL = re.compile(
    r"^(mailer-daemon|postmaster|uucp|listserv|listproc|majordomo|majordomo-owner|list|"
    r"noreply|no-reply|donotreply|do-not-reply|bounce|bounces|"
    r"owner-.*|.*-request|.*-owner|.*-approval|.*-admin|.*-bounces?(\+.*)?)$",
    re.IGNORECASE)

LIST_FIELDS = ("List-Id", "List-Unsubscribe", "List-Post", "List-Help", "X-Loop",
               "X-Mailing-List", "Mailing-List")


def header(headers: Any, name: str) -> str:
    """Every value of header `name`, joined ("" if absent or unreadable). Works on
    email.message.Message and posting.message.RawMessage alike."""
    if headers is None:
        return ""
    try:
        values = headers.get_all(name) or []
        return " ".join(str(v) for v in values).strip()
    except Exception:  # a header too broken to parse counts as absent
        return ""


def has(headers: Any, name: str) -> bool:
    """True if header `name` is present at all (even empty)."""
    if headers is None:
        return False
    try:
        return bool(headers.get_all(name))
    except Exception:
        return True  # present, though unreadable


def is_robot(address: str) -> bool:
    """True for an address that is a program's (its local part), never a person's."""
    bare = (address or "").strip().strip("<>")
    local = bare.rpartition("@")[0] or bare
    return bool(ROBOT_LOCAL.match(local))


def reason(mail_from: str, headers: Any = None, *, list_mail: bool = False,
           sender: str = "") -> str | None:
    """Why this mail is automatic (or from a robot), or None for a person's mail.

    `sender` is a second address to check for a robot (e.g. the Reply-To a command reply
    would go to); `headers` may be None when only the envelope is known.
    """
    if not mail_from:
        return "null sender"
    for who in (mail_from, sender):
        if who and is_robot(who):
            return f"robot sender <{who}>"
    auto = header(headers, "Auto-Submitted").lower()
    if auto and auto.split(";", 1)[0].strip() != "no":
        return f"Auto-Submitted: {auto}"
    prec = header(headers, "Precedence").lower()
    if prec in ("bulk", "list", "junk"):
        return f"Precedence: {prec}"
    if list_mail:
        for name in LIST_FIELDS:
            if has(headers, name):
                return f"list mail ({name})"
        if header(headers, "X-Auto-Response-Suppress").lower() in ("all", "oof", "autoreply"):
            return "X-Auto-Response-Suppress"
    return None


def is_automatic(mail_from: str, headers: Any = None) -> bool:
    """Mail that must never get an automatic answer."""
    return reason(mail_from, headers) is not None
