"""DKIM signing of what listmgr sends, verified by dkimpy against a DNS server on loopback.

The site key lives in the data dir (as `listmgr dkim keygen` leaves it); the loopback DNS
server publishes its TXT record, and the copies received by the recording sink must verify.
"""

from __future__ import annotations

import os
import re
import smtplib
import stat
import time

import dkim
import pytest

from listmgr import config as config_mod
from listmgr.app import App
from listmgr.mail import dkim as ldkim
from listmgr.store import lists as repo
from tests.dkim_support import (
    install_site_key, key_zone, signatures, txt, verify, verify_all,
)
from tests.dns_support import DNSServer
from tests.support import run_cli, write_config

MEMBERS = ["alice@example.com", "bob@example.net"]


@pytest.fixture
def dns_keys(tmp_path):
    """The site key installed in the data dir and published for example.org."""
    public = install_site_key(tmp_path / "var")
    srv = DNSServer(key_zone("listmgr", "example.org", public))
    srv.start()
    yield srv
    srv.stop()


def send(srv, mail_from, rcpt, text: str) -> None:
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as c:
        assert not c.sendmail(mail_from, [rcpt], data)


def test_keygen_writes_a_private_key_and_prints_the_record(tmp_path):
    path = write_config(tmp_path, "sqlite://", smtp__local_domains=["lists.example.net"])
    r = run_cli(path, "dkim", "keygen", "--bits", "1024")
    assert r.status == 0, r.err
    key = tmp_path / "var" / "dkim" / "listmgr.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    records = [ln for ln in r.out.splitlines() if not ln.startswith(";")]
    assert [ln.split()[0] for ln in records] == ["listmgr._domainkey.example.org.",
                                                "listmgr._domainkey.lists.example.net."]
    value = "".join(re.findall(r'"([^"]*)"', records[0]))
    assert value == ldkim.txt_value(ldkim.public_key_of(key.read_bytes()))
    # The record dkimpy reads from DNS matches the key it signs with.
    msg = b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
    sig = dkim.sign(msg, b"listmgr", b"example.org", key.read_bytes())
    assert dkim.verify(sig + msg, dnsfunc=lambda name, timeout=5: value.encode())
    # `record` prints the same; a second keygen never overwrites the key.
    assert run_cli(path, "dkim", "record").out.strip() == "\n".join(records)
    again = run_cli(path, "dkim", "keygen")
    assert again.status == 1 and "already exists" in again.err
    first = run_cli(path, "dkim", "record").out.splitlines()[0]
    assert "".join(re.findall(r'"([^"]*)"', first)) == value


def test_keygen_selector_and_bad_arguments(tmp_path):
    path = write_config(tmp_path, "sqlite://")
    r = run_cli(path, "dkim", "keygen", "--selector", "2026a", "--bits", "1024")
    assert r.status == 0, r.err
    assert (tmp_path / "var" / "dkim" / "2026a.key").exists()
    assert "2026a._domainkey.example.org." in r.out
    assert 'selector = "2026a"' in r.out
    bad = run_cli(path, "dkim", "keygen", "--bits", "512")
    assert bad.status == 1 and "--bits" in bad.err
    bad = run_cli(path, "dkim", "keygen", "--selector", "a.b")
    assert bad.status == 1 and "selector" in bad.err
    missing = run_cli(path, "dkim", "record", "--selector", "nokey")
    assert missing.status == 1 and "keygen" in missing.err


def test_configured_key_missing_or_garbage_is_a_clear_error(tmp_path):
    path = write_config(tmp_path, "sqlite://", dkim__key=str(tmp_path / "nope.key"))
    r = run_cli(path, "lists")
    assert r.status == 2 and "nope.key does not exist" in r.err and "Traceback" not in r.err
    (tmp_path / "bad.key").write_text("not a key\n")
    path = write_config(tmp_path, "sqlite://", dkim__key=str(tmp_path / "bad.key"))
    r = run_cli(path, "lists")
    assert r.status == 2 and "not a PEM RSA private key" in r.err
    path = write_config(tmp_path, "sqlite://", dkim__selector="bad selector")
    assert run_cli(path, "lists").status == 2


def test_no_key_means_no_signature(tmp_path):
    app = App.from_config(config_mod.load(write_config(tmp_path, "sqlite://")))
    assert app.spool.signer is None


def test_which_messages_are_ours_to_sign(tmp_path):
    install_site_key(tmp_path / "var")
    cfg = config_mod.load(write_config(tmp_path, "sqlite://",
                                       smtp__local_domains=["lists.example.net"]))
    signer = ldkim.Signer.from_config(cfg)
    ours = b"From: Jo <jo@example.org>\r\nSubject: x\r\n\r\nhi\r\n"
    sub = b"From: MAILER-DAEMON@mx.lists.example.net\r\n\r\nhi\r\n"
    foreign = b"From: x@elsewhere.example\r\n\r\nhi\r\n"
    assert signer.domain_for(ours) == "example.org"
    assert signer.domain_for(sub) == "lists.example.net"
    assert signer.domain_for(foreign) is None
    assert signer.sign(foreign, "x@elsewhere.example") == foreign  # relayed, not ours
    # A list post: From: the poster, envelope owner-LIST@ our domain.
    assert signer.domain_for(foreign, "owner-demo@example.org") == "example.org"
    # Two From: fields are never taken as ours.
    assert signer.domain_for(b"From: a@example.org\r\nFrom: b@x.example\r\n\r\n") is None
    # What dkimpy cannot sign leaves unsigned rather than failing the send.
    odd = b"From: a@example.org\r\n\xff\xfe garbage line\r\n\r\nhi\r\n"
    assert signer.sign(odd) == odd


def test_list_post_with_prefix_and_footer_verifies(server, sink, dns_keys):
    srv = server()

    def make(s):
        ml = repo.create_list(s, "demo", ["owner@owners.example"], password="pw")
        repo.set_setting(s, ml, "subject_prefix", "[$LIST]")
        repo.set_setting(s, ml, "message_footer", "-- \nThe demo list\n")
        repo.add_members(s, ml, MEMBERS)
    srv.call(make)
    send(srv, MEMBERS[0], "demo@example.org",
         f"From: Alice <{MEMBERS[0]}>\nTo: demo@example.org\nSubject: hello\n"
         f"Message-ID: <{time.time_ns()}@example.com>\n\nHi all.\n")
    # A list copy comes from the list's bounce address (owner-demo+member=domain@ with
    # VERP, the default): one copy per member then, each carrying the one signature.
    copies = ("owner-demo@", "owner-demo+")
    got = sink.wait_for(lambda r: sum(len(m.rcpt_tos) for m in r
                                      if m.mail_from.startswith(copies)) >= 2)
    [copy, *others] = [m for m in got if m.mail_from.startswith(copies)]
    assert all(m.data == copy.data for m in others)
    assert copy.message["Subject"] == "[demo] hello"
    assert "The demo list" in copy.data.decode()
    [sig] = signatures(copy.data)
    assert sig[b"d"] == b"example.org" and sig[b"s"] == b"listmgr"
    assert b"list-id" in sig[b"h"].lower() and b"subject" in sig[b"h"].lower()
    assert verify(copy.data, dns_keys)
    # Sanity: the verifier is not trivially satisfied.
    assert not verify(copy.data.replace(b"Hi all.", b"Hi ALL."), dns_keys)


def test_command_reply_verifies(server, sink, dns_keys):
    srv = server()
    send(srv, "joe@example.net", "majordomo@example.org",
         "From: joe@example.net\nTo: majordomo@example.org\nSubject: cmds\n\nhelp\n")
    [reply] = sink.wait_for(lambda r: len(r) >= 1)
    assert reply.rcpt_tos == ["joe@example.net"]
    [sig] = signatures(reply.data)
    assert sig[b"d"] == b"example.org"
    assert verify(reply.data, dns_keys)


def test_returned_mail_and_the_original_verify(server, sink, dns_keys):
    sink.rules["nobody@remote.example"] = "550 5.1.1 <nobody@remote.example>... User unknown"
    srv = server()
    body = (b"From: alice@example.org\r\nTo: nobody@remote.example\r\nSubject: hi\r\n"
            b"Message-ID: <m1@example.org>\r\n\r\nhello\r\n")
    from tests.test_delivery import queue_mail
    queue_mail(srv, "alice@example.org", ["nobody@remote.example", "bob@remote.example"],
               data=body)
    got = sink.wait_for(lambda r: any(m.mail_from in ("", "<>") for m in r)
                        and any("bob@remote.example" in m.rcpt_tos for m in r))
    [dsn] = [m for m in got if m.mail_from in ("", "<>")]
    [orig] = [m for m in got if "bob@remote.example" in m.rcpt_tos]
    assert str(dsn.message["From"]).endswith("<MAILER-DAEMON@example.org>")
    assert verify(dsn.data, dns_keys)
    assert verify(orig.data, dns_keys)
    assert len(signatures(orig.data)) == 1  # signed once, at enqueue


def test_relayed_mail_is_signed_only_when_its_from_is_ours(server, sink, dns_keys):
    srv = server(smtp__relay_networks=["127.0.0.0/8"])
    send(srv, "user@example.org", "friend@remote.example",
         "From: User <user@example.org>\nTo: friend@remote.example\nSubject: ours\n\nhi\n")
    send(srv, "x@other.example", "friend@remote.example",
         "From: x@other.example\nTo: friend@remote.example\nSubject: theirs\n\nhi\n")
    got = sink.wait_for(lambda r: len(r) >= 2)
    by_subject = {str(m.message["Subject"]): m for m in got}
    ours, theirs = by_subject["ours"], by_subject["theirs"]
    assert [s[b"d"] for s in signatures(ours.data)] == [b"example.org"]
    assert verify(ours.data, dns_keys)
    assert signatures(theirs.data) == []


def test_held_post_notice_to_the_moderator_verifies(server, sink, dns_keys):
    srv = server()

    def make(s):
        ml = repo.create_list(s, "demo", ["owner@owners.example"], password="pw")
        repo.set_setting(s, ml, "post_policy", "moderated")
    srv.call(make)
    send(srv, MEMBERS[0], "demo@example.org",
         f"From: {MEMBERS[0]}\nTo: demo@example.org\nSubject: please\n\nbody\n")
    [notice] = sink.wait_for(lambda r: len(r) >= 1)
    assert notice.rcpt_tos == ["owner@owners.example"]
    [sig] = signatures(notice.data)
    assert sig[b"d"] == b"example.org" and verify(notice.data, dns_keys)


@pytest.mark.slow
def test_serve_says_whether_it_signs(config_file, tmp_path):
    import signal
    from tests.test_serve import _serve, _wait_ready
    for with_key in (False, True):
        if with_key:
            install_site_key(tmp_path / "var")
        proc = _serve(config_file())
        try:
            lines = "".join(_wait_ready(proc))
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        if with_key:
            assert "DKIM signing: selector=listmgr domains=example.org arc=off" in lines
        else:
            assert "outgoing mail is not signed" in lines and "dkim keygen" in lines
    # A configured key that is not there: serve refuses to start, in one line.
    r = run_cli(config_file(dkim__key=str(tmp_path / "missing.key")), "serve", timeout=60)
    assert r.status == 2 and "missing.key does not exist" in r.err and "Traceback" not in r.err


def test_ed25519_second_signature(tmp_path, server, sink):
    """RFC 8463: an Ed25519 signature beside the RSA one; both verify."""
    path = write_config(tmp_path, "sqlite://")
    r = run_cli(path, "dkim", "keygen", "--algorithm", "ed25519", "--selector", "ed1")
    assert r.status == 0, r.err
    assert 'ed25519_selector = "ed1"' in r.out
    [record] = [ln for ln in r.out.splitlines() if not ln.startswith(";")]
    assert record.startswith("ed1._domainkey.example.org. IN TXT")
    value = "".join(re.findall(r'"([^"]*)"', record))
    assert value.startswith("v=DKIM1; k=ed25519; p=")
    key = tmp_path / "var" / "dkim" / "ed1.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert run_cli(path, "dkim", "record", "--selector", "ed1").out.strip() == record
    assert run_cli(path, "dkim", "keygen", "--algorithm", "ed25519").status == 1
    public = install_site_key(tmp_path / "var")
    zone = {**key_zone("listmgr", "example.org", public),
            "ed1._domainkey.example.org": {"TXT": [txt(value)]}}
    dns = DNSServer(zone)
    dns.start()
    try:
        srv = server(dkim__ed25519_selector="ed1")
        send(srv, "joe@example.net", "majordomo@example.org",
             "From: joe@example.net\nTo: majordomo@example.org\nSubject: c\n\nhelp\n")
        [reply] = sink.wait_for(lambda got: len(got) >= 1)
        sigs = signatures(reply.data)
        assert [(s[b"s"], s[b"a"]) for s in sigs] == [(b"ed1", b"ed25519-sha256"),
                                                      (b"listmgr", b"rsa-sha256")]
        assert [ok for _, ok in verify_all(reply.data, dns)] == [True, True]
    finally:
        dns.stop()


def test_ed25519_selector_without_its_key_is_a_clear_error(tmp_path):
    install_site_key(tmp_path / "var")
    path = write_config(tmp_path, "sqlite://", dkim__ed25519_selector="ed9")
    r = run_cli(path, "lists")
    assert r.status == 2 and "ed9.key does not exist" in r.err
    (tmp_path / "var" / "dkim" / "ed9.key").write_text("bm90IGEga2V5\n")
    r = run_cli(path, "lists")
    assert r.status == 2 and "not an Ed25519 private key" in r.err
    same = write_config(tmp_path, "sqlite://", dkim__ed25519_selector="listmgr")
    assert run_cli(same, "lists").status == 2
