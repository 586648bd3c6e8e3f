"""DKIM and DNS helpers for the deliverability tests: a site key in the data dir, its TXT
record served by the loopback DNS server (tests/dns_support.py), and dkimpy's verifiers
asking that server.
"""

from __future__ import annotations

from pathlib import Path

import dkim
import dns.resolver

from listmgr.mail import dkim as ldkim
from tests.dns_support import DNSServer

_KEYS: dict[tuple[str, int], tuple[bytes, str]] = {}


def keypair(name: str = "site", bits: int = 1024) -> tuple[bytes, str]:
    """A key made once per test session (key generation is the slow part)."""
    if (name, bits) not in _KEYS:
        _KEYS[(name, bits)] = ldkim.generate_key(bits)
    return _KEYS[(name, bits)]


def install_site_key(data_dir: Path, selector: str = "listmgr") -> str:
    """Write the site key where `[dkim]` looks by default; returns the p= value."""
    pem, public = keypair()
    path = Path(data_dir) / "dkim" / f"{selector}.key"
    if not path.exists():
        ldkim.write_key(path, pem)
    return public


def txt(value: str) -> str:
    """A TXT rdata in zone syntax, split into <=250-character strings."""
    return " ".join(f'"{value[i:i + 250]}"' for i in range(0, len(value), 250))


def key_zone(selector: str, domain: str, public: str) -> dict[str, dict[str, list[str]]]:
    return {f"{selector}._domainkey.{domain}": {"TXT": [txt(ldkim.txt_value(public))]}}


def dnsfunc(server: DNSServer):
    """dkimpy's dnsfunc(name, timeout) answered by the loopback server."""
    def get_txt(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = server.port
        r.lifetime = timeout
        try:
            ans = r.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(ans[0].strings)
    return get_txt


def verify(data: bytes, server: DNSServer) -> bool:
    """The topmost DKIM-Signature verifies."""
    return dkim.verify(data, dnsfunc=dnsfunc(server))


def signatures(data: bytes) -> list[dict[bytes, bytes]]:
    """The tags of every DKIM-Signature, top first."""
    d = dkim.DKIM(data)
    return [dkim.util.parse_tag_value(v) for n, v in d.headers
            if n.lower() == b"dkim-signature"]


def verify_all(data: bytes, server: DNSServer) -> list[tuple[bytes, bool]]:
    """(d=, verifies) for each DKIM-Signature, top first."""
    out = []
    for i, sig in enumerate(signatures(data)):
        try:
            ok = dkim.DKIM(data).verify(idx=i, dnsfunc=dnsfunc(server))
        except dkim.DKIMException:
            ok = False
        out.append((sig[b"d"], ok))
    return out
