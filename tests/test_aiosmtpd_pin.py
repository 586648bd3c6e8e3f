"""listmgr/smtp/server.py subclasses aiosmtpd's protocol and overrides (or calls) private
methods. A new aiosmtpd that changes any of them must fail here, loudly, before it fails
in production: review the override against the new code, then update PINNED."""

from __future__ import annotations

import hashlib
import inspect

import aiosmtpd
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from listmgr.smtp import server

TESTED_MINORS = ("1.4",)  # pyproject: aiosmtpd>=1.4.6,<1.5

# (class, method) -> sha256 of its source (first 16 hex digits), as reviewed.
PINNED = {
    (SMTP, "_handle_client"): "0e4d096403af6c74",   # overridden: connection cap
    (SMTP, "_authenticate"): "4252dad9a1780535",    # overridden: check off the loop
    (SMTP, "_getaddr"): "0aeb21c56ac1260e",         # overridden: trailing dot
    (SMTP, "_reset_timeout"): "fef19b94d28dff31",   # called on every byte
    (SMTP, "_set_rset_state"): "9ff64b71daa68e63",  # called by HELO/EHLO
    (SMTP, "push"): "15f4f1de5e30c337",             # overridden: reply rewriting
    (SMTP, "smtp_EHLO"): "1d91592dd954c4cd",        # wrapped: our EHLO lines
    (SMTP, "smtp_HELO"): "c61e63948c38ce28",        # wrapped: greeting line untouched
    (SMTP, "smtp_DATA"): "3a33f30d3fd6d02f",        # wrapped: concurrent DATA cap
    (SMTP, "auth_PLAIN"): "71fe14c537cc5039",       # wrapped: password check
    (SMTP, "auth_LOGIN"): "f121f6cb809cc2ad",       # wrapped: password check
    (SMTP, "connection_made"): "77a45df5065bba34",  # wrapped: connection count
    (SMTP, "connection_lost"): "d3bf6349bc3c25c1",  # wrapped: connection count
    (SMTP, "data_received"): "e57e2bc9772342e5",    # wrapped: idle timer
    (LMTP, "smtp_LHLO"): "3eccab8208388048",        # wrapped: our LHLO lines
}

# Attributes of aiosmtpd's protocol that server.py reads or writes.
ATTRIBUTES = ("command_size_limits", "command_size_limit", "session", "envelope",
              "transport", "event_handler", "hostname", "data_size_limit", "loop",
              "_timeout_duration", "_tls_protocol")


def _digest(cls, name: str) -> str:
    return hashlib.sha256(inspect.getsource(getattr(cls, name)).encode()).hexdigest()[:16]


def test_aiosmtpd_is_a_tested_minor_version():
    minor = ".".join(aiosmtpd.__version__.split(".")[:2])
    assert minor in TESTED_MINORS, (
        f"aiosmtpd {aiosmtpd.__version__} is not a tested version ({TESTED_MINORS}): "
        "listmgr/smtp/server.py overrides its private methods")


def test_the_private_methods_we_override_are_unchanged():
    changed = [f"{cls.__name__}.{name}" for (cls, name), digest in PINNED.items()
               if _digest(cls, name) != digest]
    assert not changed, (
        f"aiosmtpd changed {', '.join(changed)}, which listmgr/smtp/server.py overrides or "
        "relies on: review the override against the new code, then update PINNED")


def test_every_private_override_is_pinned():
    """A new override of a private aiosmtpd method must be added to PINNED."""
    ours = {name for cls in (server.ListmgrSMTP, server.ListmgrLMTP)
            for klass in cls.__mro__ if klass.__module__ == server.__name__
            for name in vars(klass) if name.startswith("_") and not name.startswith("__")
            and hasattr(SMTP, name) and callable(getattr(SMTP, name))}
    assert {"_handle_client", "_authenticate", "_getaddr"} <= ours  # the checker sees them
    assert ours <= {name for _, name in PINNED}, ours - {name for _, name in PINNED}


def test_the_attributes_we_use_exist():
    proto = SMTP(handler=object(), hostname="x")
    missing = [a for a in ATTRIBUTES if not hasattr(proto, a)]
    assert not missing, f"aiosmtpd protocol lost {missing}"
