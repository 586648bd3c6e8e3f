"""A post from a p=reject domain through lists that change it, as the members' provider
sees it: our DKIM signature verifies and DMARC passes (an aligned, verifying signature),
for each subject prefix / footer / MIME kind and each mitigation mode.

The poster's domain signs its mail (dkimpy, its own key); everything is published by a DNS
server on loopback that is also the server's `[delivery] nameservers`.
"""

from __future__ import annotations

import base64
import email
import email.policy
import itertools
import smtplib
import time

import dkim
import pytest

from listmgr.store import lists as repo
from tests.dkim_support import (
    install_site_key, key_zone, keypair, signatures, txt, verify, verify_all,
)
from tests.dns_support import DNSServer

POSTER = "Alice Tanaka <alice@reject.example>"
POSTER_ADDR = "alice@reject.example"

KINDS = {
    "plain": ("Content-Type: text/plain; charset=us-ascii\n", "Hello list.\n"),
    "japanese": ("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
                 "Content-Transfer-Encoding: base64\n",
                 base64.encodebytes("こんにちは、皆さん。\n".encode()).decode()),
    "alternative": ("MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b1\"\n",
                    "--b1\nContent-Type: text/plain\n\nplain\n--b1\nContent-Type: text/html\n\n"
                    "<p>html</p>\n--b1--\n"),
    "mixed": ("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b2\"\n",
              "--b2\nContent-Type: text/plain\n\nsee attached\n--b2\n"
              "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
              "Content-Disposition: attachment; filename=\"a.bin\"\n\nAAECAwQ=\n--b2--\n"),
}
DECORATIONS = {  # list name suffix -> (subject_prefix, message_footer)
    "bare": ("", ""),
    "prefix": ("[$LIST]", ""),
    "footer": ("", "-- \nThe list footer\n"),
    "both": ("[$LIST]", "-- \nThe list footer\n"),
}


@pytest.fixture
def dns_zone(tmp_path):
    ours = install_site_key(tmp_path / "var")
    poster_pem, poster_pub = keypair("poster")
    zone = {**key_zone("listmgr", "example.org", ours),
            **key_zone("s1", "reject.example", poster_pub),
            "_dmarc.reject.example": {"TXT": [txt("v=DMARC1; p=reject; adkim=r")]},
            "_dmarc.example.org": {"TXT": [txt("v=DMARC1; p=reject")]}}
    srv = DNSServer(zone)
    srv.start()
    yield srv, poster_pem
    srv.stop()


def poster_mail(pem: bytes, to: str, subject: str, kind: str, frm: str = POSTER) -> bytes:
    head, body = KINDS[kind]
    text = (f"From: {frm}\nTo: {to}\nSubject: {subject}\nDate: Wed, 02 Dec 2026 10:00:00 "
            f"+0000\nMessage-ID: <{time.time_ns()}@reject.example>\n{head}\n{body}")
    data = text.replace("\n", "\r\n").encode()
    sig = dkim.sign(data, b"s1", b"reject.example", pem,
                    canonicalize=(b"relaxed", b"relaxed"))
    return sig + data


def org(domain: str) -> str:
    return ".".join(domain.lower().split(".")[-2:])


def dmarc_passes(data: bytes, server) -> bool:
    """RFC 7489 with DKIM: some signature verifies and its d= is aligned (relaxed) with the
    domain of the one From: address."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    [addr] = msg["From"].addresses
    want = org(addr.domain)
    return any(ok and org(d.decode()) == want for d, ok in verify_all(data, server))


def inner_original(data: bytes) -> bytes:
    """The raw bytes of the message/rfc822 part of a wrapped post."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    if msg.get_content_type() == "message/rfc822":
        return data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1].replace(b"\n", b"\r\n")
    boundary = msg.get_boundary().encode()
    body = data.split(b"\r\n\r\n", 1)[1]
    for part in body.split(b"--" + boundary)[1:]:
        head, _, rest = part.partition(b"\r\n\r\n")
        if b"message/rfc822" in head.lower():
            return rest[:-2] if rest.endswith(b"\r\n") else rest
    raise AssertionError("no message/rfc822 part")


def start(server, dns, mode: str):
    srv = server(delivery__nameservers=[dns.address])

    def make(s):
        for suffix, (prefix, footer) in DECORATIONS.items():
            ml = repo.create_list(s, f"{mode[:4]}-{suffix}", ["owner@owners.example"],
                                  password="pw")
            repo.set_setting(s, ml, "subject_prefix", prefix)
            repo.set_setting(s, ml, "message_footer", footer)
            repo.set_setting(s, ml, "dmarc_mitigation", mode)
            repo.set_setting(s, ml, "post_policy", "open")
            repo.add_members(s, ml, [f"m-{suffix}@members.example"])
    srv.call(make)
    return srv


def send(srv, mail_from: str, rcpt: str, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as c:
        assert not c.sendmail(mail_from, [rcpt], data)


@pytest.mark.parametrize("mode", ["munge_from", "wrap"])
def test_every_decoration_and_mime_kind_passes_dmarc(server, sink, dns_zone, mode):
    dns, pem = dns_zone
    srv = start(server, dns, mode)
    cases = list(itertools.product(DECORATIONS, KINDS))
    for suffix, kind in cases:
        name = f"{mode[:4]}-{suffix}"
        send(srv, POSTER_ADDR, f"{name}@example.org",
             poster_mail(pem, f"{name}@example.org", f"{suffix} {kind}", kind))
    got = sink.wait_for(lambda r: len(r) >= len(cases), timeout=60)
    assert len(got) == len(cases)
    for copy in got:
        suffix = copy.rcpt_tos[0].split("@")[0][2:]
        prefix, footer = DECORATIONS[suffix]
        msg = copy.message
        where = f"{suffix}/{msg['Subject']}"
        [ours] = [s for s in signatures(copy.data) if s[b"d"] == b"example.org"]
        assert ours[b"s"] == b"listmgr", where
        assert dict(verify_all(copy.data, dns))[b"example.org"], where
        assert dmarc_passes(copy.data, dns), where
        changed = bool(prefix or footer)
        if not changed:
            # A list that changes nothing: From: untouched, the poster's signature holds.
            assert msg["From"] == POSTER, where
            assert dict(verify_all(copy.data, dns))[b"reject.example"], where
            continue
        assert msg["From"].addresses[0].addr_spec == f"{mode[:4]}-{suffix}@example.org", where
        assert msg["From"].addresses[0].display_name == \
            f"Alice Tanaka via {mode[:4]}-{suffix}", where
        assert POSTER_ADDR in str(msg["Reply-To"]), where
        if prefix:
            assert str(msg["Subject"]).startswith(f"[{mode[:4]}-{suffix}] "), where
        if footer:
            assert "The list footer" in copy.data.decode("utf-8", "replace") or any(
                "The list footer" in p.get_content() for p in msg.walk()
                if p.get_content_type() == "text/plain"), where
        if mode == "wrap":
            inner = inner_original(copy.data)
            assert inner.startswith(b"DKIM-Signature:"), where
            # The post travels unchanged inside: its own signature still verifies.
            assert verify(inner, dns), where


def test_without_mitigation_a_changed_post_fails_dmarc(server, sink, dns_zone):
    """The reason for all this: with a prefix and a footer and mitigation off, the
    poster's signature breaks and nothing aligned is left."""
    dns, pem = dns_zone
    srv = start(server, dns, "none")
    send(srv, POSTER_ADDR, "none-both@example.org",
         poster_mail(pem, "none-both@example.org", "hi", "plain"))
    [copy] = sink.wait_for(lambda r: len(r) >= 1)
    assert copy.message["From"] == POSTER
    assert dict(verify_all(copy.data, dns)) == {b"example.org": True,
                                                b"reject.example": False}
    assert not dmarc_passes(copy.data, dns)


def test_japanese_poster_name_survives_munging_at_the_receiver(server, sink, dns_zone):
    from email.header import decode_header, make_header
    dns, pem = dns_zone
    srv = start(server, dns, "munge_from")
    name = make_header([("山田 太郎".encode("iso-2022-jp"), "iso-2022-jp")]).encode()
    data = poster_mail(pem, "mung-both@example.org", "hi", "japanese",
                       frm=f"{name} <{POSTER_ADDR}>")
    send(srv, POSTER_ADDR, "mung-both@example.org", data)
    [copy] = sink.wait_for(lambda r: len(r) >= 1)
    raw_from = email.message_from_bytes(copy.data, policy=email.policy.compat32)["From"]
    assert str(make_header(decode_header(str(raw_from)))) == \
        "山田 太郎 via mung-both <mung-both@example.org>"
    assert copy.data.split(b"\r\n\r\n")[0].isascii()
    assert dmarc_passes(copy.data, dns)
    assert POSTER_ADDR in str(copy.message["Reply-To"])
