"""DKIM signing (RFC 6376) of the mail listmgr sends from its own domains, and key making.

A `Signer` holds the `[dkim]` selector, the signing domains and the private key. It signs a
message whose (single) From: address is in one of the signing domains or a subdomain of
one, with `d=` that domain; else, when the envelope sender is ours, with `d=` its domain.
So command replies, notices, returned mail (From: MAILER-DAEMON@hostname) and mail that
local users relay are signed for their From:, and list posts (envelope owner-LIST@domain)
are signed by the list's domain whatever their From: says.
Canonicalization relaxed/relaxed; the headers signed are dkimpy's RFC 6376 list of those
present (From: signed twice so no second From: can be added). With `[dkim]
ed25519_selector` a second signature, Ed25519-SHA256 (RFC 8463), is added beside the RSA
one: receivers that know Ed25519 may use it, the others the RSA one.

Signing happens once per message, at enqueue (listmgr.store.outbound). A message that
dkimpy cannot sign (malformed header) leaves unsigned with a warning: nothing is lost.
Copies that get header lines of their own at send time (a list post's one-click
List-Unsubscribe) are signed again per copy, over the shared fields plus their own lines,
by `Signer.for_copies` (listmgr.mail.dkim_copies).
"""

from __future__ import annotations

import base64
import functools
import logging
import os
from dataclasses import dataclass, field
from typing import Any
from email.utils import getaddresses
from pathlib import Path

import dkim

from listmgr.config import ConfigError
from listmgr.mail.addresses import domain_of
from listmgr.mail.dkim_copies import ED25519, RSA, CopySigner

log = logging.getLogger(__name__)

KEY_DIR = "dkim"
MAX_HEADER = 256 * 1024  # header section searched for From:


class DKIMKeyError(ConfigError):
    """The configured key cannot be used; the message says why, naming the file."""


def key_path(config, selector: str | None = None) -> Path:
    """Where a private key is: `[dkim] key` for the RSA selector, else
    <data_dir>/dkim/<selector>.key."""
    selector = selector or config.dkim.selector
    if config.dkim.key and selector == config.dkim.selector:
        return Path(config.dkim.key)
    return config.data_path / KEY_DIR / f"{selector}.key"


def signing_domains(config) -> tuple[str, ...]:
    """`[dkim] domains`, else every local domain."""
    return config.dkim.domains or config.local_domains


def header_fields(data: bytes, limit: int = MAX_HEADER) -> list[tuple[str, str]]:
    """(lower-case name, unfolded value) of each header field in the first `limit` bytes."""
    head = data[:limit].replace(b"\r\n", b"\n")
    end = head.find(b"\n\n")
    if end >= 0:
        head = head[:end]
    out: list[tuple[str, str]] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if out:
                prev_name, prev_value = out[-1]
                out[-1] = (prev_name, prev_value + " " + line.strip().decode("utf-8", "replace"))
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        out.append((name.strip().lower().decode("ascii", "replace"),
                    value.strip().decode("utf-8", "replace")))
    return out


def from_domain(data: bytes) -> str | None:
    """The domain of the message's single From: address, or None."""
    values = [v for n, v in header_fields(data) if n == "from"]
    if len(values) != 1:
        return None
    addrs = [a for _, a in getaddresses(values) if a]
    if len(addrs) != 1 or "@" not in addrs[0]:
        return None
    return domain_of(addrs[0])


def _matching(domain: str, domains: tuple[str, ...]) -> str | None:
    best = None
    for d in domains:
        if domain == d or domain.endswith("." + d):
            if best is None or len(d) > len(best):
                best = d
    return best


def _read_ed25519(path: Path) -> bytes:
    try:
        text = path.read_bytes().strip()
    except FileNotFoundError:
        raise DKIMKeyError(f"[dkim] ed25519_selector: {path} does not exist "
                           "(make it with `listmgr dkim keygen --algorithm ed25519`)") from None
    except OSError as exc:
        raise DKIMKeyError(f"cannot read DKIM key {path}: {exc.strerror}") from None
    try:
        if len(base64.b64decode(text, validate=True)) != 32:
            raise ValueError
    except ValueError:
        raise DKIMKeyError(f"{path} is not an Ed25519 private key (base64 of 32 bytes)") \
            from None
    return text


@dataclass(frozen=True)
class Signer:
    selector: str
    domains: tuple[str, ...]
    private_key: bytes = field(repr=False)  # PKCS#1 PEM
    ed25519_selector: str = ""
    ed25519_key: bytes = field(default=b"", repr=False)  # base64 of the 32-byte seed

    @classmethod
    def from_config(cls, config) -> "Signer | None":
        """The site's signer, or None when no key exists (signing off).

        An explicitly configured key that is missing or unusable is an error."""
        path = key_path(config)
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            if config.dkim.key:
                raise DKIMKeyError(f"[dkim] key {path} does not exist") from None
            return None
        except OSError as exc:
            raise DKIMKeyError(f"cannot read DKIM key {path}: {exc.strerror}") from None
        try:
            dkim.crypto.parse_pem_private_key(pem)
        except Exception:
            raise DKIMKeyError(f"{path} is not a PEM RSA private key "
                            "(make one with `listmgr dkim keygen`)") from None
        ed_selector = config.dkim.ed25519_selector
        ed_key = _read_ed25519(key_path(config, ed_selector)) if ed_selector else b""
        return cls(config.dkim.selector, signing_domains(config), pem, ed_selector, ed_key)

    @functools.cached_property
    def copy_keys(self) -> dict[tuple[bytes, bytes], Any]:
        """(selector, algorithm) -> `cryptography` private key, loaded once."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        keys: dict[tuple[bytes, bytes], Any] = {
            (self.selector.encode(), RSA): serialization.load_pem_private_key(
                self.private_key, password=None)}
        if self.ed25519_key:
            keys[(self.ed25519_selector.encode(), ED25519)] = \
                ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(self.ed25519_key))
        return keys

    def for_copies(self, payload: bytes) -> tuple[CopySigner | None, bytes]:
        """Per-copy signing of a message signed at enqueue (`payload` prepared: CRLF,
        dot-stuffed): the copy signer and the shared bytes without the signatures it
        replaces; (None, payload) when there is no signature of ours to make again."""
        return CopySigner.prepare(payload, self.copy_keys,
                                  tuple(d.lower() for d in self.domains))

    def domain_for(self, data: bytes, mail_from: str = "") -> str | None:
        """The d= domain this message would be signed with, or None."""
        dom = from_domain(data)
        found = _matching(dom, self.domains) if dom else None
        if found is None and "@" in mail_from:
            found = _matching(domain_of(mail_from), self.domains)
        return found

    def signature(self, data: bytes, domain: str) -> bytes:
        """The DKIM-Signature field(s) (CRLF-terminated) for `data` with d=`domain`: RSA,
        and Ed25519 on top of it when configured."""
        out = dkim.sign(data, self.selector.encode(), domain.encode(), self.private_key,
                        canonicalize=(b"relaxed", b"relaxed"), linesep=b"\r\n")
        if self.ed25519_key:
            out = dkim.sign(data, self.ed25519_selector.encode(), domain.encode(),
                            self.ed25519_key, canonicalize=(b"relaxed", b"relaxed"),
                            signature_algorithm=b"ed25519-sha256", linesep=b"\r\n") + out
        return out

    def sign(self, data: bytes, mail_from: str = "") -> bytes:
        """`data` with our DKIM-Signature on top when it is ours to sign, else unchanged."""
        domain = self.domain_for(data, mail_from)
        if domain is None:
            return data
        try:
            return self.signature(data, domain) + data
        except Exception as exc:  # dkimpy raises several kinds on malformed input
            log.warning("message not DKIM-signed: %s", exc)
            return data


    def arc_seal(self, data: bytes, domain: str, authserv_id: str) -> bytes:
        """`data` with an ARC set (RFC 8617) on top, sealing our Authentication-Results
        (authserv-id `authserv_id`, which must be on the message) with d=`domain`."""
        d = _matching(domain.lower(), self.domains)
        if d is None:
            return data
        try:
            fields = dkim.arc_sign(data, self.selector.encode(), d.encode(), self.private_key,
                                   authserv_id.encode(), linesep=b"\r\n")
        except Exception as exc:  # dkimpy raises several kinds on malformed input
            log.warning("message not ARC-sealed: %s", exc)
            return data
        return b"".join(fields) + data


# --------------------------------------------------------------------------- keys

def generate_key(bits: int = 2048) -> tuple[bytes, str]:
    """A new RSA key: (PKCS#1 PEM private key, base64 DER public key for p=)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(der).decode("ascii")


def generate_ed25519_key() -> tuple[bytes, str]:
    """A new Ed25519 key: (base64 of the 32-byte private seed, base64 raw public key)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    return base64.b64encode(_raw(key)) + b"\n", base64.b64encode(
        _raw(key.public_key())).decode("ascii")


def _raw(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    if hasattr(key, "private_bytes"):
        return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_of(pem: bytes) -> str:
    """The p= value of a private key file: base64 DER (RSA, PEM) or base64 raw (Ed25519)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    text = pem.strip()
    if not text.startswith(b"-----"):
        seed = base64.b64decode(text, validate=True)
        return base64.b64encode(_raw(ed25519.Ed25519PrivateKey.from_private_bytes(
            seed).public_key())).decode("ascii")
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def txt_value(public_b64: str, algorithm: str = "rsa") -> str:
    return f"v=DKIM1; k={algorithm}; p={public_b64}"


def key_algorithm(key_file: bytes) -> str:
    return "rsa" if key_file.strip().startswith(b"-----") else "ed25519"


def txt_record(selector: str, domain: str, public_b64: str, algorithm: str = "rsa") -> str:
    """A zone-file line; the value split into strings of at most 255 characters."""
    value = txt_value(public_b64, algorithm)
    chunks = " ".join(f'"{value[i:i + 250]}"' for i in range(0, len(value), 250))
    return f"{selector}._domainkey.{domain}. IN TXT ( {chunks} )"


def write_key(path: Path, pem: bytes) -> None:
    """Write the private key with mode 0600 (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
