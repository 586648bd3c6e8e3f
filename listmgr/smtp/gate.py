"""The relay gate: may this client send mail to a domain we do not host?

Yes only if (1) the client authenticated with SMTP AUTH (offered over TLS only), or (2) its
IP is in `[smtp] relay_networks`, or (3) a POP3 login from its IP left a `relay_grants` row
that has not expired (POP-before-SMTP, window counted from the login). Grants live in the
store, so every `listmgr serve` process on one PostgreSQL sees the same ones. Loopback is
not implied: 127.0.0.1 is judged like any other client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from listmgr.store.db import Session
from listmgr.store.mailboxes import normalise_ip, relay_allowed

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(networks: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def in_networks(ip: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(normalise_ip(ip))
    except ValueError:
        return False
    return any(addr.version == net.version and addr in net for net in networks)


def has_grant(s: Session, ip: str, window: float | None = None) -> bool:
    """A POP3 login from `ip` whose relay window (the current `window`, when given) is still
    open."""
    return relay_allowed(s, ip, window=window)


class RelayGate:
    def __init__(self, relay_networks: Iterable[str], relay_window: float | None = None):
        self.networks = parse_networks(relay_networks)
        self.window = relay_window

    def allowed_without_store(self, ip: str, authenticated: bool) -> bool:
        """The checks that need no database: SMTP AUTH and relay_networks."""
        return authenticated or in_networks(ip, self.networks)

    def allowed(self, s: Session, ip: str, authenticated: bool = False) -> bool:
        return self.allowed_without_store(ip, authenticated) or \
            has_grant(s, ip, self.window)
