"""One-click unsubscribe tokens and the site secret they are signed with."""

from __future__ import annotations

import os
import stat

import pytest

from listmgr import site_secret, unsubscribe


def test_site_secret_is_made_once_private_and_stable(tmp_path):
    first = site_secret.load(tmp_path)
    assert len(first) == site_secret.SIZE
    mode = stat.S_IMODE(os.stat(tmp_path / site_secret.FILENAME).st_mode)
    assert mode == 0o600
    assert site_secret.load(tmp_path) == first


def test_truncated_site_secret_is_refused_with_its_path(tmp_path):
    (tmp_path / site_secret.FILENAME).write_bytes(b"short")
    with pytest.raises(ValueError, match="site.key"):
        site_secret.load(tmp_path)


def test_token_round_trip_names_the_member_row():
    secret = b"s" * 32
    tok = unsubscribe.token(secret, "demo", "alice@example.net", 42)
    assert len(tok) == unsubscribe.TOKEN_LENGTH and tok.isascii() and "/" not in tok
    assert unsubscribe.member_id_of(tok) == 42
    assert unsubscribe.verify(secret, tok, "demo", "alice@example.net")


@pytest.mark.parametrize("other", [
    dict(secret=b"t" * 32),                       # another site
    dict(list_name="other"),                      # another list
    dict(address_key="bob@example.net"),          # another member's address
])
def test_token_does_not_verify_for_anything_else(other):
    args = dict(secret=b"s" * 32, list_name="demo", address_key="alice@example.net")
    tok = unsubscribe.token(args["secret"], args["list_name"], args["address_key"], 42)
    args.update(other)
    assert not unsubscribe.verify(args["secret"], tok, args["list_name"], args["address_key"])


def test_rejoining_makes_old_tokens_useless():
    secret = b"s" * 32
    old = unsubscribe.token(secret, "demo", "alice@example.net", 42)
    # The rejoined member has a new row id; the old token names the old id.
    assert unsubscribe.member_id_of(old) == 42
    forged = unsubscribe.token(b"x" * 32, "demo", "alice@example.net", 43)
    assert not unsubscribe.verify(secret, forged, "demo", "alice@example.net")


@pytest.mark.parametrize("junk", ["", "x", "A" * 10_000, "é" * unsubscribe.TOKEN_LENGTH,
                                  "!" * unsubscribe.TOKEN_LENGTH, None])
def test_malformed_tokens_are_rejected_without_error(junk):
    assert unsubscribe.member_id_of(junk) is None
    assert not unsubscribe.verify(b"s" * 32, junk, "demo", "alice@example.net")
