"""Submission for mail clients: port 587 (STARTTLS, then AUTH) and port 465 (implicit TLS),
driven by swaks and msmtp against the real server with a self-signed certificate."""

from __future__ import annotations

import smtplib
import ssl
import subprocess
import time

import pytest

from listmgr import config as config_mod
from listmgr.store import lists as repo
from tests.pop3_support import add_user, client_context, self_signed_cert

PASSWORD = "carol's secret"


@pytest.fixture
def sub(server, tmp_path, sink):
    cert, key = self_signed_cert(tmp_path / "tls")
    srv = server(smtp__tls_cert=str(cert), smtp__tls_key=str(key),
                 submission__listen="127.0.0.1:0", submission__tls_listen="127.0.0.1:0",
                 pop3__login_failure_delay="0.2s")
    add_user(srv, "carol", PASSWORD)
    srv.cert = cert
    return srv


def swaks(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["swaks", "--timeout", "30", *args], capture_output=True, text=True,
                          timeout=timeout)


def message(frm: str, to: str, subject: str) -> str:
    return (f"From: Carol <{frm}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.time_ns()}@example.org>\r\n\r\nHello.\r\n")


def test_swaks_587_starttls_auth_plain_sends_out(sub, sink):
    p = swaks("--server", "127.0.0.1", "--port", str(sub.ports["submission"]), "--tls",
              "--auth", "PLAIN", "--auth-user", "carol", "--auth-password", PASSWORD,
              "--from", "carol@example.org", "--to", "dave@remote.example",
              "--h-From", "Carol <carol@example.org>", "--h-Subject", "over 587")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "235 2.7.0" in p.stdout
    got = sink.wait_for(lambda got: any("dave@remote.example" in m.rcpt_tos for m in got))
    assert got[0].mail_from == "carol@example.org"
    assert str(got[0].message["Subject"]) == "over 587"


def test_swaks_465_implicit_tls_auth_login_sends_out(sub, sink):
    p = swaks("--server", "127.0.0.1", "--port", str(sub.ports["submissions"]), "--tlsc",
              "--auth", "LOGIN", "--auth-user", "carol@example.org",
              "--auth-password", PASSWORD,
              "--from", "carol@example.org", "--to", "erin@remote.example",
              "--h-From", "carol@example.org", "--h-Subject", "over 465")
    assert p.returncode == 0, p.stdout + p.stderr
    got = sink.wait_for(lambda got: any("erin@remote.example" in m.rcpt_tos for m in got))
    assert str(got[0].message["Subject"]) == "over 465"


@pytest.mark.parametrize("port_name,tls_mode", [("submission", "on"),
                                                ("submissions", "on_connect")])
def test_msmtp_sends_over_both_ports(sub, sink, tmp_path, port_name, tls_mode):
    rc = tmp_path / f"msmtprc-{port_name}"
    starttls = "on" if tls_mode == "on" else "off"
    rc.write_text(f"account default\nhost 127.0.0.1\nport {sub.ports[port_name]}\n"
                  f"auth on\nuser carol\npassword {PASSWORD}\nfrom carol@example.org\n"
                  f"tls on\ntls_starttls {starttls}\ntls_trust_file {sub.cert}\n"
                  f"tls_host_override localhost\n")
    rc.chmod(0o600)
    rcpt = f"{port_name}@remote.example"
    p = subprocess.run(["msmtp", "-C", str(rc), rcpt],
                       input=message("carol@example.org", rcpt, f"msmtp {port_name}"),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    sink.wait_for(lambda got: any(rcpt in m.rcpt_tos for m in got))


def test_local_list_post_by_submission(sub, sink):
    sub.call(lambda s: repo.add_members(
        s, repo.create_list(s, "demo", ["owner@owners.example"]), ["carol@example.org",
                                                                   "x@remote.example"]))
    p = swaks("--server", "127.0.0.1", "--port", str(sub.ports["submission"]), "--tls",
              "--auth", "PLAIN", "--auth-user", "carol", "--auth-password", PASSWORD,
              "--from", "carol@example.org", "--to", "demo@example.org",
              "--h-From", "carol@example.org", "--h-Subject", "to the list")
    assert p.returncode == 0, p.stdout + p.stderr
    sink.wait_for(lambda got: any("x@remote.example" in m.rcpt_tos for m in got))


def login_plain(c: smtplib.SMTP, user: str, password: str):
    """One AUTH PLAIN attempt (smtplib's login() would try every mechanism in turn)."""
    c.user, c.password = user, password
    code, text = c.auth("PLAIN", c.auth_plain, initial_response_ok=True)
    return code, text


def starttls_client(sub) -> smtplib.SMTP:
    c = smtplib.SMTP("127.0.0.1", sub.ports["submission"], timeout=30)
    c.ehlo("client.example")
    c.starttls(context=client_context(sub.cert))
    c.ehlo("client.example")
    return c


def test_587_wants_starttls_then_auth(sub):
    with smtplib.SMTP("127.0.0.1", sub.ports["submission"], timeout=30) as c:
        c.ehlo("client.example")
        assert "starttls" in c.esmtp_features and "auth" not in c.esmtp_features
        code, text = c.mail("carol@example.org")
        assert code == 530, text
    with starttls_client(sub) as c:
        assert "PLAIN" in c.esmtp_features["auth"] and "LOGIN" in c.esmtp_features["auth"]
        assert c.mail("carol@example.org")[0] == 530  # no AUTH yet
        c.rset()
        code, text = c.docmd("RCPT TO:<dave@remote.example>")
        assert code == 503 or code == 530


def test_wrong_password_and_unknown_user_are_refused(sub):
    for user, pw in (("carol", "wrong"), ("nobody", PASSWORD), ("carol@elsewhere.example",
                                                                 PASSWORD)):
        with starttls_client(sub) as c:
            with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                login_plain(c, user, pw)
            assert e.value.smtp_code == 535
    with starttls_client(sub) as c:  # the right password still works afterwards
        assert login_plain(c, "carol", PASSWORD)[0] == 235


def test_failed_logins_slow_down_per_ip(sub):
    times = []
    for _ in range(4):
        with starttls_client(sub) as c:
            t0 = time.monotonic()
            with pytest.raises(smtplib.SMTPAuthenticationError):
                login_plain(c, "carol", "wrong")
            times.append(time.monotonic() - t0)
    # 0.2s, 0.4s, 0.8s, 1.6s: each failure from this IP costs more than the one before.
    assert times[3] >= 1.5 and times[3] > times[0]


def test_sender_must_be_the_users_own_address(sub, sink):
    with starttls_client(sub) as c:
        c.login("carol", PASSWORD)
        code, text = c.mail("boss@example.org")
        assert code == 553 and b"carol@example.org" in text
        code, text = c.mail("carol@elsewhere.example")
        assert code == 553
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("carol@example.org", ["dave@remote.example"],
                       message("boss@example.org", "dave@remote.example", "forged"))
        assert e.value.smtp_code == 550 and b"boss@example.org" in e.value.smtp_error
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.sendmail("carol@example.org", ["dave@remote.example"],
                       "To: dave@remote.example\r\nSubject: no from\r\n\r\nx\r\n")
        assert e.value.smtp_code == 550
        # Her own address in another case is hers.
        assert not c.sendmail("Carol@Example.org", ["dave@remote.example"],
                              message("CAROL@example.org", "dave@remote.example", "case"))
    sink.wait_for(lambda got: any(str(m.message["Subject"]) == "case" for m in got))
    assert not any(str(m.message["Subject"]) == "forged" for m in sink.received)


def test_size_limit_on_submission(sub):
    limit = 5 * 1024 * 1024
    with starttls_client(sub) as c:
        assert int(c.esmtp_features["size"]) == limit
        c.login("carol", PASSWORD)
        code, text = c.mail("carol@example.org", [f"SIZE={limit + 1}"])
        assert code == 552, text
        c.rset()
        body = "x" * 998 + "\r\n"
        big = message("carol@example.org", "d@remote.example", "big") + body * (limit // 1000 + 10)
        with pytest.raises(smtplib.SMTPException) as e:
            c.sendmail("carol@example.org", ["d@remote.example"], big)
        assert "552" in str(e.value)


def test_465_without_tls_gets_nothing(sub):
    import socket
    with socket.create_connection(("127.0.0.1", sub.ports["submissions"]), timeout=30) as s:
        s.sendall(b"EHLO client.example\r\n")
        s.settimeout(30)
        try:
            data = s.recv(100)
        except (ConnectionResetError, TimeoutError):
            data = b""
        assert not data.startswith(b"220") and not data.startswith(b"250")
    ctx = client_context(sub.cert)
    with smtplib.SMTP_SSL("127.0.0.1", sub.ports["submissions"], timeout=30,
                          context=ctx) as c:
        assert c.ehlo("client.example")[0] == 250
        assert "auth" in c.esmtp_features and "starttls" not in c.esmtp_features
        assert c.mail("carol@example.org")[0] == 530


def test_submission_needs_a_certificate(tmp_path):
    with pytest.raises(config_mod.ConfigError, match="submission.listen"):
        config_mod.from_mapping({"submission": {"listen": "127.0.0.1:587"}})
    cfg = config_mod.from_mapping({"submission": {"tls_listen": "127.0.0.1:465",
                                                  "tls_cert": "c.pem", "tls_key": "k.pem"}})
    assert cfg.submission.tls_listen == "127.0.0.1:465"
    with pytest.raises(config_mod.ConfigError, match="go together"):
        config_mod.from_mapping({"submission": {"tls_cert": "c.pem"}})
    assert ssl  # imported for client contexts
