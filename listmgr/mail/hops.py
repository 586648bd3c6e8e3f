"""Hop counting (RFC 5321 section 6.3): how many Received: fields a message carries. Pure.

Ingress refuses a message over MAX_HOPS (a mail loop) and delivery returns one; both count
here, the same way whatever the line ends: the header block ends at the first empty line,
CRLF or bare LF.
"""

from __future__ import annotations

import re

MAX_HOPS = 30  # Received: fields before we call it a loop (sendmail's MaxHopCount is 25)

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_RECEIVED = re.compile(rb"^received[ \t]*:", re.IGNORECASE | re.MULTILINE)


def hop_count(data: bytes) -> int:
    """How many Received: header fields the message's header block holds."""
    if data.startswith((b"\r\n", b"\n")):
        return 0  # no header block at all
    end = _BLANK_LINE.search(data)
    head = data if end is None else data[:end.start() + 1]
    return len(_RECEIVED.findall(head))


def too_many_hops(data: bytes) -> int | None:
    """The hop count when it is over MAX_HOPS, else None."""
    n = hop_count(data)
    return n if n > MAX_HOPS else None
