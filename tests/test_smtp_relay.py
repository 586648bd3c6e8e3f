"""Nothing may turn listmgr into an open relay: every address trick, with and without a
POP3 login (relay grant) from the client's IP."""

from __future__ import annotations

from tests.smtp_support import add_grant, add_user, make_ingress_fixture, rcpt_reply

ingress = make_ingress_fixture()

# Addresses whose real destination is outside our domains: refused without a grant,
# relayed with one (to the address as the server parsed it).
REMOTE = [
    ("<someone@outside.example>", "someone@outside.example"),
    ("<SomeOne@OUTSIDE.EXAMPLE>", "SomeOne@OUTSIDE.EXAMPLE"),
    ("<@example.org:user@outside.example>", "user@outside.example"),       # source route
    ("<@example.org,@example.org:user@outside.example>", "user@outside.example"),
    ("<user@[192.0.2.1]>", "user@[192.0.2.1]"),                            # IP literal
    ("<user@[127.0.0.1]>", "user@[127.0.0.1]"),
    ("<postmaster@evil-example.org>", "postmaster@evil-example.org"),      # look-alikes
    ("<postmaster@example.org.evil.example>", "postmaster@example.org.evil.example"),
    ("<postmaster@sub.example.org>", "postmaster@sub.example.org"),
    ("<postmaster@example.org-evil.example>", "postmaster@example.org-evil.example"),
    ("<user@xn--exmple-cua.org>", "user@xn--exmple-cua.org"),              # IDN (punycode)
    ('<"user@example.org"@outside.example>', '"user@example.org"@outside.example'),
    ("<user%example.org@outside.example>", "user%example.org@outside.example"),
]

# Routing tricks aimed at a local domain: never re-parsed, refused with or without a grant.
LOCAL_TRICKS = [
    "<user%outside.example@example.org>",
    "<user%outside.example@EXAMPLE.ORG>",
    "<outside.example!user@example.org>",
    '<"user@outside.example"@example.org>',
    '<"user%outside.example"@example.org>',
    '<"user%outside.example">',
    "<user%outside.example>",
    "<alice%outside.example@example.org.>",
]


def test_every_trick_refused_without_grant(ingress):
    srv = ingress()
    srv.call(add_user, "alice")
    for rcpt, parsed in REMOTE:
        assert rcpt_reply(srv.smtp_port, rcpt) == (
            550, f"5.7.1 <{parsed}>... Relaying denied"), rcpt
    for rcpt in LOCAL_TRICKS:
        code, text = rcpt_reply(srv.smtp_port, rcpt)
        assert code == 550 and text.startswith("5.7.1 <") and \
            text.endswith(">... Relaying denied"), rcpt


def test_every_trick_with_a_grant(ingress):
    """With a POP3 login: remote destinations relay, local routing tricks stay refused."""
    srv = ingress()
    srv.call(add_user, "alice")
    srv.call(add_grant, "127.0.0.1")
    for rcpt, parsed in REMOTE:
        assert rcpt_reply(srv.smtp_port, rcpt) == (250, "2.1.5 Recipient ok"), rcpt
    for rcpt in LOCAL_TRICKS:
        code, text = rcpt_reply(srv.smtp_port, rcpt)
        assert code == 550 and text.endswith("... Relaying denied"), rcpt


def test_relay_target_is_the_parsed_address(ingress):
    import smtplib
    srv = ingress()
    srv.call(add_grant, "127.0.0.1")
    with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as c:
        c.ehlo("client.example")
        c.docmd("MAIL FROM:<alice@example.org>")
        for rcpt, _ in REMOTE[:5]:
            assert c.docmd(f"RCPT TO:{rcpt}")[0] == 250
        assert c.data(b"Subject: x\r\n\r\nx\r\n")[0] == 250
    [(_, [task])] = srv.messages()  # one relay task for all remote recipients
    assert task.kind == "relay" and task.recipients.split("\n") == [
        "someone@outside.example", "SomeOne@OUTSIDE.EXAMPLE", "user@outside.example",
        "user@[192.0.2.1]"]


def test_grant_for_another_ip_does_not_help(ingress):
    srv = ingress()
    srv.call(add_grant, "192.0.2.10")
    srv.call(add_grant, "::1")
    assert rcpt_reply(srv.smtp_port, "<someone@outside.example>")[0] == 550


def test_local_domains_and_trailing_dot_are_local(ingress):
    srv = ingress(smtp__local_domains=["Lists.Example.org"])
    srv.call(add_user, "alice")
    for rcpt in ("<alice@lists.example.org>", '<"alice"@example.org>', "<ALICE@Lists.Example.Org.>",
                 "<alice@example.org.>", "<postmaster>"):
        assert rcpt_reply(srv.smtp_port, rcpt) == (250, "2.1.5 Recipient ok"), rcpt
    assert rcpt_reply(srv.smtp_port, "<alice@other.example.org>")[0] == 550
