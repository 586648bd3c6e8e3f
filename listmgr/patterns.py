"""A list's regexps (Majordomo's `/pattern/flags`): parsed, priced, then compiled.

List owners write these (taboo_body, taboo_headers, advertise, noadvertise), so they are
untrusted input. The `regex` engine that runs them expands a counted repetition when it
builds the pattern (`/x{1000000000}/` takes gigabytes and cannot be interrupted), and
backtracking can run for ever. So a pattern is first read with the parser of the syntax it
is written in (Python's), and refused unless it is at most MAX_PATTERN characters, no
repetition bound exceeds MAX_REPEAT and its expanded size (nested bounds multiplied) is at
most MAX_SIZE; only then does `regex` compile it. Matching (`search`, `fullmatch`) always
has a timeout and releases the GIL, so a slow match never stalls the listeners.
"""

from __future__ import annotations

import re
import re._constants as _c
import re._parser as _parser

import regex

MAX_PATTERN = 500
MAX_REPEAT = 1000
MAX_SIZE = 10000

_ITEM = re.compile(r"^/(.*)/([imsx]*)$|^m(.)(.*)\3([imsx]*)$", re.DOTALL)
_FLAGS = {"i": regex.I, "m": regex.M, "s": regex.S, "x": regex.X}
_RE_FLAGS = {"i": re.I, "m": re.M, "s": re.S, "x": re.X}
_REPEATS = (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT)


class PatternError(ValueError):
    """A pattern that is malformed or too costly; the message says which and why."""


def _size(sub) -> int:
    """The size of `sub` (a parsed pattern) once every counted repetition is expanded."""
    total = 0
    for op, av in sub:
        if op in _REPEATS:
            lo, hi, inner = av
            for bound in (lo, hi):
                if bound != _c.MAXREPEAT and bound > MAX_REPEAT:
                    raise PatternError(f"a repetition count above {MAX_REPEAT}")
            bound = lo if hi == _c.MAXREPEAT else hi
            total += max(1, bound) * _size(inner)
        elif op is _c.SUBPATTERN:
            total += _size(av[3])
        elif op is _c.BRANCH:
            total += sum(_size(alt) for alt in av[1])
        elif op is _c.ATOMIC_GROUP:
            total += _size(av)
        elif op in (_c.ASSERT, _c.ASSERT_NOT):
            total += _size(av[1])
        elif op is _c.GROUPREF_EXISTS:
            total += _size(av[1]) + (_size(av[2]) if av[2] else 0)
        else:
            total += 1
        if total > MAX_SIZE:
            raise PatternError(f"it would expand to more than {MAX_SIZE} elements")
    return total


def compile_pattern(pattern: str, flags: str = "") -> regex.Pattern:
    """`pattern` with Majordomo flags (`imsx`) -> a `regex` pattern, or PatternError."""
    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"longer than {MAX_PATTERN} characters")
    re_flags = 0
    for f in flags:
        re_flags |= _RE_FLAGS[f]
    try:
        parsed = _parser.parse(pattern, re_flags)
    except re.error as exc:
        raise PatternError(f"does not compile: {exc}") from None
    except (OverflowError, RecursionError):
        raise PatternError(f"a repetition count above {MAX_REPEAT}") from None
    _size(parsed.data)
    rx_flags = regex.V0
    for f in flags:
        rx_flags |= _FLAGS[f]
    try:
        return regex.compile(pattern, rx_flags)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise PatternError(f"does not compile: {exc}") from None


def parse_item(item: str) -> regex.Pattern:
    """One `/pattern/flags` (or `m<d>pattern<d>flags`) line -> a compiled pattern."""
    m = _ITEM.match(item.strip())
    if not m:
        raise PatternError(f"{item.strip()!r} is not of the form /pattern/flags")
    pattern, flags = (m.group(1), m.group(2)) if m.group(1) is not None \
        else (m.group(4), m.group(5))
    try:
        return compile_pattern(pattern, flags)
    except PatternError as exc:
        raise PatternError(f"{item.strip()!r} is refused: {exc}") from None


def search(pat: regex.Pattern, text: str, timeout: float) -> bool:
    """Whether `pat` occurs in `text`; TimeoutError after `timeout` seconds."""
    return pat.search(text, timeout=max(timeout, 0.001), concurrent=True) is not None


def fullmatch(pat: regex.Pattern, text: str, timeout: float) -> bool:
    """Whether `pat` matches all of `text`; TimeoutError after `timeout` seconds."""
    return pat.fullmatch(text, timeout=max(timeout, 0.001), concurrent=True) is not None
