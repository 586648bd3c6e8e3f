"""Command mail parsing, pure: message bytes -> body text -> a sequence of parsed lines.

Majordomo 1.94.5's rules (reference 2.2): `\\` continuation, every line echoed, `#`
comments, case-insensitive commands, `end` stops, a first word starting with `-` stops
(signatures) unless the mail is multipart, `newinfo`/`newintro`/`newconfig` take the
following lines up to `EOF` as data. Beyond Majordomo: any transfer encoding and charset
(ISO-2022-JP, Shift_JIS, EUC-JP included) is decoded, the first text/plain part of a
multipart mail is read (else text/html as text), full-width spaces count as spaces, and
after MAX_UNKNOWN unrecognised lines the rest is only counted. Nothing here raises on any
input: a broken mail gives an empty or partly decoded body, never an exception.
"""

from __future__ import annotations

import email
import email.policy
import re
import unicodedata
from dataclasses import dataclass, field
from email.message import Message
from html.parser import HTMLParser

MAX_UNKNOWN = 10

# Labels seen in real mail -> the Python codec that decodes them best (supersets).
_CHARSETS = {
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "ms_kanji": "cp932", "windows-31j": "cp932", "csshiftjis": "cp932",
    "iso-2022-jp": "iso2022_jp_2", "csiso2022jp": "iso2022_jp_2",
    "iso-2022-jp-2": "iso2022_jp_2", "iso-2022-jp-3": "iso2022_jp_3",
    "euc-jp": "euc_jis_2004", "x-euc-jp": "euc_jis_2004", "eucjp": "euc_jis_2004",
    "us-ascii": "utf-8", "ascii": "utf-8", "unknown-8bit": "utf-8", "x-unknown": "utf-8",
}


@dataclass(frozen=True)
class Body:
    text: str
    multipart: bool  # Content-Type says multipart: `-` lines do not stop processing


@dataclass(frozen=True)
class Line:
    """One parsed line. kind: blank, command, unknown, end, stop, attachment, discarded,
    toomany. `echo` is shown as `>>>> echo` (None: not echoed)."""

    kind: str
    echo: str | None = None
    name: str = ""  # lower-case command word
    args: tuple[str, ...] = ()
    data: tuple[str, ...] = ()  # newinfo/newintro/newconfig text
    count: int = 0  # discarded / toomany: how many lines were left


# --------------------------------------------------------------------------- decoding

def decode_bytes(raw: bytes, charset: str | None) -> str:
    """Bytes in a declared (or undeclared) charset -> text; never raises."""
    label = (charset or "").strip().strip('"').lower()
    if label:
        codec = _CHARSETS.get(label, label)
        try:
            return raw.decode(codec, errors="replace")
        except LookupError:
            pass
    if b"\x1b$B" in raw or b"\x1b$@" in raw or b"\x1b(J" in raw:
        return raw.decode("iso2022_jp_2", errors="replace")
    for codec in ("utf-8", "cp932", "euc_jis_2004"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


class _HTMLText(HTMLParser):
    _BREAKS = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
               "blockquote", "table", "ul", "ol", "hr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head", "title"):
            self.skip += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head", "title"):
            self.skip = max(0, self.skip - 1)
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    p = _HTMLText()
    try:
        p.feed(html)
        p.close()
    except Exception:  # HTMLParser is lenient; belt and braces for hostile input
        pass
    text = "".join(p.parts).replace("\xa0", " ")
    lines = [ln.strip() for ln in text.split("\n")]
    return "\n".join(ln for ln in lines if ln)


def _part_text(part: Message) -> str:
    try:
        decoded = part.get_payload(decode=True)
    except Exception:
        decoded = None
    if isinstance(decoded, bytes):
        raw = decoded
    else:
        payload = part.get_payload()
        raw = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(raw, charset)


def _is_attachment(part: Message) -> bool:
    try:
        return (part.get_content_disposition() or "") == "attachment"
    except Exception:
        return False


def parse_message(data: bytes) -> Message:
    """The message object (email's default policy); never raises on any bytes."""
    return email.message_from_bytes(data, policy=email.policy.default)


def body_of(msg: Message) -> Body:
    """The text to read commands from: first text/plain part, else text/html as text."""
    try:
        ctype = str(msg.get("Content-Type", "") or "")
    except Exception:
        ctype = ""
    multipart = "multipart" in ctype.lower()
    try:
        if not msg.is_multipart():
            if msg.get_content_type() == "text/html":
                return Body(html_to_text(_part_text(msg)), multipart)
            if msg.get_content_maintype() not in ("text", "message") and \
                    msg.get_content_type() != "text/plain":
                return Body("", multipart)
            return Body(_part_text(msg), multipart)
        html = None
        for part in msg.walk():
            if part.is_multipart() or _is_attachment(part):
                continue
            t = part.get_content_type()
            if t == "text/plain":
                return Body(_part_text(part), True)
            if t == "text/html" and html is None:
                html = part
        if html is not None:
            return Body(html_to_text(_part_text(html)), True)
        return Body("", True)
    except Exception:
        return Body("", multipart)


def body_from_bytes(data: bytes) -> Body:
    try:
        return body_of(parse_message(data))
    except Exception:
        head, sep, rest = data.replace(b"\r\n", b"\n").partition(b"\n\n")
        return Body(decode_bytes(rest if sep else b"", None), False)


# --------------------------------------------------------------------------- lines

_LINE_SPLIT = re.compile(r"\r\n|\r|\n")
_WORD_SPLIT = re.compile(r"(?<!\\)\s+")
_UUENCODE = re.compile(r"^begin\s+\d+\s+\S+$")
_CONTINUED = re.compile(r"\\\s*$")


def split_words(line: str) -> list[str]:
    """Whitespace-separated words; `\\ ` protects a space inside a word."""
    line = line.strip()
    if not line:
        return []
    return [w.replace("\\ ", " ") for w in _WORD_SPLIT.split(line) if w]


def _command_word(word: str) -> str:
    """Lower case; full-width letters (ｓｕｂｓｃｒｉｂｅ) read as their ASCII forms."""
    return unicodedata.normalize("NFKC", word).lower()


@dataclass
class _Counter:
    commands: int = 0
    unknown: int = 0
    lines: list[Line] = field(default_factory=list)


def parse(text: str, *, multipart: bool, known: frozenset[str] | set[str],
          data_commands: frozenset[str] | set[str] = frozenset(),
          max_commands: int = 100, max_unknown: int = MAX_UNKNOWN) -> list[Line]:
    """Body text -> parsed lines, in order, ending where processing stops."""
    raw = _LINE_SPLIT.split(text)
    if raw and raw[-1] == "":
        raw.pop()
    out: list[Line] = []
    commands = unknown = 0
    i = 0
    n = len(raw)
    while i < n:
        line = raw[i]
        i += 1
        while _CONTINUED.search(line):
            line = _CONTINUED.sub(" ", line)
            if i < n:
                line += raw[i]
                i += 1
            else:
                break
        # Full-width (ideographic) spaces separate words like ASCII spaces.
        work = line.replace("\u3000", " ")
        if re.match(r"^\s*#", work):
            work = ""
        work = work.strip()
        if commands >= max_commands and work:
            rest = 1 + sum(1 for ln in raw[i:] if ln.strip())
            out.append(Line("toomany", None, count=rest))
            return out
        if unknown >= max_unknown and work:
            rest = 1 + sum(1 for ln in raw[i:] if ln.strip())
            out.append(Line("discarded", None, count=rest))
            return out
        if _UUENCODE.match(work):
            out.append(Line("attachment", line))
            return out
        words = split_words(work)
        if not words:
            out.append(Line("blank", line))
            continue
        name = _command_word(words[0])
        args = tuple(words[1:])
        if name == "end":
            out.append(Line("end", line, name=name))
            return out
        if name.startswith("-") and not multipart:
            out.append(Line("stop", line, name=name))
            return out
        if name not in known:
            unknown += 1
            out.append(Line("unknown", line, name=name, args=args))
            continue
        commands += 1
        data: tuple[str, ...] = ()
        if name in data_commands:
            collected = []
            while i < n:
                d = raw[i]
                i += 1
                if d == "EOF":
                    break
                collected.append(d)
            data = tuple(collected)
        out.append(Line("command", line, name=name, args=args, data=data))
    return out
