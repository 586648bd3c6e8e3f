"""Address syntax and normalisation for members, owners and commands.

`normalise` gives the lookup key: the whole address lower-cased (Majordomo's addr_match
lower-cases the local part too). `parse_single` accepts `addr`, `<addr>`,
`Name <addr>` and `addr (Comment)` and returns the bare address or raises AddressError.
"""

from __future__ import annotations

import re
from email.utils import getaddresses


MAX_ADDRESS = 320  # RFC 5321 4.5.3.1: 64 + "@" + 255 octets, and the store's column width


class AddressError(ValueError):
    """Not a usable address; the message says why, for the person who sent it, and `reason`
    names the case (empty, control, unbalanced, not_single, incomplete) so that a reply in
    another language can say it in its own words."""

    def __init__(self, message: str, reason: str = "incomplete"):
        super().__init__(message)
        self.reason = reason


# RFC 5322 dot-atom local part (what real subscribers use) or a quoted string.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = rf"(?:{_ATOM}(?:\.{_ATOM})*|\"(?:[^\"\\\r\n]|\\.)+\")"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})+|\[[0-9A-Fa-f:.]+\])"
_ADDR = re.compile(rf"^{_LOCAL}@{_DOMAIN}$")
# The same, for each line of a block (one scan of many lines instead of one call a line),
# capturing the domain.
_ADDR_LINES = re.compile(rf"(?m)^{_LOCAL}@({_DOMAIN})$")


def is_valid(address: str) -> bool:
    return len(address) <= MAX_ADDRESS and bool(_ADDR.match(address)) and "|" not in address \
        and not address.startswith("-")


def domains_if_valid(lines: list[str], block: str | None = None) -> list[str] | None:
    """When every one of `lines` (stripped, none empty) is a bare valid address (what
    is_valid says of each), their domains in order; else None. One regular-expression scan
    of the whole block; `block` is "\n".join(lines) (in any case) if the caller has it."""
    if not lines:
        return []
    block = "\n".join(lines) if block is None else block
    if "|" in block or block[0] == "-" or "\n-" in block \
            or max(map(len, lines)) > MAX_ADDRESS:
        return None
    domains = _ADDR_LINES.findall(block)
    return domains if len(domains) == len(lines) else None


def parse_single(text: str) -> str:
    """The one bare address in `text`, or AddressError."""
    text = text.strip()
    if not text:
        raise AddressError("no address given", "empty")
    if is_valid(text):  # the common case: a bare address
        return text
    if any(c in text for c in "\r\n\0"):
        raise AddressError(f"{text!r} contains control characters", "control")
    if text.count("(") != text.count(")") or text.count("<") != text.count(">") \
            or text.count("[") != text.count("]"):
        raise AddressError(f"{text} has an uneven number of parentheses or brackets",
                           "unbalanced")
    pairs = [p for p in getaddresses([text]) if p[1]]
    if len(pairs) != 1:
        raise AddressError(f"{text} is not a single Internet address", "not_single")
    addr = pairs[0][1]
    if not is_valid(addr):
        raise AddressError(f"{text} is not a complete Internet address", "incomplete")
    return addr


def normalise(address: str) -> str:
    """Lookup key: lower case, surrounding <> and whitespace removed."""
    return address.strip().strip("<>").lower()


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def local_of(address: str) -> str:
    return address.rpartition("@")[0]


def fault_of(text: str) -> str:
    """Why `text` is not one address, in Majordomo's valid_addr categories (reference 2.5):
    multiple, unbalanced, unquoted, space, incomplete; "" when none of them applies."""
    text = text.strip()
    temp = re.sub(r'"(?:[^"\\]|\\.)*"?', "", text)
    for pat in (r"\([^()]*\)", r"<[^<>]*>", r"\[[^\[\]]*\]"):
        for _ in range(50):
            temp, n = re.subn(pat, "", temp)
            if not n:
                break
    if re.search(r"[()<>\[\]]", temp):
        return "unbalanced"
    if "," in temp:  # ParseAddrs splits on commas outside quotes and comments
        return "multiple"
    core = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    m = re.search(r"<([^<>]*)>", core)
    core = m.group(1) if m else re.sub(r"\([^()]*\)", "", core)
    core = core.strip()
    if re.search(r"[,;:]", core):
        return "unquoted"
    core = re.sub(r"\s*([.@])\s*", r"\1", core)
    if re.search(r"\s", core):
        return "space"
    if "@" not in core or "." not in core:
        return "incomplete"
    return ""


def address_list(text: str | None) -> list[str]:
    """A list's owners or moderator field: addresses one a line (commas and blanks
    tolerated); entries without `@` are dropped, repeats (any case) kept once, order kept."""
    seen: set[str] = set()
    out = []
    for a in re.split(r"[\s,]+", text or ""):
        if "@" in a and a.lower() not in seen:
            seen.add(a.lower())
            out.append(a)
    return out


_SMTP_UNSAFE = re.compile(r"[\r\n\0<> \t]")


def validate_address(addr: str) -> bool:
    """Safe to put on an SMTP command line: no CR, LF, NUL, angle brackets or spaces."""
    return bool(addr) and len(addr) <= MAX_ADDRESS and _SMTP_UNSAFE.search(addr) is None
