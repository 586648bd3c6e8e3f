"""Inbound checks: Authentication-Results on posts (forged ones for our hostname removed),
require_auth holding forged member posts, ARC seals that validate, command mail checked.

The poster's domain signs with its own key and publishes SPF for 127.0.0.1 (where the test
client connects from); a DNS server on loopback serves it all.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import time

import dkim
import pytest
from sqlalchemy import select

from listmgr.auth import inbound
from listmgr.auth.dns import TXTLookup, make_sync_resolver
from listmgr.store import lists as repo
from listmgr.store.models import HeldPost
from tests.dkim_support import dnsfunc, install_site_key, key_zone, keypair, txt, verify_all
from tests.dns_support import DNSServer

MEMBER = "alice@reject.example"


@pytest.fixture
def dns_zone(tmp_path):
    ours = install_site_key(tmp_path / "var")
    poster_pem, poster_pub = keypair("poster")
    zone = {**key_zone("listmgr", "example.org", ours),
            **key_zone("s1", "reject.example", poster_pub),
            "reject.example": {"TXT": [txt("v=spf1 ip4:127.0.0.1 -all")]},
            "_dmarc.reject.example": {"TXT": [txt("v=DMARC1; p=reject")]},
            "elsewhere.example": {"TXT": [txt("v=spf1 ip4:192.0.2.1 -all")]},
            "_dmarc.elsewhere.example": {"TXT": [txt("v=DMARC1; p=reject")]}}
    srv = DNSServer(zone)
    srv.start()
    yield srv, poster_pem
    srv.stop()


def mail(frm: str, to: str, *, pem: bytes | None = None, extra: str = "",
         subject: str = "hello", body: str = "Hi all.\n") -> bytes:
    text = (f"{extra}From: {frm}\nTo: {to}\nSubject: {subject}\n"
            f"Message-ID: <{time.time_ns()}@x.example>\n\n{body}")
    data = text.replace("\n", "\r\n").encode()
    if pem:
        data = dkim.sign(data, b"s1", b"reject.example", pem,
                         canonicalize=(b"relaxed", b"relaxed")) + data
    return data


def send(srv, mail_from: str, rcpt: str, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as c:
        assert not c.sendmail(mail_from, [rcpt], data)


def setup(srv, **settings):
    def make(s):
        ml = repo.create_list(s, "demo", ["owner@owners.example"], password="pw")
        for k, v in settings.items():
            repo.set_setting(s, ml, k, v)
        repo.add_members(s, ml, [MEMBER, "bob@members.example"])
    srv.call(make)


def ar_fields(data: bytes) -> list[str]:
    msg = __import__("email").message_from_bytes(data)
    return [" ".join(str(v).split()) for v in msg.get_all("Authentication-Results", [])]


# --------------------------------------------------------------------------- unit

def test_strip_ours_removes_only_our_hostname():
    data = (b"Authentication-Results: Example.ORG;\r\n\tdkim=pass header.d=forged.example\r\n"
            b"Authentication-Results: example.org 1; spf=pass\r\n"
            b"Authentication-Results: mx.other.example; dkim=fail\r\n"
            b"Authentication-Results: example.org.evil.example; spf=pass\r\n"
            b"From: a@b.example\r\n\r\nbody\r\nAuthentication-Results: example.org; x\r\n")
    out = inbound.strip_ours(data, "example.org")
    assert out == (b"Authentication-Results: mx.other.example; dkim=fail\r\n"
                   b"Authentication-Results: example.org.evil.example; spf=pass\r\n"
                   b"From: a@b.example\r\n\r\nbody\r\nAuthentication-Results: example.org; x\r\n")
    assert inbound.strip_ours(b"Authentication-Results: example.org; x\r\nSubject: y",
                              "example.org") == b"Subject: y\r\n"


def test_many_signatures_only_the_first_few_are_checked(dns_zone):
    dns, pem = dns_zone
    lk = TXTLookup(make_sync_resolver((dns.address,), 53, 5.0))
    data = mail(MEMBER, "demo@example.org")
    for _ in range(20):
        data = dkim.sign(data, b"s1", b"reject.example", pem) + data
    res = inbound.check(lk, data=data, client_ip="127.0.0.1", helo="x", mail_from=MEMBER)
    assert res.dkim == [("pass", "reject.example")] * inbound.MAX_SIGNATURES
    assert res.spf == "pass" and res.dmarc == "pass" and res.policy == "reject"


def test_dns_that_does_not_answer_gives_temperror_in_bounded_time():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        lk = TXTLookup(make_sync_resolver((f"127.0.0.1:{sock.getsockname()[1]}",), 53, 1.0))
        data = dkim.sign(mail(MEMBER, "x@example.org"), b"s1", b"reject.example",
                         keypair("poster")[0]) + mail(MEMBER, "x@example.org")
        t0 = time.monotonic()
        res = inbound.check(lk, data=data, client_ip="127.0.0.1", helo="x",
                            mail_from=MEMBER)
        assert time.monotonic() - t0 < 15
        assert res.dkim == [("temperror", "reject.example")]
        assert res.spf == "temperror" and res.dmarc == "temperror"
        assert not res.aligned_pass
    finally:
        sock.close()


def test_all_checks_share_one_time_budget():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        lk = TXTLookup(make_sync_resolver((f"127.0.0.1:{sock.getsockname()[1]}",), 53, 1.0))
        pem = keypair("poster")[0]
        data = mail(MEMBER, "x@example.org")
        for _ in range(5):
            data = dkim.sign(data, b"s1", b"reject.example", pem) + data
        t0 = time.monotonic()
        res = inbound.check(lk, data=data, client_ip="127.0.0.1", helo="x",
                            mail_from=MEMBER, budget=2.5)
        assert time.monotonic() - t0 < 6
        assert [r for r, _ in res.dkim] == ["temperror"] * 5
        assert res.spf == "temperror" and res.dmarc == "temperror"
    finally:
        sock.close()


def test_garbage_signature_is_permerror_or_fail_never_an_exception(dns_zone):
    dns, _ = dns_zone
    lk = TXTLookup(make_sync_resolver((dns.address,), 53, 5.0))
    for sig in (b"DKIM-Signature: garbage\r\n", b"DKIM-Signature: v=1; d=reject.example;"
                b" s=s1; a=rsa-sha256; h=from; bh=AAAA; b=AAAA\r\n"):
        res = inbound.check(lk, data=sig + mail(MEMBER, "x@example.org"),
                            client_ip="127.0.0.1", helo="x", mail_from=MEMBER)
        assert res.dkim[0][0] in ("permerror", "fail")


# --------------------------------------------------------------------------- end to end

def test_post_carries_our_results_and_forged_ones_are_gone(server, sink, dns_zone):
    dns, pem = dns_zone
    srv = server(delivery__nameservers=[dns.address])
    setup(srv, subject_prefix="[$LIST]")
    forged = "Authentication-Results: example.org; dkim=pass header.d=forged.example\n"
    send(srv, MEMBER, "demo@example.org",
         mail(MEMBER, "demo@example.org", pem=pem, extra=forged))
    got = sink.wait_for(lambda r: sum(len(m.rcpt_tos) for m in r) >= 2)
    copy = got[0]
    [ours] = ar_fields(copy.data)
    assert ours.startswith("example.org;")
    assert "dkim=pass header.d=reject.example" in ours
    assert "spf=pass smtp.mailfrom=reject.example" in ours
    assert "dmarc=pass header.from=reject.example policy.dmarc=reject" in ours
    assert "forged.example" not in copy.data.decode()


def test_require_auth_holds_a_forged_member_post(server, sink, dns_zone):
    dns, pem = dns_zone
    srv = server(delivery__nameservers=[dns.address])
    setup(srv, require_auth="yes", post_policy="members", nonmember_action="reject")
    # Forged: the member's address, no signature; SPF passes only for 127.0.0.1 as
    # reject.example, so use a bounce address elsewhere whose SPF fails.
    send(srv, "someone@elsewhere.example", "demo@example.org",
         mail(MEMBER, "demo@example.org", subject="forged"))
    # Genuine: signed by the member's domain.
    send(srv, MEMBER, "demo@example.org", mail(MEMBER, "demo@example.org", pem=pem,
                                              subject="genuine"))
    got = sink.wait_for(lambda r: any("bob@members.example" in m.rcpt_tos for m in r))
    posts = [m for m in got if "bob@members.example" in m.rcpt_tos]
    assert [str(m.message["Subject"]) for m in posts] == ["genuine"]

    def held(s):
        return [(h.reasons if hasattr(h, "reasons") else "") for h in
                s.scalars(select(HeldPost))]
    for _ in range(100):
        rows = srv.call(held)
        if rows:
            break
        time.sleep(0.1)
    assert len(rows) == 1
    assert "not authenticated" in str(rows[0])
    # The moderator (owners) hears of it, with the reason.
    notice = sink.wait_for(lambda r: any("owner@owners.example" in m.rcpt_tos for m in r))
    text = [m for m in notice if "owner@owners.example" in m.rcpt_tos][0].data.decode()
    assert "not authenticated" in text


def test_require_auth_off_lets_it_through(server, sink, dns_zone):
    dns, _ = dns_zone
    srv = server(delivery__nameservers=[dns.address])
    setup(srv, post_policy="members")
    send(srv, "someone@elsewhere.example", "demo@example.org",
         mail(MEMBER, "demo@example.org", subject="unsigned"))
    got = sink.wait_for(lambda r: any("bob@members.example" in m.rcpt_tos for m in r))
    assert "spf=fail" in ar_fields(got[0].data)[0]
    assert "dmarc=fail" in ar_fields(got[0].data)[0]


def test_arc_sealed_post_validates(server, sink, dns_zone):
    dns, pem = dns_zone
    srv = server(delivery__nameservers=[dns.address], dkim__arc=True)
    setup(srv, subject_prefix="[$LIST]", message_footer="-- \nfooter\n")
    send(srv, MEMBER, "demo@example.org", mail(MEMBER, "demo@example.org", pem=pem))
    got = sink.wait_for(lambda r: sum(len(m.rcpt_tos) for m in r) >= 2)
    data = got[0].data
    cv, results, reason = dkim.arc_verify(data, dnsfunc=dnsfunc(dns))
    assert cv == b"pass", reason
    msg = __import__("email").message_from_bytes(data)
    aar = " ".join(str(msg["ARC-Authentication-Results"]).split())
    assert aar.startswith("i=1; example.org;") and "dkim=pass header.d=reject.example" in aar
    assert "cv=none" in " ".join(str(msg["ARC-Seal"]).split())
    # The poster's signature broke (prefix, footer), ours holds; From: is munged to ours.
    assert dict(verify_all(data, dns)) == {b"example.org": True, b"reject.example": False}
    assert msg["From"].endswith("<demo@example.org>")


def test_command_mail_is_checked_and_logged(server, sink, dns_zone, caplog):
    dns, pem = dns_zone
    srv = server(delivery__nameservers=[dns.address])
    caplog.set_level(logging.INFO, logger="listmgr.auth.inbound")
    send(srv, MEMBER, "majordomo@example.org",
         mail(MEMBER, "majordomo@example.org", pem=pem, body="help\n"))
    sink.wait_for(lambda r: any(MEMBER in m.rcpt_tos for m in r))
    lines = [r.getMessage() for r in caplog.records if " auth from=" in r.getMessage()]
    assert any("from=reject.example dkim=pass:reject.example spf=pass dmarc=pass" in ln
               for ln in lines), lines
