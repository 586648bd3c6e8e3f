"""A post as raw bytes: header fields kept byte-for-byte, the body untouched.

Working on bytes (not a re-serialised email.message) means a post goes out exactly as it
came in, apart from the header fields the list removes or adds: signatures over the body
stay valid, odd MIME survives, and large posts cost no parse of their body.
"""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.utils import getaddresses

_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def canonical(data: bytes) -> bytes:
    """CRLF line ends throughout (bare LF or CR become CRLF)."""
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded; a broken one is kept as written."""
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # a broken encoded-word: keep it as written
        return value


class RawMessage:
    """Header fields as (name, raw bytes with CRLF folds) plus the body bytes."""

    def __init__(self, fields: list[tuple[str, bytes]], body: bytes):
        self.fields = fields
        self.body = body

    @classmethod
    def parse(cls, data: bytes) -> "RawMessage":
        data = canonical(data)
        # Leading blank lines and an mbox "From " line are not part of the message
        # (Majordomo's resend skips both).
        data = data.lstrip(b"\r\n")
        if data.startswith((b"From ", b">From ")):
            data = data.split(b"\r\n", 1)[1] if b"\r\n" in data else b""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            head, body = data, b""
            if head.endswith(b"\r\n"):
                head = head[:-2]
        else:
            head, body = data[:end], data[end + 4:]
        fields: list[tuple[str, bytes]] = []
        lines = head.split(b"\r\n") if head else []
        for i, line in enumerate(lines):
            if line[:1] in (b" ", b"\t") and fields:
                name, raw = fields[-1]
                fields[-1] = (name, raw + b"\r\n" + line)
            else:
                m = _NAME.match(line)
                if m is None:
                    # Not a header line: the header ends here and the rest is body (the
                    # safe reading: no text is dropped).
                    body = b"\r\n".join(lines[i:]) + b"\r\n" + (b"\r\n" + body
                                                                 if end >= 0 else b"")
                    break
                fields.append((m.group(1).decode("ascii").lower(), line))
        return cls(fields, body)

    # ----------------------------------------------------------------- reading
    def raw_values(self, name: str) -> list[bytes]:
        name = name.lower()
        out = []
        for n, raw in self.fields:
            if n == name:
                out.append(raw.split(b":", 1)[1])
        return out

    def get_all(self, name: str) -> list[str]:
        """Unfolded, RFC 2047-decoded values of every `name` field."""
        out = []
        for v in self.raw_values(name):
            text = v.decode("utf-8", "replace").replace("\r\n", "")
            out.append(decode_words(text.strip()))
        return out

    def get(self, name: str, default: str = "") -> str:
        vals = self.get_all(name)
        return vals[0] if vals else default

    def has(self, name: str) -> bool:
        name = name.lower()
        return any(n == name for n, _ in self.fields)

    def header_lines(self) -> list[str]:
        """Each field unfolded to one line `Name: value` (for taboo_headers)."""
        return [raw.decode("utf-8", "replace").replace("\r\n", "") for _, raw in self.fields]

    def addresses(self, name: str) -> list[str]:
        return [a for _, a in getaddresses(self.get_all(name)) if a]

    def content_type(self) -> str:
        return (self.get("content-type") or "text/plain").split(";")[0].strip().lower()

    # ----------------------------------------------------------------- changing
    def remove(self, *names: str) -> None:
        drop = {n.lower() for n in names}
        self.fields = [(n, raw) for n, raw in self.fields if n not in drop]

    def remove_if(self, pred) -> None:
        self.fields = [(n, raw) for n, raw in self.fields if not pred(n)]

    def add(self, name: str, value: str | bytes) -> None:
        """Append a field; `value` must already be a valid (folded, encoded) field body."""
        v = value if isinstance(value, bytes) else value.encode("utf-8")
        unfolded = v.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t")
        if b"\r" in unfolded or b"\n" in unfolded or b"\0" in unfolded:
            raise ValueError(f"header {name} would contain a line break")
        self.fields.append((name.lower(), name.encode("ascii") + b": " + v))

    def replace(self, name: str, value: str | bytes) -> None:
        """Set `name` in place of its first occurrence (appended if absent)."""
        key = name.lower()
        for i, (n, _) in enumerate(self.fields):
            if n == key:
                self.remove(name)
                self.add(name, value)
                field = self.fields.pop()
                self.fields.insert(min(i, len(self.fields)), field)
                return
        self.add(name, value)

    def to_bytes(self) -> bytes:
        head = b"\r\n".join(raw for _, raw in self.fields)
        return head + b"\r\n\r\n" + self.body


def text_of(msg: RawMessage, *, limit: int = 1_000_000) -> str:
    """The decoded text of the post's text/plain parts (the first `limit` characters).

    Used by the content rules: base64 or quoted-printable must not hide a line from them.
    """
    import email
    import email.policy
    head = b"\r\n".join(raw for n, raw in msg.fields if _is_mime(n))
    data = (head + b"\r\n\r\n" if head else b"\r\n") + msg.body
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    out: list[str] = []
    size = 0
    for part in parsed.walk():
        if part.is_multipart() or part.get_content_type() != "text/plain":
            continue
        if part.get_content_disposition() == "attachment":
            continue
        try:
            text = part.get_content()
        except Exception:  # unknown charset or broken encoding: read it as Latin-1
            payload = part.get_payload(decode=True)
            text = payload.decode("latin-1") if isinstance(payload, bytes) else ""
        out.append(text)
        size += len(text)
        if size >= limit:
            break
    return "\n".join(out)[:limit]


def _is_mime(name: str) -> bool:
    return name.startswith("content-") or name == "mime-version"
