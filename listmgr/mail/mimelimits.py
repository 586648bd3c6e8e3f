"""MIME structure limits, checked before anything builds a message tree.

Trusts nothing in its input. The stdlib parser recurses once per nesting level (a message
nested 1,000 deep ends in RecursionError) and builds an object per part (430,000 empty parts
took 74 s). This scanner follows the boundaries the parser would follow, without recursion,
and stops at the first limit passed: its cost is bounded by the limits, not by the input.
The ideas are Postfix's `mime_nesting_limit` and `header_size_limit`.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from dataclasses import dataclass

MAX_PARTS = 1000  # entities in one message (the message itself, parts, attached messages)
MAX_DEPTH = 50  # multipart and message/* nesting
MAX_HEADER_FIELDS = 1000  # fields in one header block (the message's or a part's)
MAX_HEADER_BYTES = 1 << 20  # octets of one header block

_BLANK = re.compile(rb"\r?\n\r?\n")
_CONTINUATION = re.compile(rb"\n[ \t]")
_HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)


@dataclass(frozen=True)
class Limits:
    parts: int = MAX_PARTS
    depth: int = MAX_DEPTH
    header_fields: int = MAX_HEADER_FIELDS
    header_bytes: int = MAX_HEADER_BYTES


class TooComplex(Exception):
    """The message passes a limit; str() is a one-line reason for a reply or a hold."""


def check(data: bytes, limits: Limits = Limits()) -> str | None:
    """None when `data` is within `limits`, else the reason it is not."""
    try:
        _Scan(data, limits).run()
    except TooComplex as exc:
        return str(exc)
    return None


class _Scan:
    def __init__(self, data: bytes, limits: Limits):
        self.data = data
        self.limits = limits
        self.parts = 0
        self.stack: list[tuple[bytes, int]] = []  # open multiparts: (boundary, depth)
        self._delim: re.Pattern[bytes] | None = None

    def run(self) -> None:
        pos = self.entity(0, 1)
        while self.stack:
            m = self.delimiter().search(self.data, pos)
            if m is None:
                return  # unterminated multiparts end with the data, as in the parser
            found = m.group(1)
            i = max(n for n, (b, _) in enumerate(self.stack) if b == found)
            depth = self.stack[i][1]
            del self.stack[i + 1:]
            if m.group(2):  # the close delimiter
                self.stack.pop()
                self._delim = None
                pos = m.end()
                continue
            self._delim = None
            pos = self.entity(self._next_line(m.end()), depth + 1)

    def _next_line(self, pos: int) -> int:
        nl = self.data.find(b"\n", pos)
        return len(self.data) if nl < 0 else nl + 1

    def delimiter(self) -> re.Pattern[bytes]:
        if self._delim is None:
            alts = b"|".join(re.escape(b) for b in dict.fromkeys(b for b, _ in self.stack))
            self._delim = re.compile(rb"^--(" + alts + rb")(--)?[ \t]*\r?$", re.M)
        return self._delim

    def entity(self, pos: int, depth: int) -> int:
        """Read the entity starting at `pos`: its header, and the headers of any message it
        wraps. Returns where its body starts; a multipart is pushed on the stack."""
        lim = self.limits
        while True:
            self.parts += 1
            if self.parts > lim.parts:
                raise TooComplex(f"more than {lim.parts} MIME parts")
            if depth > lim.depth:
                raise TooComplex(f"MIME parts nested more than {lim.depth} deep")
            block, pos = self.header_block(pos)
            if not block:
                return pos
            headers = _HEADERS.parsebytes(block)
            maintype = headers.get_content_maintype()
            if maintype == "message" and headers.get_content_type() != \
                    "message/delivery-status":
                depth += 1  # the body is a whole message: its header comes next
                continue
            if maintype == "multipart":
                boundary = headers.get_boundary()
                if boundary:
                    try:
                        raw = boundary.encode("ascii", "surrogateescape")
                    except UnicodeEncodeError:
                        raw = boundary.encode("utf-8", "surrogateescape")
                    self.stack.append((raw, depth))
                    self._delim = None
            return pos

    def header_block(self, pos: int) -> tuple[bytes, int]:
        """(the header block at `pos`, where the body after it starts)."""
        data, lim = self.data, self.limits
        if data.startswith(b"\r\n", pos):
            return b"", pos + 2
        if data.startswith(b"\n", pos):
            return b"", pos + 1
        m = _BLANK.search(data, pos, pos + lim.header_bytes + 4)
        if m is None:
            if len(data) - pos > lim.header_bytes:
                raise TooComplex(f"a header block larger than {lim.header_bytes} bytes")
            end = body = len(data)
        else:
            end, body = m.start(), m.end()
        block = data[pos:end]
        fields = block.count(b"\n") + 1 - len(_CONTINUATION.findall(block))
        if fields > lim.header_fields:
            raise TooComplex(f"more than {lim.header_fields} header fields in one header")
        return block, body
