"""Item 6: one client cannot block all mail.

Twenty slow DATA sessions once gave every other client `451 4.3.2` at DATA indefinitely,
and 300 connections from one address filled the connection table. Now one address gets at
most `max_connections_per_ip` connections and `max_data_sessions_per_ip` DATA slots, and a
DATA slower than `min_data_rate` after `timeout` is cut off. The attacker here connects
from 127.0.0.2, the honest client from 127.0.0.1.
"""

from __future__ import annotations

import socket
import smtplib
import time

import pytest

from tests.adversarial.support import make_list, post_text, send, wait_until

ATTACKER = "127.0.0.2"


def raw(port: int, source: str = ATTACKER) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    return s


def reply(s: socket.socket) -> str:
    buf = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return buf.decode()
        buf += chunk
        lines = buf.split(b"\r\n")
        if len(lines) >= 2 and lines[-2][3:4] == b" ":
            return buf.decode()


def cmd(s: socket.socket, line: str) -> str:
    s.sendall(line.encode() + b"\r\n")
    return reply(s)


def honest_send(srv) -> float:
    t0 = time.monotonic()
    send(srv.smtp_port, "honest@example.net", "demo@example.org", post_text())
    return time.monotonic() - t0


@pytest.mark.timeout(240)
def test_connection_flood_from_one_address(server):
    srv = server(smtp__max_connections=100, smtp__max_connections_per_ip=20)
    make_list(srv.call, post_policy="open")
    socks, refused = [], 0
    try:
        for _ in range(300):
            s = raw(srv.smtp_port)
            greeting = reply(s)
            if greeting.startswith("421"):
                assert "4.7.0" in greeting and "from your address" in greeting
                refused += 1
                s.close()
            else:
                assert greeting.startswith("220")
                socks.append(s)
        assert len(socks) == 20 and refused == 280
        assert honest_send(srv) < 10
    finally:
        for s in socks:
            s.close()


@pytest.mark.timeout(240)
def test_slow_data_sessions_from_one_address(server):
    srv = server(smtp__max_data_sessions=20, smtp__max_data_sessions_per_ip=5)
    make_list(srv.call, post_policy="open")
    socks, answers = [], []
    try:
        for _ in range(20):
            s = raw(srv.smtp_port)
            reply(s)
            cmd(s, "EHLO slow.example")
            cmd(s, "MAIL FROM:<slow@example.net>")
            cmd(s, "RCPT TO:<demo@example.org>")
            answers.append(cmd(s, "DATA")[:3])
            s.sendall(b"S")  # one byte of the message, then nothing more for now
            socks.append(s)
        assert answers.count("354") == 5
        assert answers.count("451") == 15
        # Another client still gets a DATA slot at once.
        assert honest_send(srv) < 10
    finally:
        for s in socks:
            s.close()


@pytest.mark.timeout(240)
def test_a_trickling_data_is_cut_off(server):
    srv = server(smtp__timeout="2s", smtp__min_data_rate=500)
    make_list(srv.call, post_policy="open")
    s = raw(srv.smtp_port)
    reply(s)
    cmd(s, "EHLO slow.example")
    cmd(s, "MAIL FROM:<slow@example.net>")
    cmd(s, "RCPT TO:<demo@example.org>")
    assert cmd(s, "DATA").startswith("354")
    t0 = time.monotonic()
    got = b""
    s.settimeout(1.0)
    while time.monotonic() - t0 < 60:
        try:
            s.sendall(b"x")  # a byte every second: the idle timer never fires
        except OSError:
            break
        try:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        except socket.timeout:
            pass
        except OSError:  # reset: the server closed while we were still sending
            break
    took = time.monotonic() - t0
    try:  # the reply may still be unread when a write failed on the closed connection
        while b"\r\n" not in got[got.find(b"421"):] or b"421" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    # The server cut the connection; the 421 it wrote first is read unless the kernel
    # reset the connection (the client was still sending) before the client read it.
    assert got == b"" or (b"421 4.4.2" in got and b"too slowly" in got), got
    assert took < 30


def test_trusted_networks_have_no_per_ip_cap(server):
    srv = server(smtp__max_connections_per_ip=2, smtp__relay_networks=["127.0.0.2/32"])
    socks = []
    try:
        for _ in range(5):
            s = raw(srv.smtp_port)
            assert reply(s).startswith("220")
            socks.append(s)
    finally:
        for s in socks:
            s.close()
