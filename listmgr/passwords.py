"""Password hashing: argon2id. Verification is constant-time inside argon2."""

from __future__ import annotations

import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Moderate cost: list passwords are checked per command line, keep it well under 50 ms.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when `password` matches; False for a mismatch or an empty/broken hash."""
    if not stored_hash:
        # Spend comparable time so an unset password is not told apart by timing.
        hmac.compare_digest(password.encode(), b"\0" * len(password.encode()))
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
