"""Direct delivery by MX, against a real DNS server on loopback and the recording sink."""

from __future__ import annotations

import email

import pytest
from flufl.bounce import scan_message

from tests.dns_support import DNSServer
from tests.test_delivery import queue_mail, returned_to, states, wait_until

ZONE = {
    # Two MXs: the better one refuses connections (nothing listens on 127.0.0.2).
    "good.test": {"MX": ["10 mx1.good.test.", "20 mx2.good.test."]},
    "mx1.good.test": {"A": ["127.0.0.2"]},
    "mx2.good.test": {"A": ["127.0.0.1"]},
    # No MX, an A record: the domain is its own mail exchanger.
    "implicit.test": {"A": ["127.0.0.1"]},
    # Null MX (RFC 7505).
    "nullmx.test": {"MX": ["0 ."]},
    # Exists, but neither MX nor address.
    "empty.test": {"TXT": ['"nothing here"']},
    # Our own host name is the best MX: mail would loop back to us.
    "loop.test": {"MX": ["10 example.org."]},
    "example.org": {"A": ["127.0.0.1"]},
}


@pytest.fixture
def dns_server():
    d = DNSServer(ZONE)
    d.start()
    yield d
    d.stop()


@pytest.fixture
def mx_server(server, sink, dns_server):
    def start(**kw):
        return server(delivery__smarthost="", delivery__nameservers=[dns_server.address],
                      delivery__port=sink.port, delivery__connect_timeout="2s", **kw)
    return start


def test_mx_by_preference_and_implicit_mx(mx_server, sink, dns_server):
    srv = mx_server()
    qid = queue_mail(srv, "alice@example.org", ["bob@good.test", "carol@implicit.test"])
    sink.wait_for(lambda got: {r for m in got for r in m.rcpt_tos} ==
                  {"bob@good.test", "carol@implicit.test"})
    wait_until(lambda: set(states(srv, qid).values()) == {"sent"}, what="sent")
    assert ("mx1.good.test", "A") in dns_server.queries  # tried first, refused
    assert ("implicit.test", "MX") in dns_server.queries


def test_unknown_domains_are_returned_as_host_unknown(mx_server, sink):
    srv = mx_server()
    rcpts = ["a@nx.test", "b@nullmx.test", "c@empty.test"]
    qid = queue_mail(srv, "sender@good.test", rcpts)
    bounce = wait_until(lambda: returned_to(sink, "sender@good.test"), what="returned")[0]
    assert bounce.message["Subject"] == "Returned mail: Host unknown"
    report = bounce.data.decode()
    assert report.count("Status: 5.1.2") == 2 and report.count("Status: 5.1.10") == 1
    assert "Host unknown (Name server: nx.test: host not found)" in report
    assert scan_message(email.message_from_bytes(bounce.data)) == {r.encode() for r in rcpts}
    assert set(states(srv, qid).values()) == {"failed"}
    assert not [r for r in sink.recipients() if r in rcpts]


def test_best_mx_is_ourselves_is_local_configuration_error(mx_server, sink):
    srv = mx_server()
    queue_mail(srv, "sender@good.test", ["someone@loop.test"])
    bounce = wait_until(lambda: returned_to(sink, "sender@good.test"), what="returned")[0]
    assert bounce.message["Subject"] == "Returned mail: Local configuration error"
    text = bounce.data.decode()
    assert "Status: 5.3.5" in text and "mail loops back to me (MX problem?)" in text
    assert scan_message(email.message_from_bytes(bounce.data)) == {b"someone@loop.test"}


def test_local_domains_go_to_our_own_listener(mx_server, sink, dns_server):
    """Without a smarthost, mail for this server's own domains is handed to its own SMTP
    listener (no MX lookup), whose answer counts like any remote's."""
    srv = mx_server()
    queue_mail(srv, "sender@good.test", ["nosuchuser@example.org"])
    bounce = wait_until(lambda: returned_to(sink, "sender@good.test"), what="returned")[0]
    assert bounce.message["Subject"] == "Returned mail: User unknown"
    assert "nosuchuser@example.org" in bounce.data.decode()
    assert scan_message(email.message_from_bytes(bounce.data)) == {b"nosuchuser@example.org"}
    assert ("example.org", "MX") not in dns_server.queries
