"""One-click unsubscribe tokens (RFC 8058): per member and list, unforgeable, and dead once
the member leaves or rejoins.

A token is the member row's id and an HMAC over (list, address key, id) with the site
secret, base64url without padding. Unsubscribing deletes the member row and rejoining makes a
new one with a new id, so an old token names a row that no longer matches. Checking a token
is two steps: `member_id_of(token)` says which row to load, then `verify(...)` with that
row's list name and address key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct

_MAC_BYTES = 16
_ID = struct.Struct(">Q")
TOKEN_LENGTH = len(base64.urlsafe_b64encode(b"\0" * (_ID.size + _MAC_BYTES)).rstrip(b"="))


def _mac(secret: bytes, list_name: str, address_key: str, member_id: int) -> bytes:
    msg = b"\0".join((b"unsubscribe", list_name.lower().encode("utf-8"),
                      address_key.lower().encode("utf-8"), str(member_id).encode("ascii")))
    return hmac.new(secret, msg, hashlib.sha256).digest()[:_MAC_BYTES]


def token(secret: bytes, list_name: str, address_key: str, member_id: int) -> str:
    raw = _ID.pack(member_id) + _mac(secret, list_name, address_key, member_id)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(tok: str) -> bytes | None:
    if not isinstance(tok, str) or len(tok) != TOKEN_LENGTH or not tok.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == _ID.size + _MAC_BYTES else None


def member_id_of(tok: str) -> int | None:
    """The member row a well-formed token names (not yet verified), else None."""
    raw = _decode(tok)
    return None if raw is None else _ID.unpack(raw[:_ID.size])[0]


def verify(secret: bytes, tok: str, list_name: str, address_key: str) -> bool:
    """True when `tok` was made by this site for this list, address and member row."""
    raw = _decode(tok)
    if raw is None:
        return False
    member_id = _ID.unpack(raw[:_ID.size])[0]
    return hmac.compare_digest(raw[_ID.size:], _mac(secret, list_name, address_key, member_id))
