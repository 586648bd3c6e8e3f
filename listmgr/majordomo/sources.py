"""Reading a Majordomo 1.94.5 installation: the list directory, the aliases file, majordomo.cf.

Pure readers, no store: each returns plain data and never runs what it reads (majordomo.cf
is Perl; only simple `$name = "value";` assignments and here-documents are taken from it).
Files may have CRLF line ends and any 8-bit encoding (UTF-8 is tried first, else Latin-1).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

LIST_NAME = re.compile(r"^[-_0-9A-Za-z]{1,64}$")
NOT_LISTS = {"RCS", "CVS", "core"}
MAX_TEXT = 4 * 1024 * 1024  # a config, info, intro, aliases file or majordomo.cf
MAX_LINE = 1000  # a member line longer than this is not an address
MAX_LISTS = 10000


class SourceError(Exception):
    """A file that cannot be read as what it should be; the message names it."""


def decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: Path, limit: int = MAX_TEXT) -> str:
    try:
        size = path.stat().st_size
        if size > limit:
            raise SourceError(f"{path}: {size} bytes, more than the {limit} read")
        return decode(path.read_bytes())
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror}") from None


def list_names(listdir: Path) -> list[str]:
    """Majordomo's lists: regular files named only [-_0-9a-zA-Z] (reference 2.4 `lists`)."""
    names = []
    for entry in sorted(listdir.iterdir()):
        if entry.name in NOT_LISTS or not LIST_NAME.match(entry.name):
            continue
        if entry.is_file() and not entry.is_symlink():
            names.append(entry.name)
        if len(names) > MAX_LISTS:
            raise SourceError(f"{listdir}: more than {MAX_LISTS} lists")
    return names


_PAD = b" \t\r\x0b\x0c\x1c\x1d\x1e\x1f#"


def _plain(data: bytes) -> bool:
    """ASCII with no blank, comment or padded line: its lines are already as strip() and
    the comment rule would leave them."""
    return data.isascii() and b"\n\n" not in data and data[:1] != b"\n" \
        and len(data.translate(None, _PAD)) == len(data)


@dataclass
class MemberLines:
    """Addresses of a list file, streamed; over-long lines are set aside as invalid."""

    path: Path
    too_long: list[str] = field(default_factory=list)
    lines: int = 0

    def __iter__(self) -> Iterator[str]:
        for block in self.blocks():
            yield from block

    def blocks(self) -> Iterator[list[str]]:
        """The lines a block (about 1 MB) at a time, stripped; blank and comment lines
        left out."""
        # Read in blocks and decode a block at a time: a million lines decoded one by one
        # cost more than inserting them.
        with self.path.open("rb") as f:
            rest = b""
            skipping = False  # inside a line already reported as too long
            while True:
                block = f.read(1 << 20)
                if skipping:
                    nl = block.find(b"\n")
                    if nl < 0 and block:
                        continue
                    block, skipping = block[nl + 1:], False
                data = rest + block
                if not block:
                    rest = b""
                else:
                    cut = data.rfind(b"\n") + 1
                    data, rest = data[:cut], data[cut:]
                    if len(rest) > 1 << 20:  # one line longer than a block: not an address
                        data, rest, skipping = data + rest[:MAX_LINE + 1] + b"\n", b"", True
                text = decode(data)
                lines = text.split("\n")
                if lines and not lines[-1]:
                    lines.pop()
                if _plain(data.replace(b"\r\n", b"\n") if b"\r" in data else data) and lines and max(map(len, lines)) <= MAX_LINE:
                    # Nothing to strip or skip: no line needs looking at one by one.
                    self.lines += len(lines)
                    yield lines
                    if not block:
                        return
                    continue
                out = []
                for line in lines:
                    line = line.strip()
                    if not line or line[0] == "#":
                        continue
                    if len(line) > MAX_LINE:
                        self.too_long.append(line[:60] + "...")
                        self.lines += 1
                        continue
                    out.append(line)
                self.lines += len(out)
                if out:
                    yield out
                if not block:
                    return


# --------------------------------------------------------------------------- aliases

def parse_aliases(text: str) -> dict[str, list[str]]:
    """sendmail aliases: `name: target, target`, continuation lines start with blanks."""
    entries: list[str] = []
    for line in text.split("\n"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[:1] in (" ", "\t") and entries:
            entries[-1] += " " + line.strip()
        else:
            entries.append(line.strip())
    out: dict[str, list[str]] = {}
    for entry in entries:
        name, sep, rest = entry.partition(":")
        if not sep or not name.strip():
            continue
        out[name.strip().lower()] = _split_targets(rest)
    return out


def _split_targets(text: str) -> list[str]:
    targets, cur, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            targets.append(cur.strip())
            cur = ""
        else:
            cur += ch
    targets.append(cur.strip())
    return [t for t in targets if t]


# resend's options (reference 5): those taking a value, and the on/off ones.
RESEND_VALUE_FLAGS = {"-l", "-h", "-f", "-p", "-r", "-M", "-I", "-a", "-C", "-m"}
RESEND_BOOL_FLAGS = {"-A", "-R", "-s", "-d"}


@dataclass
class Resend:
    """One `|wrapper resend ...` alias target, taken apart."""

    list_name: str
    options: list[tuple[str, str]]  # (flag, value or "")
    outgoing: list[str]
    unknown: list[str]


def parse_resend(target: str) -> Resend | None:
    """A pipe alias running resend, else None."""
    t = target.strip().strip('"').strip()
    if not t.startswith("|"):
        return None
    try:
        words = shlex.split(t[1:])
    except ValueError:
        return None
    while words and not words[0].rsplit("/", 1)[-1] == "resend":
        words.pop(0)
    if not words:
        return None
    words.pop(0)
    options: list[tuple[str, str]] = []
    outgoing, unknown = [], []
    name = ""
    i = 0
    while i < len(words):
        w = words[i]
        i += 1
        if w in RESEND_VALUE_FLAGS and i < len(words):
            value = words[i]
            i += 1
            if w == "-l":
                name = value.lower()
            else:
                options.append((w, value))
        elif w in RESEND_BOOL_FLAGS:
            options.append((w, ""))
        elif w.startswith("-") or w.startswith("@"):
            unknown.append(w)
        else:
            outgoing.append(w)
    return Resend(name, options, outgoing, unknown)


def resolve(aliases: dict[str, list[str]], name: str, *, depth: int = 0) -> list[str]:
    """The mail addresses an alias reaches (pipes, files and :include: left out)."""
    out: list[str] = []
    for target in aliases.get(name.lower(), []):
        t = target.strip().strip('"')
        if t.startswith(("|", "/", ":include:")) or not t:
            continue
        local = t.lower().split("@", 1)[0] if t.lower().endswith("@localhost") else t.lower()
        if "@" not in local and local in aliases and depth < 5 and local != name.lower():
            out.extend(resolve(aliases, local, depth=depth + 1))
        else:
            out.append(t)
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------- majordomo.cf

_CF_SCALAR = re.compile(r"""^\s*\$([A-Za-z_][\w']*)\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*'|\d+)\s*;""")
_CF_HEREDOC = re.compile(r"""^\s*\$([A-Za-z_][\w']*)\s*=\s*<<\s*(['"]?)(\w+)\2\s*;""")


@dataclass
class SiteCf:
    values: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, list[str]] = field(default_factory=dict)  # here-documents, by line


def parse_cf(text: str) -> SiteCf:
    """The simple assignments of majordomo.cf; `$var` inside "..." is interpolated from
    earlier assignments, as Perl would."""
    cf = SiteCf()
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        m = _CF_HEREDOC.match(line)
        if m:
            body = []
            while i < len(lines) and lines[i].strip() != m.group(3):
                body.append(lines[i])
                i += 1
            i += 1
            cf.blocks[m.group(1)] = body
            continue
        m = _CF_SCALAR.match(line)
        if m:
            raw = m.group(2)
            if raw.startswith('"'):
                value = re.sub(r"\$(\w+)", lambda v: cf.values.get(v.group(1), ""), raw[1:-1])
                value = re.sub(r"\\(.)", r"\1", value)
            elif raw.startswith("'"):
                value = raw[1:-1]
            else:
                value = raw
            cf.values[m.group(1)] = value
    return cf


def cf_patterns(block: list[str]) -> list[str]:
    """`/re/flags` items of a majordomo.cf here-document (one a line, comments skipped)."""
    return [ln.strip() for ln in block if ln.strip() and not ln.strip().startswith("#")]
