"""SPF (RFC 7208) with pyspf, its DNS asked through our time-limited resolver.

pyspf looks names up through its module-level `DNSLookup`; we install one that uses the
resolver of the check in progress (a context variable), so each server asks its own
`[delivery] nameservers`, and that shares TXTLookup's "resolver timed out recently" state. The whole check is limited to `QUERY_TIME` seconds and pyspf's
own limits (10 DNS mechanisms, 2 void lookups) apply.
"""

from __future__ import annotations

import contextvars
import ipaddress

import dns.exception
import dns.resolver
import spf

from listmgr.auth.dns import TXTLookup

QUERY_TIME = 10.0
MAX_TXT = 4096

_LOOKUP: contextvars.ContextVar[TXTLookup | None] = \
    contextvars.ContextVar("listmgr_spf_lookup", default=None)
_ORIGINAL = spf.DNSLookup


def _lookup(name, qtype, tcpfallback=True, timeout=30):
    lookup = _LOOKUP.get()
    if lookup is None:
        return _ORIGINAL(name, qtype, tcpfallback, timeout)
    if lookup.down():
        raise spf.TempError("DNS resolver timed out recently")
    resolver = lookup.resolver
    out = []
    try:
        answers = resolver.resolve(name, qtype, lifetime=min(timeout, resolver.lifetime))
        for rdata in list(answers)[:50]:
            if qtype in ("A", "AAAA"):
                out.append(((name, qtype), rdata.address))
            elif qtype == "MX":
                out.append(((name, qtype), (rdata.preference, rdata.exchange)))
            elif qtype == "PTR":
                out.append(((name, qtype), rdata.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                if sum(len(s) for s in rdata.strings) <= MAX_TXT:
                    out.append(((name, qtype), rdata.strings))
    except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
        pass
    except dns.exception.Timeout as exc:
        lookup.timed_out()
        raise spf.TempError(f"DNS {exc}") from None
    except dns.resolver.NoNameservers as exc:
        raise spf.TempError(f"DNS {exc}") from None
    except dns.exception.DNSException as exc:
        raise spf.TempError(f"DNS {exc}") from None
    return out


spf.DNSLookup = _lookup


def check(lookup: TXTLookup, *, ip: str, mail_from: str, helo: str,
          query_time: float = QUERY_TIME) -> tuple[str, str]:
    """(result, the domain checked): pass, fail, softfail, neutral, none, temperror,
    permerror. The null sender is checked as postmaster@HELO (RFC 7208 2.4)."""
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return "none", ""
    sender = mail_from or (f"postmaster@{helo}" if helo else "")
    if not sender or "@" not in sender:
        return "none", ""
    domain = sender.rpartition("@")[2].lower()
    token = _LOOKUP.set(lookup)
    try:
        result, _explanation = spf.check2(i=ip, s=sender, h=helo or domain,
                                          querytime=min(query_time, QUERY_TIME))
    except Exception:  # pyspf raises on inputs it cannot handle
        return "permerror", domain
    finally:
        _LOOKUP.reset(token)
    return str(result).lower(), domain
