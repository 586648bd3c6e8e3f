"""Per-recipient delivery at the sink: the post stored once, each member's copy with its own
parts (VERP sender, one-click List-Unsubscribe), and without them exactly the shared bytes."""

from __future__ import annotations

import re

from listmgr import site_secret, unsubscribe
from tests.test_posting_e2e import MEMBERS, STRANGER, post_text, send, setup_list, \
    wait_list_copies

PER_MEMBER = re.compile(rb"^List-Unsubscribe: [^\r]*\r\n [^\r]*\r\n"
                        rb"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")


def test_without_verp_or_base_url_every_member_shares_one_transaction(server, sink):
    srv = server()
    setup_list(srv, post_policy="open", verp="off")
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    [copy] = wait_list_copies(sink, len(MEMBERS))
    assert sorted(copy.rcpt_tos) == sorted(MEMBERS)
    assert copy.mail_from == "owner-demo@example.org"
    assert copy.message["List-Unsubscribe"] == \
        "<mailto:majordomo@example.org?body=unsubscribe%20demo>"


def test_each_copy_is_the_shared_body_plus_its_own_lines(server, sink):
    srv = server(web__base_url="https://lists.example.org")
    setup_list(srv, post_policy="open")  # verp on: the default
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    copies = wait_list_copies(sink, len(MEMBERS))
    assert len(copies) == len(MEMBERS)
    secret = site_secret.load(srv.config.data_dir)
    shared = set()
    for c in copies:
        [rcpt] = c.rcpt_tos
        assert c.mail_from == "owner-demo+" + rcpt.replace("@", "=") + "@example.org"
        m = PER_MEMBER.match(c.data)
        assert m, c.data[:300]
        shared.add(c.data[m.end():])
        tok = re.search(r"/u/([A-Za-z0-9_-]+)>", c.message["List-Unsubscribe"]).group(1)
        assert unsubscribe.verify(secret, tok, "demo", rcpt.lower())
        assert c.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert len(c.message.get_all("List-Unsubscribe")) == 1
    assert len(shared) == 1  # one body, stored once, the same for everyone
    tokens = {re.search(rb"/u/([A-Za-z0-9_-]+)>", c.data).group(1) for c in copies}
    assert len(tokens) == len(MEMBERS)


def test_base_url_without_verp_groups_nobody_but_keeps_the_list_sender(server, sink):
    srv = server(web__base_url="https://lists.example.org")
    setup_list(srv, post_policy="open", verp="off")
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    copies = wait_list_copies(sink, len(MEMBERS))
    assert len(copies) == len(MEMBERS)  # each has its own token: its own transaction
    assert all(c.mail_from == "owner-demo@example.org" for c in copies)


def test_probes_verp_only_members_with_a_score(server, sink):
    srv = server()
    setup_list(srv, post_policy="open", verp="probes")

    def score(s):
        from sqlalchemy import update
        from listmgr.store.models import Member
        s.execute(update(Member).where(Member.key == MEMBERS[1]).values(bounce_score=0.5))
    srv.call(score)
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    copies = wait_list_copies(sink, len(MEMBERS))
    senders = {r: c.mail_from for c in copies for r in c.rcpt_tos}
    assert senders[MEMBERS[1]] == "owner-demo+bob=example.net@example.org"
    assert senders[MEMBERS[0]] == senders[MEMBERS[2]] == "owner-demo@example.org"
    shared = [c for c in copies if c.mail_from == "owner-demo@example.org"]
    assert len(shared) == 1 and sorted(shared[0].rcpt_tos) == sorted([MEMBERS[0], MEMBERS[2]])


def test_a_verp_post_recorded_a_group_at_a_time_loses_its_spool_file_at_the_end(server, sink):
    # Groups of two members on three connections: their outcomes are recorded a group at a
    # time, some together; the store is asked whether the post is finished only once no
    # other group of it is still on its way, and then the spool file goes.
    from sqlalchemy import select

    from listmgr.store.models import OutboundMessage
    from tests.test_delivery import wait_until
    members = [f"m{i:02d}@example.net" for i in range(30)]
    srv = server(delivery__max_recipients_per_transaction=2, delivery__batch_size=6,
                 delivery__per_host_concurrency=3)
    setup_list(srv, post_policy="open", members=members)  # verp on: the default
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    copies = wait_list_copies(sink, len(members))
    assert sorted(r for c in copies for r in c.rcpt_tos) == sorted(members)
    assert {c.mail_from for c in copies} == {"owner-demo+" + m.replace("@", "=")
                                             + "@example.org" for m in members}

    def spool_paths():
        with srv.app.store.session() as s:
            return list(s.scalars(select(OutboundMessage.spool_path).where(
                OutboundMessage.origin == "post:demo")))
    wait_until(lambda: spool_paths() == [""], what="the post finished")
    # The file goes once the outcomes' transaction has committed.
    wait_until(lambda: not any((srv.app.spool.root / "spool" / "out").iterdir()),
               what="the post's spool file removed")
