"""VERP: a member's address folded into the list's bounce address, and back.

`owner-LIST+alice=example.net@domain` is the envelope sender of alice@example.net's copy, so
a bounce names the member by the address it comes back to, whatever the bounce says.

The local part keeps `A-Z a-z 0-9 . _ + = -` as they are (a `.` right after another is
escaped, so the result stays a dot-atom) and writes every other byte of its UTF-8 form as
`#xx` (lower-case hex): quotes, spaces, `#`, `%`, `!`, non-ASCII. The member's domain goes
in its ASCII (IDNA) form. Decoding splits at the last `=` (a domain has none) and undoes
both, so any address a member can have comes back intact; hex is read in either case,
because some MTAs lower-case what they bounce to.
"""

from __future__ import annotations

import re

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+=-")
_ESCAPE = re.compile(r"#([0-9a-fA-F]{2})")
MAX_LENGTH = 254  # longest envelope sender we make (RFC 5321 path limit 256 with <>)


_PLAIN = re.compile(r"[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*\.?")


def _encode_local(local: str) -> str:
    if _PLAIN.fullmatch(local):
        return local  # the common case: nothing to escape
    out: list[str] = []
    prev = ""
    for ch in local:
        if ch in _SAFE and not (ch == "." and prev == "."):
            out.append(ch)
        else:
            out.append("".join(f"#{b:02x}" for b in ch.encode("utf-8")))
        prev = ch
    return "".join(out)


def _ascii_domain(domain: str) -> str:
    domain = domain.rstrip(".")
    if domain.isascii():
        return domain.lower()
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return _encode_local(domain)  # not a valid IDN: escaped like a local part


def _unicode_domain(domain: str) -> str:
    domain = _unescape(domain)
    if "xn--" not in domain.lower():
        return domain
    try:
        return domain.encode("ascii").decode("idna")
    except UnicodeError:
        return domain


def _unescape(text: str) -> str:
    if "#" not in text:
        return text
    raw = _ESCAPE.sub(lambda m: "\x00" + m.group(1), text)
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == "\x00":
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.extend(raw[i].encode("utf-8"))
            i += 1
    return out.decode("utf-8", "replace")


def encode(list_name: str, member: str, domain: str, base: str = "") -> str:
    """The bounce address of `member`'s copy: BASE+local=mdomain@domain, BASE being the
    local part of the list's sender (owner-LIST by default)."""
    local, _, mdomain = member.rpartition("@")
    base = base or f"owner-{list_name}"
    return f"{base}+{_encode_local(local)}={_ascii_domain(mdomain)}@{domain}"


def decode_member(folded: str) -> str | None:
    """The member in the part after `+` of a VERP local part (`local=mdomain`)."""
    local, eq, mdomain = folded.rpartition("=")
    if not eq or not local or not mdomain:
        return None
    return f"{_unescape(local)}@{_unicode_domain(mdomain)}"


def fits(address: str) -> bool:
    return len(address) <= MAX_LENGTH


def decode(local_part: str) -> tuple[str, str] | None:
    """`owner-LIST+local=mdomain` (the local part of a VERP address) -> (LIST, member), or
    None when it is not one."""
    if not local_part.lower().startswith("owner-"):
        return None
    name, plus, folded = local_part[len("owner-"):].partition("+")
    if not plus or not name:
        return None
    local, eq, mdomain = folded.rpartition("=")
    if not eq or not local or not mdomain:
        return None
    return name.lower(), f"{_unescape(local)}@{_unicode_domain(mdomain)}"
