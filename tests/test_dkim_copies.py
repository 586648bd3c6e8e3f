"""Per-copy DKIM signatures (listmgr.mail.dkim_copies), checked by dkimpy's verifier: the
shared bytes prepared once, each copy's own lines signed on top."""

from __future__ import annotations

import dkim
import pytest
from dkim.canonicalization import Relaxed

from listmgr.delivery.smtpclient import prepare_payload
from listmgr.mail import dkim as ldkim
from listmgr.mail.dkim_copies import fields_of, relaxed, select
from tests.dkim_support import keypair, signatures

POST = (b"From: Alice <alice@example.com>\r\nTo: demo@example.org\r\n"
        b"Subject: [demo]  hello\r\n\tthere \r\nList-Id: <demo.example.org>\r\n"
        b"Message-ID: <m1@example.com>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nHi all.\r\n.a dot line\r\n"
        b"-- \r\nThe demo list\r\n")
OWN = (b"List-Unsubscribe: <https://lists.example.org/u/TOKEN1>,\r\n"
       b" <mailto:demo-request@example.org?subject=unsubscribe>\r\n"
       b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
ENVELOPE = "owner-demo@example.org"


@pytest.fixture(scope="module")
def keys():
    pem, public = keypair()
    seed, ed_public = ldkim.generate_ed25519_key()
    return pem, public, seed.strip(), ed_public


def signer_of(keys, ed25519: bool = True) -> ldkim.Signer:
    pem, _, seed, _ = keys
    return ldkim.Signer("listmgr", ("example.org",), pem, "ed1" if ed25519 else "",
                        seed if ed25519 else b"")


def dns(keys):
    _, public, _, ed_public = keys

    def get_txt(name, timeout=5):
        if name.startswith(b"ed1."):
            return ldkim.txt_value(ed_public, "ed25519").encode()
        return ldkim.txt_value(public).encode()
    return get_txt


def wire(payload: bytes) -> bytes:
    """What the receiver reads: dot-stuffing and the final dot undone."""
    assert payload.endswith(b"\r\n.\r\n")
    return payload[:-3].replace(b"\r\n..", b"\r\n.")


def verdicts(data: bytes, keys) -> list[bool]:
    out = []
    for i in range(len(signatures(data))):
        try:
            out.append(dkim.DKIM(data).verify(idx=i, dnsfunc=dns(keys)))
        except dkim.DKIMException:
            out.append(False)
    return out


def copy_of(signer: ldkim.Signer, post: bytes, own: bytes) -> bytes:
    cs, shared = signer.for_copies(prepare_payload(signer.sign(post, ENVELOPE)))
    assert cs is not None
    return wire(cs.fields(own) + own + shared)


def test_relaxed_and_select_agree_with_dkimpy():
    block = (b"Subject:  a \t b\r\n\t c  \r\nFROM:x@y\r\nX-Empty:\r\nTo: p\r\nFrom: z@y\r\n"
             b"to:  q")
    fields = fields_of(block)
    assert [relaxed(n, v) for n, v in fields] == [
        n + b":" + v for n, v in Relaxed.canonicalize_headers(
            [(n, v + b"\r\n") for n, v in fields])]
    names = [n.lower().rstrip() for n, _ in fields]
    wanted = [b"from", b"to", b"subject", b"from", b"from", b"to", b"cc"]
    picked = [fields[i] for i in select(names, wanted) if i is not None]
    assert picked == dkim.select_headers(fields, wanted)


def test_copies_verify_and_differ_only_in_their_lines(keys):
    signer = signer_of(keys)
    a = copy_of(signer, POST, OWN)
    b = copy_of(signer, POST, OWN.replace(b"TOKEN1", b"TOKEN2"))
    assert verdicts(a, keys) == verdicts(b, keys) == [True, True]
    for sig in signatures(a):
        names = [h.strip() for h in sig[b"h"].split(b":")]
        assert names.count(b"list-unsubscribe") == 2  # the field, and none added above it
        assert names.count(b"list-unsubscribe-post") == 2
    # Folded: no line of a signature is longer than 78 characters.
    head = a[:a.index(b"List-Unsubscribe:")]
    assert max(len(ln) for ln in head.split(b"\r\n")) <= 78


@pytest.mark.parametrize("change", [
    (b"TOKEN1", b"TOKEN9"),                       # the copy's own line
    (b"One-Click", b"One-Clack"),                 # List-Unsubscribe-Post
    (b"Subject: [demo]  hello", b"Subject: [demo]  HELLO"),  # a shared signed field
    (b"Hi all.", b"Hi ALL."),                     # the body
])
def test_a_change_breaks_every_signature(keys, change):
    data = copy_of(signer_of(keys), POST, OWN)
    assert verdicts(data.replace(*change), keys) == [False, False]


def test_a_list_unsubscribe_added_on_top_breaks_it(keys):
    data = copy_of(signer_of(keys, ed25519=False), POST, OWN)
    sig_end = data.index(b"List-Unsubscribe:")
    added = data[:sig_end] + b"List-Unsubscribe: <https://evil.example/u/x>\r\n" + data[sig_end:]
    assert verdicts(added, keys) == [False]
    # Unknown header fields added are no harm (not signed), as for any signature.
    assert verdicts(b"X-Spam: no\r\n" + data, keys) == [True]


def test_shapes_of_own_lines(keys):
    signer = signer_of(keys, ed25519=False)
    mailto_only = b"List-Unsubscribe: <mailto:demo-request@example.org>\r\n"
    assert verdicts(copy_of(signer, POST, mailto_only), keys) == [True]
    assert verdicts(copy_of(signer, POST, b""), keys) == [True]
    # The shared part already has a List-Unsubscribe (its own signature covers it): the
    # copy's line above it is covered too.
    shared = POST.replace(b"List-Id:", b"List-Unsubscribe: <mailto:old@example.org>\r\nList-Id:")
    data = copy_of(signer, shared, OWN)
    assert verdicts(data, keys) == [True]
    assert verdicts(data.replace(b"TOKEN1", b"TOKEN9"), keys) == [False]
    assert verdicts(data.replace(b"old@", b"new@"), keys) == [False]


def test_only_our_signatures_are_made_again(keys):
    signer = signer_of(keys)
    payload = prepare_payload(signer.sign(POST, ENVELOPE))
    # Without the Ed25519 key now, its signature stays as it was (it still verifies; it
    # does not cover the copy's lines) and the RSA one is made per copy.
    rsa_only = signer_of(keys, ed25519=False)
    cs, shared = rsa_only.for_copies(payload)
    assert cs is not None
    data = wire(cs.fields(OWN) + OWN + shared)
    assert [(s[b"s"], b"list-unsubscribe" in s[b"h"]) for s in signatures(data)] == \
        [(b"listmgr", True), (b"ed1", False)]
    assert verdicts(data, keys) == [True, True]
    # Another domain's, or no signature: nothing to do, the bytes as stored.
    other = ldkim.Signer("listmgr", ("example.net",), keys[0])
    assert other.for_copies(payload) == (None, payload)
    plain = prepare_payload(POST)
    assert signer.for_copies(plain) == (None, plain)
