#!/usr/bin/env python3
"""CPU per personalised DKIM signature: one 10 KB list post, N copies with their own
one-click List-Unsubscribe lines.

    python bench/dkim_copies.py [--copies 2000] [--bits 2048]

Prints CPU milliseconds (process time, so the machine's other load counts less) per copy
for: the per-message preparation (listmgr.mail.dkim_copies.CopySigner.prepare: parse the
enqueue signature, canonicalise the shared fields), a copy's RSA signature, a copy's RSA
plus Ed25519 signatures, and for comparison dkimpy signing each whole copy (what per-copy
signing would cost without the shared preparation). Every kind is checked once with
dkimpy's verifier first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dkim  # noqa: E402

from listmgr.delivery.smtpclient import prepare_payload  # noqa: E402
from listmgr.mail import dkim as ldkim  # noqa: E402


def post() -> bytes:
    head = (b"From: Poster <poster@example.com>\r\nTo: bench@example.org\r\n"
            b"Subject: [bench] per-copy signatures\r\nMessage-ID: <b1@example.com>\r\n"
            b"Date: Thu, 03 Dec 2026 04:00:00 +0000\r\nList-Id: <bench.example.org>\r\n"
            b"List-Post: <mailto:bench@example.org>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n")
    line = b"list post bench mail member fan out queue sink data list post bench\r\n"
    return head + line * (10_000 // len(line))


def own(i: int) -> bytes:
    return (f"List-Unsubscribe: <https://lists.example.org/u/{i:08d}AbCdEfGhIjKlMnOpQrStUv>,"
            "\r\n <mailto:bench-request@example.org?subject=unsubscribe>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n").encode()


def cpu_ms(fn, n: int) -> float:
    t = time.process_time()
    for i in range(n):
        fn(i)
    return (time.process_time() - t) / n * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, default=2000)
    ap.add_argument("--bits", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    pem, public = ldkim.generate_key(args.bits)
    seed, ed_public = ldkim.generate_ed25519_key()
    rsa = ldkim.Signer("listmgr", ("example.org",), pem)
    both = ldkim.Signer("listmgr", ("example.org",), pem, "ed1", seed.strip())

    def txt(name, timeout=5):
        if name.startswith(b"ed1."):
            return ldkim.txt_value(ed_public, "ed25519").encode()
        return ldkim.txt_value(public).encode()

    data = post()
    rows: dict[str, list[float]] = {}
    for label, signer in (("RSA", rsa), ("RSA + Ed25519", both)):
        payload = prepare_payload(signer.sign(data, "owner-bench@example.org"))
        assert signer.copy_keys  # loaded once per process, not per message
        cs, shared = signer.for_copies(payload)
        assert cs is not None
        copy = (cs.fields(own(1)) + own(1) + shared)[:-3]
        d = dkim.DKIM(copy)
        assert all(d.verify(idx=i, dnsfunc=txt) for i in range(2 if signer is both else 1))
        for _ in range(args.runs):
            if signer is rsa:
                rows.setdefault("once per message: prepare", []).append(
                    cpu_ms(lambda i: signer.for_copies(payload), max(1, args.copies // 20)))
            rows.setdefault(f"per copy: {label}", []).append(
                cpu_ms(lambda i: cs.fields(own(i)), args.copies))
    plain = rsa.sign(data, "owner-bench@example.org")
    for _ in range(args.runs):
        rows.setdefault("per copy: dkimpy signing the whole copy (RSA)", []).append(cpu_ms(
            lambda i: dkim.sign(own(i) + plain, b"listmgr", b"example.org", pem,
                                canonicalize=(b"relaxed", b"relaxed")), max(1, args.copies // 100)))
    print(f"load average {os.getloadavg()[0]:.1f}; RSA-{args.bits}; "
          f"{len(data):,}-byte post; median of {args.runs} runs\n")
    print("| step | CPU ms (median) | runs |\n|---|---:|---|")
    for k, v in rows.items():
        print(f"| {k} | {statistics.median(v):.3f} | {', '.join(f'{x:.3f}' for x in v)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
