"""The outbound queue's vocabulary, shared by the store (which writes it) and delivery.

A claimed recipient (`Item`), what became of it in one attempt (`Outcome` with SENT,
DEFERRED or FAILED), and the retry schedule (`backoff`, `next_attempt`). Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

SENT, DEFERRED, FAILED = "sent", "deferred", "failed"


def backoff(attempts: int, minimum: float, maximum: float) -> float:
    """Seconds until the next try after `attempts` failed tries (Postfix: 300 s doubling to
    4,000 s)."""
    if attempts <= 1:
        return min(minimum, maximum)
    return min(minimum * (2 ** min(attempts - 1, 32)), maximum)


def next_attempt(now: dt.datetime, attempts: int, minimum: float, maximum: float,
                 deadline: dt.datetime) -> dt.datetime:
    """When to try again; never later than the give-up deadline, so the give-up is on time."""
    return min(now + dt.timedelta(seconds=backoff(attempts, minimum, maximum)), deadline)


@dataclass(slots=True)
class Outcome:
    """What became of one recipient in one attempt."""

    rid: int
    result: str                      # SENT | DEFERRED | FAILED
    status: str = ""                 # RFC 3463
    diagnostic: str = ""             # the remote's reply line, or our own reason
    remote_mta: str = ""
    transcript: tuple[str, ...] = ()  # `>>> RCPT To:<x>` / `<<< 550 ...` lines


@dataclass(slots=True)
class Item:
    """A claimed recipient row."""

    rid: int
    message_id: int
    rcpt: str
    domain: str
    attempts: int
    # Per-recipient parts (listmgr.delivery.personal): None = the message's own sender.
    mail_from: str | None = None
    head: bytes = b""
