"""Next hop for a domain (RFC 5321 5.1, RFC 7505), with dnspython's async resolver.

MX records by preference (equal preferences shuffled); no MX but the domain exists -> the
domain itself (implicit MX); NXDOMAIN -> 5.1.2 Host unknown at once; null MX (`MX 0 .`) ->
5.1.10 at once; this host among the MXs -> it and every worse MX are dropped, and if nothing
is left the mail would loop back to us: 5.3.5 Local configuration error. DNS trouble
(timeouts, SERVFAIL) defers.
"""

from __future__ import annotations

import ipaddress
import random
import time
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception
import dns.resolver

from listmgr.delivery.queue import DEFERRED, FAILED


@dataclass(frozen=True)
class Hop:
    host: str      # the MX name (Remote-MTA)
    address: str   # an IP address of it


@dataclass(frozen=True)
class Route:
    """Where a domain's mail goes: hops to try in order, or why it cannot go anywhere."""

    hops: tuple[Hop, ...] = ()
    result: str = ""        # "" (use hops) | DEFERRED | FAILED
    status: str = ""
    diagnostic: str = ""    # Sendmail-style reason, `{rcpt}` replaced per recipient
    transcript: tuple[str, ...] = field(default=())


def _host_unknown(domain: str, why: str) -> Route:
    return Route(result=FAILED, status="5.1.2",
                 diagnostic="550 5.1.2 <{rcpt}>... Host unknown (Name server: "
                            f"{domain}: {why})")


class MXResolver:
    """Resolves and caches routes for a while (their TTL, at most `max_cache` seconds)."""

    def __init__(self, resolver: dns.asyncresolver.Resolver, *, self_names: set[str],
                 max_cache: float = 300.0):
        self.resolver = resolver
        self.self_names = {n.lower().rstrip(".") for n in self_names if n}
        self.max_cache = max_cache
        self._cache: dict[str, tuple[float, Route]] = {}

    async def route(self, domain: str) -> Route:
        domain = domain.lower().rstrip(".")
        hit = self._cache.get(domain)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        route, ttl = await self._resolve(domain)
        if route.result != DEFERRED:
            self._cache[domain] = (now + min(ttl, self.max_cache), route)
        return route

    async def _resolve(self, domain: str) -> tuple[Route, float]:
        if domain.startswith("[") and domain.endswith("]"):  # address literal
            addr = domain[1:-1].removeprefix("IPv6:")
            return Route(hops=(Hop(domain, addr),)), self.max_cache
        implicit = False
        try:
            answer = await self.resolver.resolve(domain, "MX", search=False)
            ttl = float(answer.rrset.ttl) if answer.rrset is not None else 60.0
            mxs = [(r.preference, r.exchange.to_text(omit_final_dot=True).lower())
                   for r in answer]
        except dns.resolver.NXDOMAIN:
            return _host_unknown(domain, "host not found"), 60.0
        except dns.resolver.NoAnswer:
            implicit, ttl, mxs = True, 60.0, [(0, domain)]
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.exception.DNSException):
            return self._dns_trouble(domain), 0.0
        if any(host in ("", ".") for _, host in mxs):
            # RFC 7505: the domain says it accepts no mail at all.
            return Route(result=FAILED, status="5.1.10",
                         diagnostic="556 5.1.10 <{rcpt}>... Host unknown (Domain "
                                    f"{domain} does not accept mail: null MX)"), ttl
        random.shuffle(mxs)  # equal preferences in random order (RFC 5321 5.1) ...
        mxs.sort(key=lambda m: m[0])  # ... the sort is stable
        mine = [p for p, h in mxs if h in self.self_names]
        if mine:
            mxs = [(p, h) for p, h in mxs if p < min(mine)]
            if not mxs:
                return Route(result=FAILED, status="5.3.5",
                             diagnostic="554 5.3.5 <{rcpt}>... Local configuration error",
                             transcript=(f"{domain}: mail loops back to me (MX problem?)",)), ttl
        hops: list[Hop] = []
        temporary = False
        for _, host in mxs:
            addrs, temp = await self._addresses(host)
            temporary |= temp
            hops.extend(Hop(host, a) for a in addrs)
        if hops:
            return Route(hops=tuple(hops)), ttl
        if temporary:
            return self._dns_trouble(domain), 0.0
        if implicit:
            return _host_unknown(domain, "no MX and no address record"), 60.0
        return _host_unknown(domain, "no address for its mail exchangers"), 60.0

    async def _addresses(self, host: str) -> tuple[list[str], bool]:
        try:
            ipaddress.ip_address(host)
            return [host], False
        except ValueError:
            pass
        out: list[str] = []
        temporary = False
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self.resolver.resolve(host, rdtype, search=False)
                out.extend(r.address for r in answer)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException:
                temporary = True
        return out, temporary

    @staticmethod
    def _dns_trouble(domain: str) -> Route:
        return Route(result=DEFERRED, status="4.4.3",
                     diagnostic=f"451 4.4.3 Host {domain} not found: name server timeout")
