"""Per-recipient parts of a list post, computed at send time: pure.

A post is stored once. When its outbound message names a list (`personal`), each member's
copy gets, at send time, its own envelope sender (VERP, listmgr.mail.verp) and its own
header lines put on top of the shared bytes (RFC 8058 one-click List-Unsubscribe with the
member's token when `[web] base_url` is set). Recipients whose parts are equal still share
one SMTP transaction.

Copies with lines of their own are DKIM-signed per copy (RFC 8058 section 3: the signature
must cover List-Unsubscribe and List-Unsubscribe-Post): `shared_payload` takes our enqueue
signature off the shared bytes once per message, `final_head` puts each copy's signature
above its own lines (listmgr.mail.dkim_copies).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from listmgr import unsubscribe
from listmgr.mail import verp
from listmgr.mail.dkim import Signer
from listmgr.mail.dkim_copies import CopySigner
from listmgr.store.bounces import MemberInfo

log = logging.getLogger(__name__)

VERP_MODES = ("off", "probes", "on")


@dataclass(frozen=True)
class ListParts:
    """How one list's copies are made personal."""

    name: str
    domain: str
    verp: str                 # off | probes | on
    base_url: str = ""
    secret: bytes = b""
    base: str = ""  # local part of the list's sender, when not owner-LIST

    @property
    def adds_lines(self) -> bool:
        """Whether every copy gets header lines of its own (so it is signed per copy)."""
        return bool(self.base_url)

    @property
    def needs_members(self) -> bool:
        """Whether the parts depend on the member row (so it must be looked up)."""
        return bool(self.base_url) or self.verp == "probes"

    def parts(self, rcpt: str, member: MemberInfo | None) -> tuple[str | None, bytes]:
        """(envelope sender or None for the message's own, header bytes to prepend)."""
        mail_from: str | None = None
        if self.verp == "on" or (self.verp == "probes" and member is not None
                                 and member.bounce_score > 0):
            addr = verp.encode(self.name, rcpt, self.domain, self.base)
            if verp.fits(addr):
                mail_from = addr
        head = b""
        if self.base_url:
            mailto = f"<mailto:{self.name}-request@{self.domain}?subject=unsubscribe>"
            if member is not None and self.secret:
                tok = unsubscribe.token(self.secret, self.name, member.key, member.id)
                value = f"<{self.base_url.rstrip('/')}/u/{tok}>,\r\n {mailto}"
                head = (f"List-Unsubscribe: {value}\r\n"
                        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n").encode("ascii")
            else:
                head = f"List-Unsubscribe: {mailto}\r\n".encode("ascii")
        return mail_from, head


def shared_payload(signer: Signer | None, parts: ListParts | None, payload: bytes
                   ) -> tuple[bytes, CopySigner | None]:
    """The bytes every copy of a message shares (`payload` prepared: CRLF, dot-stuffed) and
    the signer of each copy. When the copies get lines of their own and the message carries
    our enqueue signature, that signature comes off the shared bytes: each copy gets its
    own, over the same fields plus its lines. Otherwise the payload as stored, and None."""
    if signer is None or parts is None or not parts.adds_lines:
        return payload, None
    try:
        copy_signer, shared = signer.for_copies(payload)
    except Exception as exc:  # a bug or an odd key: the copies keep the enqueue signature
        log.warning("list %s: copies not signed per recipient: %s", parts.name, exc)
        return payload, None
    return shared, copy_signer


def final_head(copy_signer: CopySigner | None, head: bytes) -> bytes:
    """The header lines a copy gets on top of the shared bytes: its DKIM-Signature field(s)
    when its message is signed per copy, then its own lines (`head`)."""
    if copy_signer is None:
        return head
    try:
        return copy_signer.fields(head) + head
    except Exception as exc:  # a bug: the copy leaves unsigned rather than not at all
        log.warning("copy not DKIM-signed: %s", exc)
        return head
