"""One-click unsubscribe under DKIM (RFC 8058 section 3): with `[web] base_url` each member's
copy carries its own List-Unsubscribe and List-Unsubscribe-Post, and its own signature
covering both, which dkimpy verifies at the sink against the loopback DNS server."""

from __future__ import annotations

import re

import pytest

from listmgr import site_secret, unsubscribe
from tests.dkim_support import install_site_key, key_zone, signatures, txt, verify, verify_all
from tests.dns_support import DNSServer
from tests.support import run_cli, write_config
from tests.test_posting_e2e import MEMBERS, STRANGER, post_text, send, setup_list, \
    wait_list_copies

BASE = "https://lists.example.org"
TOKEN = re.compile(rb"/u/([A-Za-z0-9_-]+)>")


@pytest.fixture
def dns_keys(tmp_path):
    """The site key in the data dir, published for example.org on loopback DNS."""
    public = install_site_key(tmp_path / "var")
    srv = DNSServer(key_zone("listmgr", "example.org", public))
    srv.start()
    yield srv
    srv.stop()


def signed_names(sig: dict[bytes, bytes]) -> list[bytes]:
    return [h.strip().lower() for h in sig[b"h"].split(b":")]


def post_to_decorated_list(srv, sink, verp: str) -> list:
    setup_list(srv, post_policy="open", verp=verp, subject_prefix="[$LIST]",
               message_footer="-- \nThe demo list\n")
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER, body="Hi all.\n.dot\n"))
    copies = wait_list_copies(sink, len(MEMBERS))
    assert len(copies) == len(MEMBERS)  # each member's copy has its own token
    return copies


def other_token(tok: bytes) -> bytes:
    """`tok` with its last character changed."""
    return tok[:-1] + (b"A" if tok[-1:] != b"A" else b"B")


@pytest.mark.parametrize("verp", ["on", "off"])
def test_each_copy_is_signed_over_its_own_unsubscribe_lines(server, sink, dns_keys, verp):
    srv = server(web__base_url=BASE)
    copies = post_to_decorated_list(srv, sink, verp)
    secret = site_secret.load(srv.config.data_dir)
    tokens = set()
    for c in copies:
        [rcpt] = c.rcpt_tos
        assert (c.mail_from == "owner-demo@example.org") == (verp == "off")
        assert c.message["Subject"] == "[demo] hello"
        assert "The demo list" in c.data.decode()
        [sig] = signatures(c.data)  # the per-copy signature replaces the shared one
        assert sig[b"d"] == b"example.org" and sig[b"s"] == b"listmgr"
        assert sig[b"c"] == b"relaxed/relaxed" and sig[b"a"] == b"rsa-sha256"
        names = signed_names(sig)
        assert b"list-unsubscribe" in names and b"list-unsubscribe-post" in names
        assert {b"from", b"subject", b"list-id", b"message-id"} <= set(names)
        assert verify(c.data, dns_keys), c.data[:1200]
        tok = TOKEN.search(c.data).group(1)
        assert unsubscribe.verify(secret, tok.decode(), "demo", rcpt.lower())
        tokens.add(tok)
        # Another member's token in this copy: the signature no longer verifies.
        forged = c.data.replace(tok, other_token(tok))
        assert not verify(forged, dns_keys)
        # Nor with a List-Unsubscribe added on top (the names are signed once more).
        added = b"List-Unsubscribe: <https://evil.example/u/x>\r\n" + c.data
        assert not verify(added, dns_keys)
    assert len(tokens) == len(MEMBERS)
    # One body hash for every copy: the body is shared.
    assert len({signatures(c.data)[0][b"bh"] for c in copies}) == 1


def test_without_base_url_one_signature_per_message_as_before(server, sink, dns_keys):
    srv = server()
    setup_list(srv, post_policy="open", verp="off", subject_prefix="[$LIST]",
               message_footer="-- \nThe demo list\n")
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    [copy] = wait_list_copies(sink, len(MEMBERS))
    assert sorted(copy.rcpt_tos) == sorted(MEMBERS)  # one transaction, one shared copy
    [sig] = signatures(copy.data)
    assert b"list-unsubscribe-post" not in signed_names(sig)
    assert copy.message["List-Unsubscribe"].startswith("<mailto:")
    assert verify(copy.data, dns_keys)


def test_ed25519_second_signature_per_copy(tmp_path, server, sink):
    path = write_config(tmp_path, "sqlite://")
    r = run_cli(path, "dkim", "keygen", "--algorithm", "ed25519", "--selector", "ed1")
    assert r.status == 0, r.err
    [record] = [ln for ln in r.out.splitlines() if not ln.startswith(";")]
    value = "".join(re.findall(r'"([^"]*)"', record))
    public = install_site_key(tmp_path / "var")
    dns = DNSServer({**key_zone("listmgr", "example.org", public),
                     "ed1._domainkey.example.org": {"TXT": [txt(value)]}})
    dns.start()
    try:
        srv = server(web__base_url=BASE, dkim__ed25519_selector="ed1")
        copies = post_to_decorated_list(srv, sink, "on")
        tokens = set()
        for c in copies:
            sigs = signatures(c.data)
            assert [(s[b"s"], s[b"a"]) for s in sigs] == [(b"ed1", b"ed25519-sha256"),
                                                          (b"listmgr", b"rsa-sha256")]
            for s in sigs:
                assert {b"list-unsubscribe", b"list-unsubscribe-post"} <= set(signed_names(s))
            assert [ok for _, ok in verify_all(c.data, dns)] == [True, True]
            tok = TOKEN.search(c.data).group(1)
            tokens.add(tok)
            forged = c.data.replace(tok, other_token(tok))
            assert [ok for _, ok in verify_all(forged, dns)] == [False, False]
        assert len(tokens) == len(MEMBERS)
    finally:
        dns.stop()
