"""A Majordomo list file's lines as member rows: (address as stored, key, domain).

A block of lines is checked in one regular-expression scan when every line is a bare
address (what nearly every list file holds); a block with anything else (display names,
comments, bad lines) is read line by line with the same rules as everywhere else.
"""

from __future__ import annotations

from listmgr.mail.addresses import AddressError, domains_if_valid, domain_of, normalise, parse_single

Row = tuple[str, str, str]


def parse_block(lines: list[str], *, keep_raw: bool) -> tuple[list[Row], list[tuple[str, str]]]:
    """Rows for the valid lines and (line, why) for the others. `keep_raw` (Majordomo's
    strip = no) stores each line as written, display name and comment included."""
    low = "\n".join(lines).lower()
    domains = domains_if_valid(lines, low)
    if domains is not None:
        return list(zip(lines, low.split("\n"), domains)), []
    rows: list[Row] = []
    invalid: list[tuple[str, str]] = []
    for raw in lines:
        try:
            addr = parse_single(raw)
        except AddressError as exc:
            invalid.append((raw, str(exc)))
            continue
        key = normalise(addr)
        rows.append((raw if keep_raw else addr, key, domain_of(key)))
    return rows, invalid
