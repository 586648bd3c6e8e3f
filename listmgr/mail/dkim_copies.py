"""DKIM signatures per copy: one message, copies that differ only in a few header lines put
on top of it (a list post's one-click List-Unsubscribe, RFC 8058).

RFC 8058 section 3: List-Unsubscribe and List-Unsubscribe-Post "MUST be covered by the
signature", and receivers offer one-click unsubscribe only then. Each member's lines carry
their own token, so each copy needs its own signature. A message signed at enqueue
(listmgr.mail.dkim) already carries our signature over the shared header fields and body;
`CopySigner.prepare` takes that signature off the shared bytes and keeps what every copy
has in common, once per message:

- the body hash (`bh=`, from the enqueue signature, made over the same body);
- the relaxed canonical form (RFC 6376 3.4.2) of the shared header fields it signed, fed
  once into a SHA-256 state;
- the signature's tags (`h=` the shared fields plus the copy's own, `t=` of the enqueue).

Per copy only its own lines are canonicalised, the SHA-256 state copied and finished, and
one RSA (and, with `[dkim] ed25519_selector`, one Ed25519) signature made with
`cryptography` (about 0.3 ms for RSA-2048; dkimpy's pure-Python RSA takes 12-46 ms).

The copy's signature replaces the enqueue one rather than joining it: same key, same `d=`,
a superset of its header fields, so the old one would only add bytes, and a copy whose
List-Unsubscribe was altered would still show a passing signature from us. Each of the
copy's own field names is listed in `h=` once more than it occurs (RFC 6376 8.15), so a
List-Unsubscribe added later on top breaks the signature instead of riding on it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import dkim.util

RSA = b"rsa-sha256"
ED25519 = b"ed25519-sha256"
LINE = 76  # columns of a folded DKIM-Signature line

_WSP = re.compile(rb"[ \t]+")
_TAG_ORDER = (b"v", b"a", b"c", b"d", b"i", b"q", b"s", b"t")


def relaxed(name: bytes, value: bytes) -> bytes:
    """One header field in relaxed canonical form (RFC 6376 3.4.2), CRLF-terminated: name
    lower-cased, value unfolded, runs of WSP made one space, WSP trimmed at both ends."""
    value = _WSP.sub(b" ", value.replace(b"\r\n", b"")).strip(b" \t\r\n")
    return name.lower().rstrip(b" \t") + b":" + value + b"\r\n"


def fields_of(block: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value with its folds) of each field of a CRLF header block (SMTP
    dot-stuffing undone: a line starting with `..` is one starting with `.`)."""
    out: list[list[bytes]] = []
    for line in block.split(b"\r\n"):
        if line[:2] == b"..":
            line = line[1:]
        if line[:1] in (b" ", b"\t") and out:
            out[-1][1] += b"\r\n" + line
            continue
        name, sep, value = line.partition(b":")
        if sep:
            out.append([name, value])
    return [(n, v) for n, v in out]


def select(names: list[bytes], wanted: list[bytes]) -> list[int | None]:
    """Which field each `h=` entry signs (RFC 6376 5.4.2): the last instance of a name not
    yet taken, going up; None when there is none left (a null string)."""
    out: list[int | None] = []
    last: dict[bytes, int] = {}
    for h in wanted:
        i = last.get(h, len(names))
        found = None
        while i > 0:
            i -= 1
            if names[i] == h:
                found = i
                break
        last[h] = i if found is not None else 0
        out.append(found)
    return out


def fold_tags(tags: list[tuple[bytes, bytes]]) -> bytes:
    """`DKIM-Signature:` and the tags, folded before LINE columns (between tags, or after a
    colon of `h=`), then `b=` on a line of its own with an empty value."""
    out = bytearray(b"DKIM-Signature:")
    col = len(out)
    for name, value in tags:
        pieces = [name + b"=" + value + b";"]
        if name == b"h":
            hs = value.split(b":")
            pieces = [b"h=" + hs[0] + (b":" if len(hs) > 1 else b";")]
            pieces += [h + b":" for h in hs[1:-1]] + ([hs[-1] + b";"] if len(hs) > 1 else [])
        for j, piece in enumerate(pieces):
            sep = b"" if j else b" "
            if col + len(sep) + len(piece) > LINE:
                out += b"\r\n " + piece
                col = 1 + len(piece)
            else:
                out += sep + piece
                col += len(sep) + len(piece)
    return bytes(out) + b"\r\n b="


def fold_b(signature: bytes) -> bytes:
    """The base64 of `signature`, folded to follow ` b=` (whitespace in b= is ignored)."""
    text = base64.b64encode(signature)
    first = LINE - 3
    chunks = [text[:first]] + [text[i:i + LINE - 1] for i in range(first, len(text), LINE - 1)]
    return b"\r\n ".join(c for c in chunks if c) + b"\r\n"


@dataclass(frozen=True)
class _Template:
    """One signature of the enqueue: its algorithm, key and tags but `h=` and `b=`."""

    algorithm: bytes
    key: Any = field(repr=False)  # cryptography private key
    tags: tuple[tuple[bytes, bytes], ...]
    bh: bytes

    def sign(self, digest: bytes) -> bytes:
        if self.algorithm == ED25519:
            # RFC 8463 3: PureEdDSA over the SHA-256 hash of the canonical data.
            return self.key.sign(digest)
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, utils
        return self.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


@dataclass
class _Plan:
    """For copies whose own lines have these names: the hash state over the shared fields
    that come first in `h=`, what follows (shared canonical bytes or the index of one of
    the copy's lines), and each template's field with `b=` empty and its canonical form."""

    prefix: Any  # hashlib sha256 state
    rest: list[bytes | int]
    heads: list[tuple[_Template, bytes, bytes]]


class CopySigner:
    """Signs the copies of one message (see the module docstring)."""

    def __init__(self, templates: list[_Template], h: list[bytes], names: list[bytes],
                 canon: list[bytes]):
        self.templates = templates
        self.h = h            # h= of the enqueue signature, lower-case names
        self.names = names    # lower-case names of the shared fields, top first
        self.canon = canon    # their relaxed canonical forms
        self._plans: dict[tuple[bytes, ...], _Plan] = {}

    @classmethod
    def prepare(cls, payload: bytes, keys: dict[tuple[bytes, bytes], Any],
                domains: tuple[str, ...]) -> tuple["CopySigner | None", bytes]:
        """(signer, payload without the signatures it replaces) for a prepared payload
        (CRLF, dot-stuffed) whose top fields are our DKIM-Signatures. `keys` maps
        (selector, algorithm) to a `cryptography` private key. (None, payload) when the
        message carries no signature of ours that a key here can make again."""
        end = payload.find(b"\r\n\r\n")
        if end < 0:
            return None, payload
        top = fields_of(payload[:end])
        templates: list[_Template] = []
        kept: list[bytes] = []
        h: list[bytes] | None = None
        n = 0
        for name, value in top:
            if name.lower() != b"dkim-signature":
                break
            n += 1
            try:
                tags = dkim.util.parse_tag_value(value)
            except Exception:
                tags = {}
            tags = {k: re.sub(rb"\s+", b"", v) for k, v in tags.items()}
            key = keys.get((tags.get(b"s", b""), tags.get(b"a", b"")))
            this_h = [x.lower() for x in tags.get(b"h", b"").split(b":") if x]
            if (key is None or tags.get(b"d", b"").decode("ascii", "replace").lower()
                    not in domains or tags.get(b"c") != b"relaxed/relaxed" or b"l" in tags
                    or b"bh" not in tags or (h is not None and this_h != h)):
                kept.append(b"DKIM-Signature:" + value + b"\r\n")
                continue
            h = this_h
            templates.append(_Template(tags[b"a"], key, tuple(
                (k, tags[k]) for k in _TAG_ORDER if k in tags), tags[b"bh"]))
        if not templates or h is None:
            return None, payload
        rest = top[n:]
        # The signed fields' bytes start after the n signature fields of the top.
        cut = 0
        for _ in range(n):
            cut = _field_end(payload, cut)
        names = [nm.lower().rstrip(b" \t") for nm, _ in rest]
        canon = [relaxed(nm, v) for nm, v in rest]
        return cls(templates, h, names, canon), b"".join(kept) + payload[cut:]

    def _plan(self, own: tuple[bytes, ...]) -> _Plan:
        # Each of the copy's own fields, then each name once more (a null string: no field
        # of that name may be added above).
        h = self.h + list(own) + list(dict.fromkeys(own))
        picks = select(list(own) + self.names, h)
        prefix = hashlib.sha256()
        rest: list[bytes | int] = []
        for i in picks:
            if i is None:
                continue
            item: bytes | int = i if i < len(own) else self.canon[i - len(own)]
            if not rest and isinstance(item, bytes):
                prefix.update(item)
            else:
                rest.append(item)
        heads = []
        for t in self.templates:
            tags = list(t.tags) + [(b"h", b":".join(h)), (b"bh", t.bh)]
            head = fold_tags(tags)
            canon = relaxed(b"dkim-signature", head[len(b"DKIM-Signature:"):])[:-2]
            heads.append((t, head, canon))
        plan = _Plan(prefix, rest, heads)
        self._plans[own] = plan
        return plan

    def fields(self, own_lines: bytes) -> bytes:
        """The DKIM-Signature field(s) for the copy with `own_lines` (CRLF header lines, or
        b"") on top of the shared bytes; they go above those lines."""
        own = fields_of(own_lines[:-2] if own_lines.endswith(b"\r\n") else own_lines) \
            if own_lines else []
        names = tuple(nm.lower().rstrip(b" \t") for nm, _ in own)
        plan = self._plans.get(names) or self._plan(names)
        base = plan.prefix.copy()
        for item in plan.rest:
            base.update(item if isinstance(item, bytes) else relaxed(*own[item]))
        out = []
        for t, head, canon in plan.heads:
            h = base.copy()
            h.update(canon)
            out.append(head + fold_b(t.sign(h.digest())))
        return b"".join(out)


def _field_end(data: bytes, start: int) -> int:
    """Where the header field starting at `start` ends (after its last CRLF)."""
    i = start
    while True:
        j = data.find(b"\r\n", i)
        if j < 0:
            return len(data)
        i = j + 2
        if data[i:i + 1] not in (b" ", b"\t"):
            return i
