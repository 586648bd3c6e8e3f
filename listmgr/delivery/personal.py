"""Per-recipient parts of a list post, computed at send time: pure.

A post is stored once. When its outbound message names a list (`personal`), each member's
copy gets, at send time, its own envelope sender (VERP, listmgr.mail.verp) and its own
header lines put on top of the shared bytes (RFC 8058 one-click List-Unsubscribe with the
member's token when `[web] base_url` is set). Recipients whose parts are equal still share
one SMTP transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from listmgr import unsubscribe
from listmgr.mail import verp
from listmgr.store.bounces import MemberInfo

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
