"""Item 12: text lines over 1,000 octets are accepted, and folded at delivery.

They once got `500 5.5.2` at DATA, though Postfix, Exim and Sendmail accept them and real
MUAs and web forms send them. A 5,000-octet line now goes through end to end; every line
that leaves for a remote is at most 998 octets, and unfolding gives the line back.
"""

from __future__ import annotations

from tests.adversarial.support import MEMBERS, make_list, post_text, send


def test_a_5000_octet_line_end_to_end(server, sink):
    srv = server()
    make_list(srv.call)
    long_line = "".join(chr(ord("a") + i % 26) for i in range(5000))
    send(srv.smtp_port, MEMBERS[0], "demo@example.org",
         post_text(subject="long", body=f"before\n{long_line}\nafter\n"))
    # A list copy comes from the list's bounce address (owner-demo+member=domain@ with VERP).
    copies = ("owner-demo@", "owner-demo+")
    got = sink.wait_for(lambda g: any(m.mail_from.startswith(copies) for m in g), 60)
    copy = [m for m in got if m.mail_from.startswith(copies)][0]
    lines = copy.data.split(b"\r\n")
    assert max(len(ln) for ln in lines) <= 998
    body = copy.data.split(b"\r\n\r\n", 1)[1]
    assert long_line.encode() in body.replace(b"\r\n ", b"")
    assert b"before\r\n" in body and b"\r\nafter" in body


def test_a_long_line_in_a_command_mail_is_read(server, sink):
    srv = server()
    make_list(srv.call)
    send(srv.smtp_port, "joe@example.net", "majordomo@example.org",
         "From: joe@example.net\nSubject: cmds\n\nlists\n" + "x" * 3000 + "\nend\n")
    got = sink.wait_for(lambda g: any("joe@example.net" in m.rcpt_tos for m in g), 60)
    reply = [m for m in got if "joe@example.net" in m.rcpt_tos][0]
    assert b"demo" in reply.data
