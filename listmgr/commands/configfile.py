"""A list's settings as a Majordomo-syntax config file (reference section 6), both ways.

`key = value`, or `key << END` ... `END` for lists of lines; `#` starts a comment except
inside here-documents. In a here-document a line that is just `-` is an empty line, and a
leading `-` protects what follows (`--` is a literal `-`, `-  x` keeps the spaces).
Passwords are stored hashed: the file never shows them, an empty value keeps them.
"""

from __future__ import annotations

import re
import textwrap

from listmgr.listconfig import SETTINGS, SettingError, format_value, parse_value

_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(=|<<)\s*(.*)$")


def encode_item(line: str) -> str:
    if line == "":
        return "-"
    if line[0].isspace() or line.startswith("-"):
        return "-" + line
    return line


def decode_item(line: str) -> str:
    if line.strip() == "-":
        return ""
    stripped = line.lstrip()
    if stripped.startswith("-"):
        return stripped[1:]
    return stripped.rstrip()


def render(mlist, header: str) -> str:
    """The canonical file: `header` (a comment block), then every key alphabetically."""
    out = [header.rstrip("\n")]
    for key in sorted(SETTINGS):
        setting = SETTINGS[key]
        out.append("")
        out.append(f"\t# {key}  [{setting.kind}]")
        for ln in textwrap.wrap(setting.description, 66):
            out.append(f"\t# {ln}")
        if setting.secret:
            out.append(f"{key} = ")
            continue
        value = format_value(mlist, setting)
        if setting.is_array:
            out.append(f"{key} << END")
            out.extend(encode_item(v) for v in value.split("\n") if value)
            out.append("END")
        else:
            out.append(f"{key} = {value}")
    return "\n".join(out) + "\n"


def parse(text: str, list_name: str) -> tuple[dict[str, str], list[str]]:
    """Config text -> ({key: value text}, errors). Nothing is applied here."""
    where = f"{list_name}.new.config"
    values: dict[str, str] = {}
    errors: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        raw = lines[i]
        lineno = i + 1
        i += 1
        if "\x01" in raw:
            errors.append(f"Control-A is not allowed at line {lineno}")
            continue
        work = raw.split("#", 1)[0].strip()
        if not work:
            continue
        m = _LINE.match(work)
        if not m:
            errors.append(f"cannot parse '{work}' in file {where} at line {lineno}")
            continue
        key, op, rest = m.group(1).lower(), m.group(2), m.group(3).strip()
        setting = SETTINGS.get(key)
        if op == "<<":
            marker = rest or "END"
            items: list[str] = []
            closed = False
            while i < len(lines):
                body = lines[i]
                i += 1
                if body.strip() == marker:
                    closed = True
                    break
                items.append(decode_item(body))
            if not closed:
                errors.append(f"no '{marker}' to end |{key}| started at line {lineno}")
                continue
            while items and items[-1] == "":
                items.pop()
            value = "\n".join(items)
        else:
            value = rest
        if setting is None:
            errors.append(f"unknown key |{key}| in file {where} at line {lineno}")
            continue
        if op == "<<" and not setting.is_array:
            errors.append(f"|{key}| takes a single value, not a << list, at line {lineno}")
            continue
        if setting.secret and value == "":
            continue  # passwords: an empty value keeps the current one
        try:
            parse_value(key, value)
        except SettingError as exc:
            errors.append(f"{exc} at line {lineno}")
            continue
        values[key] = value
    return values, errors
