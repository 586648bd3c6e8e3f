"""Majordomo's config file syntax (reference section 6; 1.94.5 config_parse.pl), both ways.

`key = value`, or `key << END` ... `END` for lists of lines; `#` starts a comment except
inside here-documents. In a here-document each line is trimmed; a line that is just `-` is
an empty line, `-` followed by blanks keeps those blanks, and `--` is a literal `-`.
Settings Majordomo does not know are written as comment lines `#listmgr: key = value`:
Majordomo skips them, this parser reads them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(=|<<)\s*(.*)$")
_EXTENSION = re.compile(r"^\s*#listmgr:\s*(.*)$")
MAX_LINES = 20000  # a config is a few hundred lines; more is not a config


@dataclass
class Entry:
    key: str
    value: str  # scalar text, or the here-document's items joined with "\n"
    lineno: int
    array: bool  # written as a here-document
    extension: bool  # from a `#listmgr:` line


@dataclass
class Parsed:
    entries: list[Entry] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def encode_item(line: str) -> str:
    """One item of a here-document, escaped as Majordomo's writeconfig does."""
    if line == "":
        return "-"
    if line.startswith("-"):
        return "-" + line
    if line[0].isspace():
        return "-" + line
    return line


def decode_item(line: str) -> str:
    """Majordomo's grab_string_array on one (trimmed) here-document line."""
    t = line.strip()
    if t == "-":
        return ""
    m = re.match(r"^-(\s+)(.*)$", t)
    if m:
        return m.group(1) + m.group(2)
    if t.startswith("--"):
        return t[1:]
    return t


def parse(text: str, where: str) -> Parsed:
    """Config text -> entries in file order, and syntax errors (Majordomo's wording)."""
    out = Parsed()
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) > MAX_LINES:
        out.errors.append(f"the file has {len(lines)} lines; at most {MAX_LINES} are read")
        return out
    i = 0
    while i < len(lines):
        raw = lines[i]
        lineno = i + 1
        i += 1
        if "\x01" in raw:
            out.errors.append(f"Control-A is not allowed at line {lineno}")
            continue
        ext = _EXTENSION.match(raw)
        work = (ext.group(1) if ext else raw.split("#", 1)[0]).strip()
        if not work:
            continue
        m = _LINE.match(work)
        if not m:
            out.errors.append(f"cannot parse '{work}' in file {where} at line {lineno}")
            continue
        key, op, rest = m.group(1).lower(), m.group(2), m.group(3).strip()
        if op == "<<":
            if ext:
                out.errors.append(f"a #listmgr: line cannot start a << list, at line {lineno}")
                continue
            marker = rest or "END"
            items: list[str] = []
            closed = False
            while i < len(lines):
                body = lines[i]
                i += 1
                if body.strip() == marker:
                    closed = True
                    break
                if "\x01" in body:
                    out.errors.append(f"string |{body}| contains a ^A at line {i}")
                    continue
                items.append(body)
            if not closed:
                out.errors.append(f"no '{marker}' to end |{key}| started at line {lineno}")
                continue
            while items and not items[-1].strip():
                items.pop()
            value = "\n".join(items)
            out.entries.append(Entry(key, value, lineno, True, False))
        else:
            out.entries.append(Entry(key, rest, lineno, False, bool(ext)))
    return out


_TOKENS = re.compile(r"[!-~]+|\s+|[^\s!-~]")
_NO_LINE_START = set("、。，．）」』：！？ー")
_NO_LINE_END = set("（「『")


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def wrap_columns(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` columns (a wide character takes two): words of
    ASCII stay whole, Japanese may break between any two characters, though not before
    closing punctuation nor after opening brackets."""
    lines: list[str] = []
    line = ""
    for tok in _TOKENS.findall(text):
        if tok.isspace():
            if line:
                line += " "
            continue
        fits = _columns(line) + _columns(tok) <= width
        if fits or not line.strip() or tok in _NO_LINE_START:
            line += tok
            continue
        carried = ""
        while line and line[-1] in _NO_LINE_END:
            line, carried = line[:-1], line[-1] + carried
        lines.append(line.rstrip(" "))
        line = carried + tok
    if line.strip():
        lines.append(line.rstrip(" "))
    return lines


def render_block(key: str, kind: str, default: str, subsystems: str, description: str,
                 value: str, *, array: bool, wrap) -> list[str]:
    """One key as Majordomo's writeconfig lays it out (comment lines start with a tab)."""
    out = ["", f"\t# {key}  [{kind}] ({default}) <{subsystems}>"]
    for ln in wrap(description):
        out.append(f"\t# {ln}")
    if array:
        out.append(f"{key} << END")
        out.extend(encode_item(v) for v in value.split("\n") if value)
        out.append("END")
    else:
        out.append(f"{key} = {value}")
    return out
