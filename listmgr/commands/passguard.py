"""Password guessing by mail: failed list and site password checks are counted.

Per list (or the site password) and per requester, in a one-hour window kept in the store.
Once either reaches MAX_FAILURES, passwords are no longer checked at all (the answer is
"invalid", whatever was given) until the window ends, and the list's owners (the site
admins for the site password) are told once. Within one mail, the first failed check ends
the checking: later password commands of that mail are answered as invalid unchecked, so
one mail cannot carry 100 guesses.
"""

from __future__ import annotations

import logging

from listmgr.store import ratelimit
from listmgr.mail.addresses import normalise

log = logging.getLogger(__name__)

MAX_FAILURES = 5
WINDOW = 3600.0
SITE = "*site*"  # the target name used for the site password


def _target_key(target: str) -> str:
    return f"pwfail:list:{target}"


def _requester_key(address: str) -> str:
    return f"pwfail:req:{normalise(address)}"


def blocked(s, target: str, requester: str) -> bool:
    """Whether checks for `target` (a list name or SITE) by `requester` are suspended."""
    return ratelimit.peek(s, _target_key(target), window=WINDOW) >= MAX_FAILURES or \
        ratelimit.peek(s, _requester_key(requester), window=WINDOW) >= MAX_FAILURES


def failed(s, target: str, requester: str) -> bool:
    """Count one failed check; True when this failure suspends checks for `target` (the
    moment to tell its owners, once per window)."""
    n = ratelimit.bump(s, _target_key(target), window=WINDOW)
    ratelimit.bump(s, _requester_key(requester), window=WINDOW)
    log.warning("password check failed target=%s requester=<%s> failures=%d", target,
                requester, n)
    return n == MAX_FAILURES
