"""Prometheus metrics on `[metrics] listen`, scraped over HTTP from a running server."""

from __future__ import annotations

import smtplib
import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from listmgr.store import lists as repo
from tests.pop3_support import add_user


def scrape(srv) -> dict[tuple[str, tuple], float]:
    url = f"http://127.0.0.1:{srv.ports['metrics']}/metrics"
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(m, name, **labels) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_happens(server, sink):
    srv = server(metrics__listen="127.0.0.1:0", pop3__login_failure_delay="0.1s")
    srv.call(lambda s: repo.add_members(s, repo.create_list(s, "demo", ["o@owners.example"]),
                                        ["m1@remote.example", "m2@remote.example"]))
    add_user(srv, "carol", "pw")
    before = scrape(srv)
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=30) as c:
        c.sendmail("m1@remote.example", ["demo@example.org"],
                   b"From: m1@remote.example\r\nSubject: hi\r\n\r\nhello\r\n")
        c.ehlo("client.example")
        c.mail("x@remote.example")
        assert c.rcpt("nobody@example.org")[0] == 550
        assert c.rcpt("someone@elsewhere.example")[0] == 550
    sink.wait_for(lambda got: len([r for m in got for r in m.rcpt_tos]) >= 2)
    import poplib
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=30)
    p.user("carol")
    p.pass_("pw")
    p.quit()
    p = poplib.POP3("127.0.0.1", srv.pop3_port, timeout=30)
    p.user("carol")
    with pytest.raises(poplib.error_proto):
        p.pass_("wrong")
    p.close()
    import time
    deadline = time.monotonic() + 30
    while True:
        m = scrape(srv)
        if value(m, "listmgr_deliveries_total", outcome="sent") - \
                value(before, "listmgr_deliveries_total", outcome="sent") >= 2:
            break
        assert time.monotonic() < deadline, m
        time.sleep(0.2)

    def delta(name, **labels):
        return value(m, name, **labels) - value(before, name, **labels)
    assert delta("listmgr_messages_accepted_total", listener="smtp") == 1
    assert delta("listmgr_messages_refused_total", listener="smtp", reason="user_unknown") == 1
    assert delta("listmgr_messages_refused_total", listener="smtp", reason="relay_denied") == 1
    assert delta("listmgr_fanout_seconds_count") == 1
    assert delta("listmgr_pop3_logins_total", result="ok") == 1
    assert delta("listmgr_pop3_logins_total", result="failed") == 1
    assert value(m, "listmgr_queue_recipients", state="queued") == 0
    assert value(m, "listmgr_inbound_tasks", state="shunted") == 0
    assert ("listmgr_held_posts", ()) in m


def test_metrics_http_limits(server):
    srv = server(metrics__listen="127.0.0.1:0")
    port = srv.ports["metrics"]

    def raw(data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(data)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out
    assert raw(b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")
    assert raw(b"GET /nope HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404")
    assert raw(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200")
