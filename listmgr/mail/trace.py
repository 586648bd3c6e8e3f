"""Our hop's trace header (RFC 5321 4.4): `Received: from HELO ([IP]) by HOST (listmgr) with
PROTOCOL id QUEUEID for <RCPT>; DATE`, PROTOCOL as in RFC 3848 (ESMTP, LMTP, ...).

A message gets it once per receipt: over LMTP at the moment it is stored; otherwise when it
is passed on (relay, owners, admins) or put into a mailbox. `has_ours` tells whether the
message already carries it (so a later step does not add a second one).
"""

from __future__ import annotations

import datetime as dt
import re
from email.utils import format_datetime


def received(hostname: str, helo: str, ip: str, queue_id: str, when: dt.datetime,
             protocol: str = "ESMTP", rcpt: str | None = None) -> bytes:
    """The folded, CRLF-terminated header (client-supplied HELO reduced to visible ASCII)."""
    helo = re.sub(r"[^\x21-\x7e]", "", helo or "") or "unknown"
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    text = (f"Received: from {helo} ([{ip}])\r\n"
            f"\tby {hostname} (listmgr) with {protocol} id {queue_id}\r\n")
    text += f"\tfor <{rcpt}>; {format_datetime(when)}\r\n" if rcpt else \
        f"\t; {format_datetime(when)}\r\n"
    return text.encode("ascii", "replace")


def ours_length(data: bytes, hostname: str, queue_id: str) -> int:
    """The length of our Received: for this queue id when it is the message's first header
    (with its line end), else 0."""
    head = data[:2048]
    if not head[:9].lower() == b"received:":
        return 0
    m = re.search(rb"\r?\n(?![ \t])", head)
    if m is None:
        return 0
    first = head[:m.start()]
    if f"by {hostname} (listmgr)".encode() in first and f" id {queue_id}".encode() in first:
        return m.end()
    return 0


def has_ours(data: bytes, hostname: str, queue_id: str) -> bool:
    """True when the message's first header is our Received: for this queue id."""
    return ours_length(data, hostname, queue_id) > 0
