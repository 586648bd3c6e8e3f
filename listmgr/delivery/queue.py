"""Queue policy, pure: backoff, outcome classification, grouping into transactions.

No I/O here: the worker feeds in replies and rows and gets decisions back, so every rule is
tested without sockets or a database.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from listmgr.mail.addresses import validate_address  # noqa: F401 (smtpclient's)

# The queue's vocabulary lives with the store, which writes it; re-exported for delivery.
from listmgr.store.outbound_types import (  # noqa: F401
    DEFERRED, FAILED, SENT, Item, Outcome, backoff, next_attempt)

__all__ = ["DEFERRED", "FAILED", "SENT", "Item", "Outcome", "backoff", "next_attempt",
           "validate_address", "Reply", "Transaction", "plan", "reason_class", "subject_class",
           "USER_UNKNOWN", "HOST_UNKNOWN", "LOCAL_CONFIG", "OTHER", "EXPIRED"]

# Subject classes of returned mail (dsn.py renders each as Sendmail words it).
USER_UNKNOWN = "user-unknown"
HOST_UNKNOWN = "host-unknown"
LOCAL_CONFIG = "local-config"
OTHER = "other"
EXPIRED = "expired"

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(slots=True)
class Reply:
    """An SMTP reply as received: code and text (lines joined with newlines)."""

    code: int
    text: str = ""

    @property
    def status(self) -> str:
        """The RFC 3463 status: from the reply's enhanced code, else implied by the code."""
        return _status(self.code, self.text)

    @property
    def outcome(self) -> str:
        if 200 <= self.code < 300:
            return SENT
        if 500 <= self.code < 600:
            return FAILED
        return DEFERRED  # 4xx, and anything odd: never lose mail on a strange reply

    def line(self) -> str:
        """One line, as Sendmail quotes it: `550 5.1.1 <x>... User unknown`."""
        text = " ".join(self.text.split())
        return f"{self.code} {text}".rstrip()


@functools.lru_cache(maxsize=256)
def _status(code: int, text: str) -> str:
    m = _ENHANCED.match(text)
    if m and m.group(1) == str(code)[0]:
        return f"{m.group(1)}.{m.group(2)}.{m.group(3)}"
    first = str(code)[0]
    return {"2": "2.0.0", "4": "4.0.0", "5": "5.0.0"}.get(first, "4.0.0")


def reason_class(status: str, diagnostic: str) -> str:
    """Which `Returned mail:` subject a failure calls for."""
    if status == "5.1.1" or "user unknown" in diagnostic.lower():
        return USER_UNKNOWN
    if status in ("5.1.2", "5.1.10"):
        return HOST_UNKNOWN
    if status in ("5.3.5", "5.4.6"):
        return LOCAL_CONFIG
    if status.startswith("4."):
        return EXPIRED  # a temporary failure that ran out of time
    return OTHER


def subject_class(classes: Iterable[str]) -> str:
    """One class when every failure shares it, else OTHER (`see transcript for details`)."""
    found = set(classes)
    if len(found) == 1:
        only = found.pop()
        return only if only != EXPIRED else OTHER
    return OTHER




# --------------------------------------------------------------------------- grouping

@dataclass(slots=True)
class Transaction:
    """One SMTP transaction: one message to up to max_recipients_per_transaction rcpts
    that share their parts (envelope sender, header lines put on top)."""

    route: str
    message_id: int
    items: list[Item] = field(default_factory=list)
    mail_from: str | None = None
    head: bytes = b""
    # A group: transactions of one message with their own parts (one recipient each with
    # VERP), sent back to back on one connection and marked together; `items` holds all
    # their recipients in order.
    group: list["Transaction"] | None = None


def plan(items: Sequence[Item], *, route_of, per_transaction: int,
         per_group: int | None = None) -> dict[str, list[Transaction]]:
    """Group claimed recipients by route, then by message, into transactions.

    `route_of(domain)` names the destination (the smarthost, or the recipient's domain);
    recipients sharing a message, a route and their parts share transactions of at most
    `per_transaction`; transactions with their own parts go in groups of up to `per_group`
    recipients (default `per_transaction`). Returns {route: [transactions]} in claim order.
    """
    per_transaction = max(1, per_transaction)
    open_tx: dict[tuple, Transaction] = {}
    routes: dict[str, list[Transaction]] = {}
    for it in items:
        route = route_of(it.domain)
        key = (route, it.message_id, it.mail_from, it.head)
        tx = open_tx.get(key)
        if tx is None or len(tx.items) >= per_transaction:
            tx = open_tx[key] = Transaction(route, it.message_id, mail_from=it.mail_from,
                                            head=it.head)
            routes.setdefault(route, []).append(tx)
        tx.items.append(it)
    per_group = max(1, per_group or per_transaction)
    return {route: _grouped(route, txs, per_group) for route, txs in routes.items()}


def _grouped(route: str, txs: list[Transaction], per_group: int) -> list[Transaction]:
    """Consecutive transactions of one message with their own parts become groups of up to
    `per_group` recipients; transactions with the message's shared parts stay as they are."""
    out: list[Transaction] = []
    for tx in txs:
        if tx.mail_from is None and not tx.head:
            out.append(tx)
            continue
        last = out[-1] if out else None
        if last is not None and last.group is not None and last.message_id == tx.message_id \
                and len(last.items) + len(tx.items) <= per_group:
            last.group.append(tx)
            last.items.extend(tx.items)
        else:
            out.append(Transaction(route, tx.message_id, items=list(tx.items), group=[tx]))
    return out
