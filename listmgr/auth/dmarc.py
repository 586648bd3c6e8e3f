"""DMARC (RFC 7489): the policy a From: domain publishes, its organisational domain, and
identifier alignment.

The organisational domain comes from the public suffix list bundled with tldextract (its
snapshot; nothing is downloaded at run time). A domain under no listed suffix is treated by
the list's default rule `*`: its last label is the suffix.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import tldextract

from listmgr.auth.dns import DNSTrouble, TXTLookup

log = logging.getLogger(__name__)

_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None,
                                 fallback_to_snapshot=True)
_LABELS = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$")
MAX_DOMAIN = 253

POLICIES = ("none", "quarantine", "reject")


def organizational_domain(domain: str) -> str:
    domain = domain.lower().rstrip(".")
    ext = _EXTRACT(domain)
    if ext.suffix and ext.domain:
        return f"{ext.domain}.{ext.suffix}"
    labels = domain.split(".")
    return ".".join(labels[-2:])


def aligned(a: str, b: str, mode: str = "r") -> bool:
    """Identifier alignment: same domain (strict) or same organisational domain (relaxed)."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if not a or not b:
        return False
    if mode == "s":
        return a == b
    return organizational_domain(a) == organizational_domain(b)


@dataclass(frozen=True)
class Record:
    p: str
    sp: str
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100


def parse_record(text: str) -> Record | None:
    """A `v=DMARC1; p=...` record, or None when it is not a valid DMARC record."""
    tags: dict[str, str] = {}
    for i, part in enumerate(text.split(";")):
        name, sep, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if i == 0:
            if name != "v" or value != "DMARC1":
                return None
            continue
        if sep and name and name not in tags:
            tags[name] = value
    p = tags.get("p", "").lower()
    if p not in POLICIES:
        # RFC 7489 6.6.3: no valid p but a valid rua -> treat as p=none.
        if "rua" in tags:
            p = "none"
        else:
            return None
    sp = tags.get("sp", "").lower()
    if sp not in POLICIES:
        sp = p
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    try:
        pct = max(0, min(100, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    return Record(p, sp, adkim if adkim in ("r", "s") else "r",
                  aspf if aspf in ("r", "s") else "r", pct)


@dataclass(frozen=True)
class Policy:
    """What applies to mail From: `domain`: `policy` is p= or, from the organisational
    domain's record, sp=."""

    domain: str
    found_at: str
    record: Record

    @property
    def policy(self) -> str:
        if self.found_at == self.domain:
            return self.record.p
        return self.record.sp


def _record_at(lookup: TXTLookup, domain: str) -> Record | None:
    records = [r for r in (parse_record(t) for t in lookup.txt(f"_dmarc.{domain}"))
               if r is not None]
    # RFC 7489 6.6.3: more than one record -> as if none.
    return records[0] if len(records) == 1 else None


def valid_domain(domain: str) -> bool:
    return 0 < len(domain) <= MAX_DOMAIN and bool(_LABELS.match(domain))


def policy_for(lookup: TXTLookup, domain: str) -> Policy | None:
    """The DMARC policy for mail From: `domain`, or None when it publishes none.

    Raises DNSTrouble when the answer cannot be had now."""
    domain = domain.lower().rstrip(".")
    if not valid_domain(domain):
        return None
    rec = _record_at(lookup, domain)
    if rec is not None:
        return Policy(domain, domain, rec)
    org = organizational_domain(domain)
    if org != domain:
        rec = _record_at(lookup, org)
        if rec is not None:
            return Policy(domain, org, rec)
    return None


__all__ = ["DNSTrouble", "Policy", "Record", "aligned", "organizational_domain",
           "parse_record", "policy_for"]
