"""Returned mail and delay warnings (RFC 3464), in Sendmail's words.

Pure: rows and bytes in, message bytes out. From `Mail Delivery Subsystem
<MAILER-DAEMON@hostname>`, `Auto-Submitted: auto-generated (failure)`, as
multipart/report; report-type=delivery-status: the human part (templates/<lang>/dsn/), the
message/delivery-status part, and the original (text/rfc822-headers when it is larger than
`return_size_limit`). The caller queues it with the null sender, so it never bounces back.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import format_datetime, make_msgid

from listmgr import clock
from listmgr.config import format_duration
from listmgr.mail.compose import JIS, jis_ok
from listmgr.delivery.queue import EXPIRED, reason_class, subject_class
from listmgr.render import render

WARNING, FAILURE = "warning", "failure"


@dataclass(frozen=True)
class Original:
    queue_id: str
    mail_from: str
    arrival_at: dt.datetime
    received_from: str
    size: int


@dataclass(frozen=True)
class Failed:
    rcpt: str
    status: str
    diagnostic: str
    remote_mta: str = ""
    last_attempt_at: dt.datetime | None = None
    transcript: str = ""  # newline-separated lines


def _date(d: dt.datetime | None) -> str:
    d = d or clock.now()
    return format_datetime(d.replace(tzinfo=dt.timezone.utc), usegmt=True)


def header_block(data: bytes) -> bytes:
    """The original's header section, CRLF, ending with one blank line."""
    data = data.replace(b"\r\n", b"\n")
    end = data.find(b"\n\n")
    head = data if end < 0 else data[:end + 1]
    if not head.endswith(b"\n"):
        head += b"\n"
    return head.replace(b"\n", b"\r\n")


def subject(kind: str, failures: Sequence[Failed], *, language: str, warn_after: float) -> str:
    reason = subject_class(reason_class(f.status, f.diagnostic) for f in failures)
    return render("dsn/subject.txt", language, kind=kind, reason=reason,
                  warn_after=format_duration(warn_after)).strip()


def build(kind: str, original: Original, failures: Sequence[Failed], data: bytes | None, *,
          hostname: str, language: str, warn_after: float, give_up_after: float,
          return_size_limit: int, charset: str = "") -> bytes:
    """The whole returned-mail message as CRLF bytes, ready for enqueue(). With `charset`
    iso-2022-jp, a Japanese text part goes as ISO-2022-JP (7bit), as our other mail does."""
    expired = kind == FAILURE and any(reason_class(f.status, f.diagnostic) == EXPIRED
                                      for f in failures)
    transcript: list[str] = []
    for f in failures:
        lines = [ln for ln in f.transcript.split("\n") if ln] or [f.diagnostic]
        transcript.extend(ln for ln in lines if ln not in transcript[-4:])
        if kind == WARNING or reason_class(f.status, f.diagnostic) == EXPIRED:
            transcript.append(f"<{f.rcpt}>... Deferred: {f.diagnostic}")
    context = dict(
        hostname=hostname,
        arrival=_date(original.arrival_at),
        arrived_at=original.arrival_at,  # for a date said in the text's language
        received_from=original.received_from or "localhost",
        recipients=[{"rcpt": f.rcpt, "reason": f.diagnostic or f.status} for f in failures],
        transcript=transcript,
        expired=expired,
        warn_after=format_duration(warn_after),  # in Sendmail's English lines
        give_up=format_duration(give_up_after),
        give_up_local=format_duration(give_up_after, language),  # in translated prose
        warn_after_local=format_duration(warn_after, language),
    )
    text = render(f"dsn/{kind}.txt", language, **context)
    subj = subject(kind, failures, language=language, warn_after=warn_after)

    # message/delivery-status (RFC 3464 2.2, 2.3)
    now = _date(None)
    status = [f"Reporting-MTA: dns; {hostname}",
              f"X-Queue-ID: {original.queue_id}",
              f"Arrival-Date: {_date(original.arrival_at)}", ""]
    for f in failures:
        status.append(f"Final-Recipient: RFC822; {f.rcpt}")
        if kind == WARNING:
            status.append("Action: delayed")
            status.append(f"Status: {f.status if f.status.startswith('4.') else '4.4.1'}")
        else:
            status.append("Action: failed")
            status.append(f"Status: {f.status or '5.0.0'}")
        if f.remote_mta:
            status.append(f"Remote-MTA: DNS; {f.remote_mta}")
        if f.diagnostic:
            status.append(f"Diagnostic-Code: SMTP; {f.diagnostic}")
        status.append(f"Last-Attempt-Date: {_date(f.last_attempt_at)}")
        if kind == WARNING:
            until = original.arrival_at + dt.timedelta(seconds=give_up_after)
            status.append(f"Will-Retry-Until: {_date(until)}")
        status.append("")
    status_part = "\r\n".join(status).encode("ascii", "replace")

    boundary = f"{original.queue_id}.{secrets.token_hex(6)}/{hostname}"
    if data is not None and len(data) <= return_size_limit:
        orig_type, orig = "message/rfc822", data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    else:
        orig_type, orig = "text/rfc822-headers", header_block(data or b"")
    describe = ("Undelivered Message" if orig_type == "message/rfc822"
                else "Undelivered Message Headers")
    if not orig.endswith(b"\r\n"):
        orig += b"\r\n"

    try:
        text_bytes = text.replace("\n", "\r\n").encode("ascii")
        text_head = "Content-Type: text/plain; charset=us-ascii\r\n" \
                    "Content-Description: Notification\r\n\r\n"
    except UnicodeEncodeError:
        text_bytes, text_head = b"", ""
    if not text_head and charset.lower() == JIS and jis_ok(text):
        text_bytes = text.replace("\n", "\r\n").encode(JIS)
        text_head = f"Content-Type: text/plain; charset={JIS}\r\n" \
                    "Content-Transfer-Encoding: 7bit\r\n" \
                    "Content-Description: Notification\r\n\r\n"
    if not text_head:
        encoded = base64.encodebytes(text.replace("\n", "\r\n").encode("utf-8"))
        text_bytes = encoded.replace(b"\n", b"\r\n")
        text_head = "Content-Type: text/plain; charset=utf-8\r\n" \
                    "Content-Transfer-Encoding: base64\r\n" \
                    "Content-Description: Notification\r\n\r\n"
    headers = [
        f"From: Mail Delivery Subsystem <MAILER-DAEMON@{hostname}>",
        f"To: <{original.mail_from}>",
        f"Subject: {subj}",
        f"Date: {now}",
        f"Message-ID: {make_msgid(domain=hostname)}",
        "Auto-Submitted: auto-generated (failure)",  # RFC 3834: never auto-answered
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
    ]
    out = [
        ("\r\n".join(headers) + "\r\n\r\nThis is a MIME-encapsulated message\r\n\r\n").encode(),
        f"--{boundary}\r\n{text_head}".encode(), text_bytes,
        b"" if text_bytes.endswith(b"\r\n") else b"\r\n",
        f"\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n"
        f"Content-Description: Delivery report\r\n\r\n".encode(), status_part,
        f"\r\n--{boundary}\r\nContent-Type: {orig_type}\r\n"
        f"Content-Description: {describe}\r\n\r\n".encode(),
        orig,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(out)
