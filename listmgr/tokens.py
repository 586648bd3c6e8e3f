"""Single-use, expiring confirmation tokens (subscribe/unsubscribe auth, held posts, newlist).

The secret is random (16 bytes, shown as 32 hex digits); only its SHA-256 is stored, so a
database leak reveals no usable key. `consume` marks a token used in the caller's
transaction, so it works exactly once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from listmgr.store import tokens as repo
from listmgr.store.db import Session
from listmgr.store.models import Token, utcnow


class TokenError(Exception):
    """Unknown, used or expired; `reason` is 'unknown', 'used' or 'expired'."""

    def __init__(self, reason: str, token: Token | None = None):
        super().__init__(reason)
        self.reason = reason
        self.token = token


@dataclass(frozen=True)
class Issued:
    secret: str
    token: Token


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.strip().lower().encode()).hexdigest()


def issue(s: Session, kind: str, *, lifetime: float, list_name: str = "", address: str = "",
          payload: dict[str, Any] | None = None) -> Issued:
    secret = secrets.token_hex(16)
    now = utcnow()
    tok = Token(token_hash=_digest(secret), kind=kind, list_name=list_name, address=address,
                payload=json.dumps(payload or {}), created_at=now,
                expires_at=now + dt.timedelta(seconds=lifetime))
    s.add(tok)
    s.flush()
    return Issued(secret, tok)


def lookup(s: Session, secret: str) -> Token | None:
    return repo.token_by_hash(s, _digest(secret))


def consume(s: Session, secret: str, *, kind: str | None = None) -> Token:
    """Mark the token used and return it; TokenError if unknown, used or expired."""
    tok = lookup(s, secret)
    if tok is None or (kind is not None and tok.kind != kind):
        raise TokenError("unknown")
    if tok.used_at is not None:
        raise TokenError("used", tok)
    if tok.expires_at <= utcnow():
        raise TokenError("expired", tok)
    tok.used_at = utcnow()
    return tok


def payload(tok: Token) -> dict[str, Any]:
    return json.loads(tok.payload or "{}")


def purge_expired(s: Session, *, keep: float = 7 * 86400) -> int:
    """Delete tokens expired more than `keep` seconds ago."""
    cutoff = utcnow() - dt.timedelta(seconds=keep)
    return repo.delete_expired_before(s, cutoff)
