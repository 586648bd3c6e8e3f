"""A message as a page may show it: a few headers and plain text, never the mail's own HTML.

HTML parts become text (tags dropped, script and style contents left out); the page
escapes everything again. Attachments are listed by name, type and size. Sizes and part
counts are capped, and a broken message yields what could be read, never an exception.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from html.parser import HTMLParser

SHOWN_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID")
MAX_TEXT = 200_000
MAX_PARTS = 200


@dataclass
class Attachment:
    index: int
    filename: str
    content_type: str
    size: int


@dataclass
class MailView:
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    html_only: bool = False
    attachments: list[Attachment] = field(default_factory=list)


class _Text(HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
             "blockquote", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head", "title"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head", "title") and self.skip:
            self.skip -= 1
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    p = _Text()
    try:
        p.feed(html[:MAX_TEXT])
        p.close()
    except Exception:
        pass
    lines = [" ".join(line.split()) for line in "".join(p.out).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


def _content(part) -> str:
    try:
        value = part.get_content()
    except Exception:
        payload = part.get_payload(decode=True) or b""
        value = payload.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _header(msg, name: str) -> str:
    try:
        return " ".join(str(v) for v in (msg.get_all(name) or []))[:2000]
    except Exception:
        return ""


def parts(msg):
    """The leaf parts in order, at most MAX_PARTS."""
    n = 0
    for part in msg.walk():
        if part.is_multipart():
            continue
        n += 1
        if n > MAX_PARTS:
            return
        yield part


def view(data: bytes) -> MailView:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    out = MailView()
    for name in SHOWN_HEADERS:
        value = " ".join(_header(msg, name).split())
        if value:
            out.headers.append((name, value))
    plain: str | None = None
    html: str | None = None
    for index, part in enumerate(parts(msg)):
        ctype = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        if disposition == "attachment" or filename or not ctype.startswith("text/"):
            size = len(part.get_payload(decode=True) or b"")
            out.attachments.append(Attachment(index, filename or f"part-{index}",
                                              ctype, size))
            continue
        if ctype == "text/plain" and plain is None:
            plain = _content(part)[:MAX_TEXT]
        elif ctype == "text/html" and html is None:
            html = _content(part)
    if plain is not None:
        out.text = plain
    elif html is not None:
        out.text, out.html_only = html_to_text(html), True
    return out


def attachment(data: bytes, index: int) -> tuple[str, str, bytes] | None:
    """(filename, content type, bytes) of leaf part `index`, as listed by view()."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    for i, part in enumerate(parts(msg)):
        if i == index:
            return (part.get_filename() or f"part-{index}", part.get_content_type(),
                    part.get_payload(decode=True) or b"")
    return None
