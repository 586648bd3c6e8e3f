"""Time- and size-limited TXT lookups through `[delivery] nameservers`, cached by TTL.

Used for DMARC policies, SPF and DKIM keys. An answer is at most MAX_RECORDS records of at
most MAX_TXT bytes each (longer records are dropped, as a receiver must not trust them);
a lookup takes at most `timeout` seconds. Answers (and NXDOMAIN / no-data, as empty) are
cached for their TTL, between MIN_TTL and MAX_TTL, in at most `max_entries` entries.
Timeouts and server failures raise DNSTrouble and are not cached; but after a timeout,
lookups fail at once (DNSTrouble) for QUIET_AFTER_TIMEOUT seconds, so a dead resolver
costs one message one timeout, not every message of a queue one each.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import ipaddress

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver


MAX_RECORDS = 10
MAX_TXT = 4096
MIN_TTL, MAX_TTL, NEGATIVE_TTL = 30, 86400, 300
QUIET_AFTER_TIMEOUT = 30.0


def parse_nameserver(entry: str, default_port: int) -> tuple[str, int]:
    """`127.0.0.1`, `127.0.0.1:5353`, `::1`, `[::1]:5353` -> (address, port)."""
    entry = entry.strip()
    try:
        ipaddress.ip_address(entry)
        return entry, default_port
    except ValueError:
        pass
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit():
        host = host.strip("[]")
        ipaddress.ip_address(host)
        return host, int(port)
    raise ValueError(f"not a nameserver address: {entry!r}")


def make_resolver(nameservers: tuple[str, ...], port: int, timeout: float = 5.0,
                  cls: type = dns.asyncresolver.Resolver):
    """A resolver (async by default; `cls` dns.resolver.Resolver for a blocking one) asking
    `nameservers` (`[delivery] nameservers`), else the system's."""
    if not nameservers:
        r = cls()
    else:
        r = cls(configure=False)
        r.nameservers = [dns.nameserver.Do53Nameserver(a, p)
                         for a, p in (parse_nameserver(n, port) for n in nameservers)]
    r.timeout = min(timeout, 3.0)
    r.lifetime = timeout
    return r


class DNSTrouble(Exception):
    """The answer could not be had now (timeout, SERVFAIL, refused): try again later."""


def make_sync_resolver(nameservers: tuple[str, ...], port: int,
                       timeout: float) -> dns.resolver.Resolver:
    return make_resolver(nameservers, port, timeout, cls=dns.resolver.Resolver)


class TXTLookup:
    """TXT records of a name, as text strings (each record's strings joined)."""

    def __init__(self, resolver: dns.resolver.Resolver, *, max_entries: int = 10000,
                 clock=time.monotonic):
        self.resolver = resolver
        self.max_entries = max_entries
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, tuple[str, ...]]] = OrderedDict()
        self._lock = threading.Lock()
        self.queries = 0  # sent to the network (tests, status)
        self._down_until = 0.0

    def down(self) -> bool:
        """A lookup timed out less than QUIET_AFTER_TIMEOUT seconds ago."""
        return self.clock() < self._down_until

    def timed_out(self) -> None:
        self._down_until = self.clock() + QUIET_AFTER_TIMEOUT

    @classmethod
    def from_config(cls, config, timeout: float = 5.0) -> "TXTLookup":
        return cls(make_sync_resolver(config.delivery.nameservers,
                                      config.delivery.nameserver_port, timeout))

    def txt(self, name: str) -> tuple[str, ...]:
        name = name.lower().rstrip(".")
        now = self.clock()
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(name)
                return hit[1]
        records, ttl = self._query(name)
        with self._lock:
            self._cache[name] = (now + ttl, records)
            self._cache.move_to_end(name)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return records

    def _query(self, name: str) -> tuple[tuple[str, ...], float]:
        if self.down():
            raise DNSTrouble(f"TXT {name}: resolver timed out recently")
        self.queries += 1
        try:
            qname = dns.name.from_text(name)
        except dns.exception.DNSException:
            return (), NEGATIVE_TTL  # not a name at all: nothing there
        try:
            ans = self.resolver.resolve(qname, "TXT", raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return (), NEGATIVE_TTL
        except dns.exception.Timeout as exc:
            self.timed_out()
            raise DNSTrouble(f"TXT {name}: {type(exc).__name__}") from None
        except dns.resolver.NoNameservers as exc:
            raise DNSTrouble(f"TXT {name}: {type(exc).__name__}") from None
        except dns.exception.DNSException as exc:
            raise DNSTrouble(f"TXT {name}: {exc}") from None
        if ans.rrset is None:
            return (), NEGATIVE_TTL
        out = []
        for rr in list(ans.rrset)[:MAX_RECORDS]:
            data = b"".join(rr.strings)
            if len(data) <= MAX_TXT:
                out.append(data.decode("utf-8", "replace"))
        ttl = max(MIN_TTL, min(MAX_TTL, ans.rrset.ttl))
        return tuple(out), ttl
