"""Building outgoing messages: replies, notices and forwards, as canonical CRLF bytes."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

# What we put on the wire: CRLF, lines folded at 78, 8-bit-safe encodings chosen by email.
SMTP_POLICY = email.policy.SMTP.clone(max_line_length=78)


def new_message(*, from_: str, to: str | list[str], subject: str, body: str,
                domain: str, headers: dict[str, str] | None = None,
                in_reply_to: str | None = None, references: str | None = None) -> EmailMessage:
    """A text/plain message with Date and Message-ID; charset chosen by content."""
    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = from_
    msg["To"] = to if isinstance(to, str) else ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=domain)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = (references + " " if references else "") + in_reply_to
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return msg


def to_bytes(msg: EmailMessage) -> bytes:
    """Serialise with CRLF line ends."""
    return msg.as_bytes(policy=SMTP_POLICY)


def normalise_line_ends(data: bytes) -> bytes:
    """Bare LF and bare CR become CRLF (stored and sent canonically)."""
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
