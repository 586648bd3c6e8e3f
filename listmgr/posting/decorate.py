"""What members receive: the post with the list's headers, prefix, fronter and footer.

Header removals follow Majordomo's resend (reference 5.1 points 4, 5, 9); added on top are
what Majordomo lacked: List-Id (RFC 2919), List-Help/-Subscribe/-Unsubscribe/-Post/-Owner
(RFC 2369), List-Unsubscribe-Post (RFC 8058) and X-Loop. The body is left as it came unless
the list has a fronter or footer, which are added MIME-safely: appended to a single plain
text part when that is byte-safe, otherwise as parts of their own; a signed or encrypted
message is wrapped whole in multipart/mixed, so its signature still verifies.
"""

from __future__ import annotations

import email.policy
import itertools
import re
import secrets
from dataclasses import dataclass
from email.header import Header
from email.headerregistry import Address
from email.message import Message
from email.utils import getaddresses

from listmgr import __version__
from listmgr.listconfig import sender_header
from listmgr.posting.message import RawMessage, decode_words

# Removed from every post (reference 5.1 point 4), plus our own kinds of header that came
# from elsewhere (another list's List-*, any Approved).
ALWAYS_REMOVED = ("x-confirm-reading-to", "disposition-notification-to", "x-ack", "sender",
                  "return-receipt-to", "errors-to", "flags", "x-pmrqc", "return-path",
                  "encoding", "approved", "approve", "list-id", "list-help", "list-subscribe",
                  "list-unsubscribe", "list-unsubscribe-post", "list-post", "list-owner",
                  "list-archive")
_REMOVED_PREFIXES = ("resent-", "priority")
_CONTENT_HEADERS = ("content-type", "content-transfer-encoding", "content-disposition",
                    "content-description", "content-id", "content-md5", "content-language")


@dataclass(frozen=True)
class ListInfo:
    """The list facts decoration needs (plain values, no store)."""

    name: str
    domain: str
    description: str = ""
    subject_prefix: str = ""
    reply_to: str = ""
    precedence: str = "bulk"
    purge_received: bool = False
    message_headers: str = ""
    message_fronter: str = ""
    message_footer: str = ""
    post_policy: str = "members"
    base_url: str = ""
    dmarc_mitigation: str = "munge_from"
    dmarc_when: str = "quarantine"
    sender: str = ""  # the Sender: header (`sender` at `resend_host`); "" owner-LIST@domain

    @classmethod
    def of(cls, mlist, config) -> "ListInfo":
        return cls(name=mlist.name, domain=config.domain, description=mlist.description,
                   subject_prefix=mlist.subject_prefix, reply_to=mlist.reply_to,
                   precedence=mlist.precedence, purge_received=mlist.purge_received,
                   message_headers=mlist.message_headers,
                   message_fronter=mlist.message_fronter, message_footer=mlist.message_footer,
                   post_policy=mlist.post_policy, base_url=config.web.base_url,
                   dmarc_mitigation=mlist.dmarc_mitigation, dmarc_when=mlist.dmarc_when,
                   sender=sender_header(mlist, config.domain))

    @property
    def address(self) -> str:
        return f"{self.name}@{self.domain}"

    @property
    def owner(self) -> str:
        return f"owner-{self.name}@{self.domain}"

    @property
    def sender_field(self) -> str:
        """The Sender: header: the list's `sender` at `resend_host` (Majordomo's resend)."""
        return self.sender or self.owner

    @property
    def changes_posts(self) -> bool:
        """Whether decoration can break a poster's DKIM signature (subject, body or a
        replaced Reply-To); a list that only adds header fields does not."""
        return bool(self.subject_prefix.strip() or self.message_fronter.strip()
                    or self.message_footer.strip() or self.reply_to)


def expand(text: str, *, list_name: str, sender: str = "", seq: int | None = None) -> str:
    """Majordomo's substitutions (reference 5.5) plus $SEQ; `\\$` escapes a dollar."""
    marker = "\0DOLLAR\0"
    text = text.replace("\\$", marker)
    text = text.replace("$LIST", list_name).replace("$SENDER", sender)
    text = text.replace("$VERSION", __version__)
    text = text.replace("$SEQ", f"{seq:05d}" if seq is not None else "")
    return text.replace(marker, "$")


# --------------------------------------------------------------------------- subject

_REPLY = re.compile(r"^\s*((re|aw|sv)(\[\d+\])?\s*:\s*)+", re.I)


def prefix_pattern(template: str, list_name: str) -> re.Pattern[str]:
    """Matches the expanded prefix with any sequence number (to find an old one)."""
    parts = re.split(r"(\$LIST|\$SEQ|\$SENDER|\$VERSION)", template)
    out = []
    for p in parts:
        if p == "$LIST":
            out.append(re.escape(list_name))
        elif p == "$SEQ":
            out.append(r"\d+")
        elif p in ("$SENDER", "$VERSION"):
            out.append(r".*?")
        else:
            out.append(re.escape(p.replace("\\$", "$")))
    return re.compile("".join(out), re.I)


def prefixed_subject(subject: str, template: str, *, list_name: str, sender: str = "",
                     seq: int | None = None) -> str:
    """Majordomo's rule (reference 5.1): when the expanded prefix appears anywhere in the
    Subject (literally, case-sensitively) the Subject stays as it is (`Re: [demo] x` stays);
    otherwise the prefix goes in front. A `$SEQ` prefix (ours) carries a changing number:
    an old one is taken out and the new one put in front, `Re:` kept once."""
    prefix = expand(template, list_name=list_name, sender=sender, seq=seq).strip()
    if not prefix:
        return subject
    if "$SEQ" not in template:
        return subject if prefix in subject else f"{prefix} {subject.strip()}".rstrip()
    pat = prefix_pattern(template.strip(), list_name)
    had_prefix = bool(pat.search(subject))
    rest = pat.sub("", subject) if had_prefix else subject
    rest = re.sub(r"\s+", " ", rest).strip()
    m = _REPLY.match(rest)
    if m:
        rest = "Re: " + rest[m.end():].lstrip()
    return f"{prefix} {rest}".rstrip()


def encode_value(name: str, value: str) -> str:
    """A header field body: as is when ASCII and short, else RFC 2047 words, folded."""
    if value.isascii() and len(value) + len(name) < 900 and "\n" not in value:
        return value
    return Header(value, "utf-8", header_name=name).encode(linesep="\r\n")


# --------------------------------------------------------------------------- headers

def list_headers(info: ListInfo) -> list[tuple[str, str]]:
    """RFC 2919 / 2369 / 8058 fields for the list."""
    admin = f"majordomo@{info.domain}"
    desc = info.description.strip()
    list_id = f"<{info.name}.{info.domain}>"
    if desc and not desc.isascii():
        # Only the phrase is encoded (RFC 2047 section 5(3)); the id stays readable.
        list_id = Header(desc, "utf-8").encode() + " " + list_id
    elif desc:
        phrase = desc if re.fullmatch(r"[A-Za-z0-9 !#$%&'*+/=?^_`{|}~-]+", desc) else \
            '"' + desc.replace("\\", "\\\\").replace('"', '\\"') + '"'
        list_id = f"{phrase} {list_id}"
    out = [
        ("List-Id", list_id),
        ("List-Help", f"<mailto:{admin}?body=help>"),
        ("List-Subscribe", f"<mailto:{admin}?body=subscribe%20{info.name}>"),
    ]
    if not info.base_url:
        # With a base URL each member's copy gets its own one-click List-Unsubscribe and
        # List-Unsubscribe-Post at send time (listmgr.delivery.personal).
        out.append(("List-Unsubscribe", f"<mailto:{admin}?body=unsubscribe%20{info.name}>"))
    if info.post_policy == "announce":
        out.append(("List-Post", "NO (posting not allowed on this list)"))
    else:
        out.append(("List-Post", f"<mailto:{info.address}>"))
    out.append(("List-Owner", f"<mailto:{info.owner}>"))
    return out


def decorate(msg: RawMessage, info: ListInfo, *, seq: int | None = None,
             mitigation: str = "none") -> bytes:
    """The bytes every member receives. `msg` is changed in place.

    `mitigation` (listmgr.posting.mitigation decides it): "munge_from" puts the list's
    address in From:, "wrap" sends the post unchanged as a message/rfc822 attachment of a
    message from the list; so the list's own DKIM signature is the aligned one.
    """
    sender = ", ".join(msg.get_all("from"))
    original_from = _single_from(msg)
    if original_from is None:
        mitigation = "none"
    if mitigation == "wrap" and original_from is not None:
        msg = wrapped(msg, info, original_from)
    msg.remove(*ALWAYS_REMOVED)
    msg.remove_if(lambda n: n.startswith(_REMOVED_PREFIXES))
    if info.precedence:
        msg.remove("precedence")
    if info.purge_received:
        msg.remove("received")
    if info.reply_to:
        poster_reply = msg.get_all("reply-to") or msg.get_all("from")
        msg.remove("reply-to")

    if info.subject_prefix and msg.has("subject"):
        subject = msg.get("subject")
        new = prefixed_subject(subject, info.subject_prefix, list_name=info.name,
                               sender=sender, seq=seq)
        raw = msg.raw_values("subject")[0].strip()
        if new == subject:
            pass  # the prefix is already there: the field stays as it came
        elif "$SEQ" not in info.subject_prefix and new.endswith(subject.strip()) \
                and new[:len(new) - len(subject.strip())].isascii() and raw:
            # As Majordomo: the raw field starts with the literal prefix; only what
            # follows it may be encoded (the poster's own encoded words, kept as sent).
            head = new[:len(new) - len(subject.strip())]
            msg.replace("Subject", head.encode("ascii") + raw)
        else:
            msg.replace("Subject", encode_value("Subject", new))

    msg.add("Sender", info.sender_field)
    if info.precedence:
        msg.add("Precedence", info.precedence)
    if info.reply_to:
        value = ", ".join(poster_reply) if info.reply_to.upper() == "$SENDER" \
            else expand(info.reply_to, list_name=info.name, sender=sender, seq=seq)
        if value and "@" not in value:
            value = f"{value}@{info.domain}"  # Majordomo's bare `LIST` form
        if value:
            msg.add("Reply-To", encode_value("Reply-To", value))
    for line in info.message_headers.split("\n"):
        line = expand(line, list_name=info.name, sender=sender, seq=seq).strip()
        m = re.match(r"^([!-9;-~]+):\s*(.*)$", line)
        if m and m.group(2):
            msg.add(m.group(1), encode_value(m.group(1), m.group(2)))
    if mitigation == "munge_from" and original_from is not None:
        munge_from(msg, info, original_from)
    if mitigation in ("munge_from", "wrap") and original_from is not None:
        keep_poster_reachable(msg, info, original_from)
    for name, value in list_headers(info):
        msg.add(name, value)
    msg.add("X-Loop", info.address)

    fronter = expand(info.message_fronter, list_name=info.name, sender=sender, seq=seq)
    footer = expand(info.message_footer, list_name=info.name, sender=sender, seq=seq)
    if fronter.strip() or footer.strip():
        add_fronter_footer(msg, fronter if fronter.strip() else "",
                           footer if footer.strip() else "")
    return msg.to_bytes()


# --------------------------------------------------------------------------- DMARC

_SMTP = email.policy.SMTP.clone(max_line_length=78)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n[ \t])|(?<!\r)\n")
MAX_NAME = 200
# Kept on the wrapper of a wrapped post (the rest stays inside, in the original).
_WRAP_KEEP = ("to", "cc", "subject", "date", "message-id", "in-reply-to", "references")


def _single_from(msg: RawMessage) -> tuple[str, str, bytes] | None:
    """(display name decoded, address, raw field body) of the post's one From: address."""
    raws = msg.raw_values("from")
    if len(raws) != 1:
        return None
    raw = raws[0]
    text = raw.decode("utf-8", "replace").replace("\r\n", "")
    pairs = [(n, a) for n, a in getaddresses([text]) if a]
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        return None
    name, addr = pairs[0]
    # Control characters (an encoded word may hide them) never reach a header we write.
    name = " ".join(_CONTROL.sub(" ", decode_words(name)).split())[:MAX_NAME]
    raw = raw.strip()
    if not raw.isascii() or _RAW_CONTROL.search(raw) or _CONTROL.search(decode_words(text)):
        # Raw 8-bit, or control characters (also encoded ones): what we write is clean.
        raw = _address_field("Reply-To", name, addr).encode("ascii")
    return name, addr, raw


def _address_field(field: str, name: str, address: str) -> str:
    """`Name <address>` as a folded field body (RFC 2047 words when not ASCII); the bare
    address when the name cannot be written."""
    try:
        header = _SMTP.header_factory(field, Address(display_name=name, addr_spec=address))
        return _SMTP.fold(field, header)[len(field) + 1:].strip()
    except Exception:  # the email package's errors for names it cannot quote
        return f"<{address}>"


def via_from(info: ListInfo, name: str, address: str) -> str:
    """`"Name via LIST" <LIST@domain>` as a folded field body (RFC 2047 when not ASCII)."""
    shown = " ".join((name or address).split())
    return _address_field("From", f"{shown} via {info.name}", info.address)


def munge_from(msg: RawMessage, info: ListInfo, original: tuple[str, str, bytes]) -> None:
    """From: the list; the poster's From: kept in X-Original-From."""
    name, address, raw = original
    msg.replace("From", via_from(info, name, address))
    msg.add("X-Original-From", raw)


def keep_poster_reachable(msg: RawMessage, info: ListInfo,
                          original: tuple[str, str, bytes]) -> None:
    """After From: became the list: replies still reach the poster. Reply-To: the poster
    (their own Reply-To when they set one); when the list sets its own Reply-To, the
    poster's address is added to it."""
    _, address, raw = original
    replies = msg.raw_values("reply-to")
    if not replies:
        msg.add("Reply-To", raw)
    elif info.reply_to and info.reply_to.upper() != "$SENDER":
        present = {a.lower() for a in msg.addresses("reply-to")}
        if address.lower() not in present:
            value = b", ".join(v.strip() for v in replies) + b", " + raw
            msg.remove("reply-to")
            msg.add("Reply-To", value)


def wrapped(msg: RawMessage, info: ListInfo, original: tuple[str, str, bytes]) -> RawMessage:
    """A message from the list whose only content is the post, untouched (its signature
    still verifies inside)."""
    name, address, raw = original
    # Our Authentication-Results (stamped on top at arrival) describe the wrapper's
    # content for the receiver and ARC: they move to the wrapper.
    stamp = list(itertools.takewhile(lambda f: f[0] == "authentication-results", msg.fields))
    msg.fields = msg.fields[len(stamp):]
    fields = stamp + [(n, r) for n, r in msg.fields if n in _WRAP_KEEP]
    outer = RawMessage(fields, msg.to_bytes())
    outer.add("From", via_from(info, name, address))
    outer.add("Reply-To", b", ".join(v.strip() for v in msg.raw_values("reply-to")) or raw)
    outer.add("X-Original-From", raw)
    outer.add("MIME-Version", "1.0")
    outer.add("Content-Type", "message/rfc822")
    if not outer.body.isascii():  # RFC 2046 5.2.1: 7bit, 8bit or binary only
        outer.add("Content-Transfer-Encoding", "8bit")
    outer.add("Content-Disposition", "inline")
    return outer


# --------------------------------------------------------------------------- body

def _crlf_text(text: str) -> bytes:
    """The text's lines, each ended; a fronter or footer ending in an empty line keeps it."""
    t = text.replace("\r\n", "\n") + "\n"
    return t.replace("\n", "\r\n").encode("utf-8")


def _params(msg: RawMessage) -> Message:
    m = Message()
    m["Content-Type"] = msg.get("content-type") or "text/plain"
    return m


def _text_part(text: str) -> bytes:
    data = _crlf_text(text)
    if data.isascii():
        head = b"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit"
        return head + b"\r\nContent-Disposition: inline\r\n\r\n" + data
    import base64
    enc = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64"
            b"\r\nContent-Disposition: inline\r\n\r\n" + enc)


def add_fronter_footer(msg: RawMessage, fronter: str, footer: str) -> None:
    ctype = msg.content_type()
    cte = msg.get("content-transfer-encoding").strip().lower()
    params = _params(msg)
    charset = str(params.get_param("charset") or "us-ascii").lower()
    extra = (fronter + footer)
    if ctype == "text/plain" and cte in ("", "7bit", "8bit", "binary") and (
            (extra.isascii() and charset in ("us-ascii", "utf-8", "iso-8859-1", "ascii"))
            or (charset == "utf-8" and cte in ("8bit", "binary"))):
        body = msg.body
        if body and not body.endswith(b"\r\n"):
            body += b"\r\n"
        msg.body = (_crlf_text(fronter) if fronter else b"") + body + \
            (_crlf_text(footer) if footer else b"")
        return
    boundary = params.get_param("boundary") if ctype.startswith("multipart/") else None
    if ctype == "multipart/mixed" and isinstance(boundary, str) and _insert_parts(
            msg, boundary, fronter, footer):
        return
    _wrap(msg, fronter, footer)


def _insert_parts(msg: RawMessage, boundary: str, fronter: str, footer: str) -> bool:
    """Add parts inside an existing multipart/mixed; False when its layout is unclear."""
    delim = b"--" + boundary.encode("ascii", "replace")
    body = msg.body
    close = body.rfind(b"\r\n" + delim + b"--")
    if body.startswith(delim + b"\r\n"):
        first = 0
    else:
        first = body.find(b"\r\n" + delim + b"\r\n")
        first = first + 2 if first >= 0 else -1
    if close < 0 or first < 0 or first > close:
        return False
    if footer:
        body = body[:close] + b"\r\n" + delim + b"\r\n" + _text_part(footer).rstrip(b"\r\n") \
            + body[close:]
    if fronter:
        after = first + len(delim) + 2
        body = body[:after] + _text_part(fronter).rstrip(b"\r\n") + b"\r\n" + delim + b"\r\n" \
            + body[after:]
    msg.body = body
    return True


def _wrap(msg: RawMessage, fronter: str, footer: str) -> None:
    """Make the post one part of a new multipart/mixed, between fronter and footer."""
    inner_fields = [raw for n, raw in msg.fields if n in _CONTENT_HEADERS]
    if not any(n == "content-type" for n, _ in msg.fields):
        inner_fields.insert(0, b"Content-Type: text/plain; charset=us-ascii")
    msg.remove(*_CONTENT_HEADERS, "mime-version")
    boundary = "=_listmgr_" + secrets.token_hex(12)
    delim = b"--" + boundary.encode()
    parts = []
    if fronter:
        parts.append(_text_part(fronter))
    parts.append(b"\r\n".join(inner_fields) + b"\r\n\r\n" + msg.body)
    if footer:
        parts.append(_text_part(footer))
    body = b"This is a multi-part message in MIME format.\r\n"
    for p in parts:
        body += delim + b"\r\n" + p + b"\r\n"
    body += delim + b"--\r\n"
    msg.add("MIME-Version", "1.0")
    msg.add("Content-Type", f'multipart/mixed; boundary="{boundary}"')
    msg.body = body
