"""DMARC policy lookup and the mitigation decision, against a DNS server on loopback."""

from __future__ import annotations

import socket

import pytest

from listmgr.auth import dmarc
from listmgr.auth.dns import MAX_TXT, DNSTrouble, TXTLookup, make_sync_resolver
from listmgr.posting import mitigation
from listmgr.posting.decorate import ListInfo
from listmgr.posting.message import RawMessage
from tests.dns_support import DNSServer

ZONE = {
    "_dmarc.reject.example": {"TXT": ['"v=DMARC1; p=reject; rua=mailto:d@reject.example"']},
    "_dmarc.quar.example": {"TXT": ['"v=DMARC1; p=quarantine"']},
    "_dmarc.none.example": {"TXT": ['"v=DMARC1; p=none"']},
    # Subdomains of org.example inherit sp=, the org itself has p=.
    "_dmarc.org.example": {"TXT": ['"v=DMARC1; p=none; sp=reject"']},
    "_dmarc.twice.example": {"TXT": ['"v=DMARC1; p=reject"', '"v=DMARC1; p=none"']},
    "_dmarc.huge.example": {"TXT": ['"v=DMARC1; p=reject; x=' + "a" * 200 + '"' +
                                    (' "' + "b" * 250 + '"') * 20]},
    "_dmarc.junk.example": {"TXT": ['"v=spf1 -all"', '"hello"']},
}


@pytest.fixture(scope="module")
def dns_server():
    srv = DNSServer(ZONE, ttl=120)
    srv.start()
    yield srv
    srv.stop()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def lookup_for(srv, clock=None, timeout=5.0):
    res = make_sync_resolver((srv.address,), 53, timeout)
    return TXTLookup(res, clock=clock or Clock())


@pytest.mark.parametrize("text,expected", [
    ("v=DMARC1; p=reject", ("reject", "reject")),
    ("v=DMARC1;p=quarantine;sp=none;pct=50", ("quarantine", "none")),
    ("v=DMARC1; p=bogus; rua=mailto:x@y.example", ("none", "none")),
    ("v=DMARC1; p=bogus", None),
    ("p=reject; v=DMARC1", None),
    ("v=spf1 -all", None),
    ("", None),
])
def test_parse_record(text, expected):
    rec = dmarc.parse_record(text)
    assert (rec.p, rec.sp) == expected if expected else rec is None


@pytest.mark.parametrize("domain,org", [
    ("mail.example.co.jp", "example.co.jp"),
    ("example.com", "example.com"),
    ("a.b.c.example.org.uk", "example.org.uk"),
    ("lists.foo.test", "foo.test"),  # no listed suffix: the last label is one
    ("MAIL.Example.COM.", "example.com"),
])
def test_organizational_domain_from_the_bundled_list(domain, org):
    assert dmarc.organizational_domain(domain) == org


def test_alignment():
    assert dmarc.aligned("mail.example.co.jp", "example.co.jp")
    assert not dmarc.aligned("mail.example.co.jp", "example.co.jp", "s")
    assert not dmarc.aligned("a.co.jp", "b.co.jp")


@pytest.mark.parametrize("domain,policy", [
    ("reject.example", "reject"),
    ("quar.example", "quarantine"),
    ("none.example", "none"),
    ("sub.org.example", "reject"),    # from the organisational domain's sp=
    ("org.example", "none"),
    ("sub.reject.example", "reject"),  # no sp=: p= applies
    ("twice.example", None),          # two records: as if none
    ("junk.example", None),
    ("nothing.example", None),
    ("huge.example", None),           # longer than the size limit: ignored
    ("bad..name", None),
    ("x" * 300 + ".example", None),
])
def test_policy_for(dns_server, domain, policy):
    pol = dmarc.policy_for(lookup_for(dns_server), domain)
    assert (pol.policy if pol else None) == policy


def test_huge_record_is_over_the_limit():
    value = ZONE["_dmarc.huge.example"]["TXT"][0]
    assert len(value) > MAX_TXT


def test_answers_are_cached_for_their_ttl(dns_server):
    clock = Clock()
    lk = lookup_for(dns_server, clock)
    for _ in range(3):
        assert dmarc.policy_for(lk, "reject.example").policy == "reject"
        assert dmarc.policy_for(lk, "nothing.example") is None
    assert lk.queries == 2  # _dmarc.reject, _dmarc.nothing (each its own org domain)
    clock.now += 119
    dmarc.policy_for(lk, "reject.example")
    assert lk.queries == 2
    clock.now += 2  # past the 120 s TTL
    dmarc.policy_for(lk, "reject.example")
    assert lk.queries == 3


def test_cache_holds_a_bounded_number_of_names(dns_server):
    lk = lookup_for(dns_server)
    lk.max_entries = 5
    for i in range(20):
        dmarc.policy_for(lk, f"n{i}.nothing.example")
    assert len(lk._cache) == 5


def test_a_silent_nameserver_is_dns_trouble_within_the_timeout():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))  # receives, never answers
    try:
        res = make_sync_resolver((f"127.0.0.1:{sock.getsockname()[1]}",), 53, 1.0)
        import time
        t0 = time.monotonic()
        with pytest.raises(DNSTrouble):
            dmarc.policy_for(TXTLookup(res), "reject.example")
        assert time.monotonic() - t0 < 5
    finally:
        sock.close()


# --------------------------------------------------------------------------- decision

POST = (b"From: Poster <p@{dom}>\r\nTo: demo@example.org\r\nSubject: hi\r\n\r\nhello\r\n")


def decide(srv_or_lookup, domain, local=("example.org",), **info):
    info = ListInfo(name="demo", domain="example.org", **info)
    msg = RawMessage.parse(POST.replace(b"{dom}", domain.encode()))
    lk = srv_or_lookup if isinstance(srv_or_lookup, TXTLookup) else lookup_for(srv_or_lookup)
    return mitigation.decide(lk, info, msg, local)


@pytest.mark.parametrize("domain,when,expected", [
    ("reject.example", "quarantine", "munge_from"),
    ("quar.example", "quarantine", "munge_from"),
    ("none.example", "quarantine", "none"),
    ("nothing.example", "quarantine", "none"),
    ("reject.example", "reject", "munge_from"),
    ("quar.example", "reject", "none"),
    ("none.example", "always", "munge_from"),
    ("sub.org.example", "reject", "munge_from"),
])
def test_decision_by_policy_and_dmarc_when(dns_server, domain, when, expected):
    assert decide(dns_server, domain, subject_prefix="[$LIST]", dmarc_when=when) == expected


def test_a_list_that_changes_nothing_gets_no_mitigation(dns_server):
    assert decide(dns_server, "reject.example") == "none"
    assert decide(dns_server, "reject.example", message_headers="X-Foo: bar") == "none"
    assert decide(dns_server, "reject.example", dmarc_when="always") == "munge_from"
    for change in ({"subject_prefix": "[x]"}, {"message_footer": "f"},
                   {"message_fronter": "f"}, {"reply_to": "demo@example.org"}):
        assert decide(dns_server, "reject.example", **change) == "munge_from"


def test_mode_none_and_wrap_and_local_posters(dns_server):
    assert decide(dns_server, "reject.example", subject_prefix="[x]",
                  dmarc_mitigation="none") == "none"
    assert decide(dns_server, "reject.example", subject_prefix="[x]",
                  dmarc_mitigation="wrap") == "wrap"
    # Our own users: our signature is aligned, nothing to do.
    assert decide(dns_server, "example.org", subject_prefix="[x]",
                  dmarc_when="reject") == "none"


def test_dns_trouble_mitigates():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        res = make_sync_resolver((f"127.0.0.1:{sock.getsockname()[1]}",), 53, 0.5)
        assert decide(TXTLookup(res), "whatever.example", subject_prefix="[x]") \
            == "munge_from"
    finally:
        sock.close()


def test_list_settings_parse_and_refuse():
    from listmgr.listconfig import SettingError, parse_value
    assert parse_value("dmarc_mitigation", "wrap") == "wrap"
    assert parse_value("dmarc_when", " always ") == "always"
    assert parse_value("require_auth", "yes") is True
    for key, bad in (("dmarc_mitigation", "munge"), ("dmarc_when", "none"),
                     ("require_auth", "maybe")):
        with pytest.raises(SettingError, match=key):
            parse_value(key, bad)


def test_new_lists_default_to_munge_from_when_quarantine(tmp_path):
    from listmgr import config as config_mod
    from listmgr.app import App
    from listmgr.store import lists as repo
    from tests.support import migrated, write_config
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    migrated(url)
    app = App.from_config(config_mod.load(write_config(tmp_path, url)))
    with app.store.session() as s:
        ml = repo.create_list(s, "demo", ["o@x.example"], password="pw")
        s.flush()
        info = ListInfo.of(ml, app.config)
    assert (info.dmarc_mitigation, info.dmarc_when) == ("munge_from", "quarantine")
    app.store.dispose()


def test_after_a_timeout_lookups_fail_at_once_for_a_while():
    import time
    from listmgr.auth.dns import QUIET_AFTER_TIMEOUT
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        clock = Clock()
        lk = TXTLookup(make_sync_resolver((f"127.0.0.1:{sock.getsockname()[1]}",), 53, 0.5),
                       clock=clock)
        with pytest.raises(DNSTrouble):
            lk.txt("_dmarc.a.example")
        assert lk.queries == 1
        t0 = time.monotonic()
        for name in ("_dmarc.b.example", "_dmarc.c.example"):
            with pytest.raises(DNSTrouble, match="recently"):
                lk.txt(name)
        assert time.monotonic() - t0 < 0.4 and lk.queries == 1
        clock.now += QUIET_AFTER_TIMEOUT + 1
        with pytest.raises(DNSTrouble):
            lk.txt("_dmarc.b.example")
        assert lk.queries == 2
    finally:
        sock.close()
