"""VERP addresses: any member address folds into the bounce address and comes back."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from listmgr.delivery.queue import validate_address
from listmgr.mail import verp
from listmgr.smtp.routing import Destination, route

ODD = [
    "alice@example.net",
    "a+b=c@example.net",           # plus and equals in the local part
    "=@example.net",
    "a==b+@example.net",
    '"john doe"@example.net',      # quoted local part with a space
    '"a..b"@example.net',          # quoted consecutive dots
    '"a@b"@example.net',           # quoted at sign
    '"x\\"y"@example.net',         # quoted backslash-escape
    "o'brien@example.net",
    "b%c!d#e@example.net",         # characters some MTAs route on
    "user@bücher.example",         # IDN domain
    "用户@例子.广告",               # internationalised local part and domain
    "Mixed.Case@Example.NET",
    "x@[192.0.2.1]",               # address literal
]


@pytest.mark.parametrize("member", ODD)
def test_round_trip(member):
    addr = verp.encode("demo", member, "example.org")
    local, _, domain = addr.rpartition("@")
    assert domain == "example.org"
    assert addr.isascii() and validate_address(addr)
    name, back = verp.decode(local)
    assert name == "demo"
    assert back.rpartition("@")[0] == member.rpartition("@")[0]  # local part exact
    assert back.lower() == member.lower()


@pytest.mark.parametrize("member", ODD)
def test_round_trip_survives_lower_casing(member):
    # Some MTAs lower-case the address they bounce to.
    local = verp.encode("demo", member, "example.org").rpartition("@")[0]
    assert verp.decode(local.lower())[1].lower() == member.lower()


@pytest.mark.parametrize("member", ODD)
def test_the_address_routes_to_the_bounce_processor(member):
    class Dir:
        def has_list(self, name): return name == "demo"
        def has_user(self, name): return False
    addr = verp.encode("demo", member, "example.org")
    assert route(addr, ("example.org",), Dir()) == Destination("bounce", "demo")


def test_the_shape_mlmmj_and_others_use():
    assert verp.encode("demo", "alice@example.net", "example.org") == \
        "owner-demo+alice=example.net@example.org"
    assert verp.encode("demo", "a+b@x.example", "example.org") == \
        "owner-demo+a+b=x.example@example.org"


@pytest.mark.parametrize("local", ["owner-demo", "owner-+a=b", "demo+a=b", "owner-demo+ab",
                                   "owner-demo+=x", "owner-demo+a="])
def test_not_verp(local):
    assert verp.decode(local) is None


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a loaded machine
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="@"),
               min_size=1, max_size=40),
       st.sampled_from(["example.net", "a-b.example", "x.y.z.example", "bücher.example"]))
def test_any_local_part_round_trips(local, domain):
    addr = verp.encode("demo", f"{local}@{domain}", "example.org")
    assert addr.isascii()
    assert verp.decode(addr.rpartition("@")[0]) == ("demo", f"{local}@{domain}")
