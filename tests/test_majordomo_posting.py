"""Posting rules Majordomo's resend had: site-wide taboo patterns, address header checks,
and restrict_post's Reply-To rule (reference 5.1, 5.3)."""

from __future__ import annotations

from tests.test_posting_flow import held, make_list, post, queued


def mail_(subject="hello", frm="member@example.com", extra="", body="Hi.\n"):
    return f"From: {frm}\nTo: demo@example.org\nSubject: {subject}\n{extra}\n{body}"


def test_global_taboo_headers_default_and_body(app, tmp_path):
    make_list(app, members=("member@example.com",))
    post(app, mail_(subject="Autoreply: out of office"))
    post(app, mail_(subject="Re: Returned mail explained"))
    post(app, mail_(subject="fine"))
    assert len(queued(app)) == 1
    reasons = sorted(h.reasons for h in held(app))
    assert any("global taboo header: /^subject:\\s*Autoreply/i" in r for r in reasons)
    assert any("global taboo header: /^subject:.*Returned mail\\b/i" in r for r in reasons)


def test_global_taboo_body_from_config(tmp_path, db_url):
    from listmgr import config as config_mod
    from listmgr.app import App
    from tests.support import migrated, write_config
    cfg = config_mod.load(write_config(tmp_path, db_url,
                                       posting__global_taboo_body=["/buy now/i"]))
    migrated(db_url)
    app = App.from_config(cfg)
    try:
        make_list(app, members=("member@example.com",))
        post(app, mail_(body="first\nBUY NOW cheap\n"))
        [h] = held(app)
        assert 'global taboo body match "/buy now/i" at line 2' in h.reasons
    finally:
        app.store.dispose()


def test_bad_majordomo_pattern_in_config_is_a_config_error(tmp_path, db_url):
    from listmgr import config as config_mod
    from tests.support import write_config
    import pytest
    with pytest.raises(config_mod.ConfigError) as exc:
        config_mod.load(write_config(tmp_path, db_url, posting__global_taboo_body=["no"]))
    assert "global_taboo_body" in str(exc.value)


def test_long_address_lines_and_unbalanced_from_are_held(app):
    make_list(app, members=("member@example.com",), post_policy="open")
    post(app, mail_(extra="Cc: " + ", ".join(f"p{i}@example.net" for i in range(10)) + "\n"))
    post(app, mail_(frm="Member (Me <member@example.com>"))
    post(app, mail_(extra="Cc: a@example.net,\n b@example.net\n"))  # folded: fine
    assert len(queued(app)) == 1
    reasons = sorted(h.reasons for h in held(app))
    assert any("Header line too long (>128)" in r for r in reasons)
    assert any("Imbalanced parentheses or angle brackets" in r for r in reasons)


def test_reply_to_naming_a_member_only_where_configured(app):
    make_list(app, members=("member@example.com",))
    stranger = mail_(frm="stranger@example.net", extra="Reply-To: member@example.com\n")
    post(app, stranger, mail_from="stranger@example.net")
    assert queued(app) == [] and len(held(app)) == 1  # off for new lists
    make_list(app, "imported", members=("member@example.com",),
              restrict_post_reply_to="yes")
    post(app, stranger.replace("demo@", "imported@"), to="imported",
         mail_from="stranger@example.net")
    assert len(queued(app)) == 1


def test_fronter_and_footer_keep_a_last_empty_line(app):
    from listmgr.majordomo import configmap
    reading = configmap.read("message_footer << END\n--\nTo leave: $LIST\n-\nEND\n"
                             "message_fronter << END\nHeads up.\n-\nEND\n", "demo",
                             domain="example.org")
    make_list(app, members=("member@example.com",), **reading.values)
    post(app, mail_(body="Hi.\n"))
    [(_, _, msg)] = queued(app)
    body = msg.get_content().replace("\r\n", "\n")
    assert body == "Heads up.\n\nHi.\n-\nTo leave: demo\n\n"


def test_bounce_notice_subject_on_one_line_and_post_inline(app):
    from sqlalchemy import select
    from listmgr.store.models import OutboundMessage
    make_list(app, members=("member@example.com",))
    post(app, mail_(frm="stranger@example.net", subject="a fairly long subject " * 4,
                    body="Original body.\n"), mail_from="stranger@example.net")
    with app.store.session() as s:
        m = s.scalars(select(OutboundMessage).where(
            OutboundMessage.origin == "notice:demo")).one()
        raw = app.spool.read(m.spool_path)
    head, _, body = raw.partition(b"\r\n\r\n")
    [subject] = [ln for ln in head.split(b"\r\n") if ln.startswith(b"Subject:")]
    assert subject.startswith(b"Subject: BOUNCE demo@example.org: ")
    assert b"Non-member submission from [stranger@example.net]" in subject
    lines = head.split(b"\r\n") + [b""]
    assert not lines[lines.index(subject) + 1].startswith((b" ", b"\t"))  # not folded
    assert b"accept " in body and b"reject " in body  # the token lines stay
    post_part = body[body.index(b"From: stranger@example.net"):]
    assert b"Subject: a fairly long subject" in post_part
    assert post_part.rstrip().endswith(b"Original body.")


def test_sender_and_resend_host_over_smtp(server, sink):
    """`sender` is the envelope sender of the list's copies (Majordomo's resend -f) and,
    with VERP, the base of each member's bounce address; bounces to either reach the bounce
    processor. `resend_host` is the host of the Sender: header (resend -h)."""
    from tests.test_bounces_e2e import ALICE, dsn, member, send_raw, wait_member
    from tests.test_posting_e2e import MEMBERS, STRANGER, post_text, send, setup_list
    srv = server(bounces__check_interval="1s")
    setup_list(srv, post_policy="open", sender="demo-bounces", resend_host="lists.example.com",
               bounce_score_threshold="1.0", subscribe_policy="open")
    setup_list(srv, name="plain", post_policy="open", verp="off", sender="plain-errors",
               members=[ALICE])
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    got = sink.wait_for(lambda rs: sum(len(r.rcpt_tos) for r in rs
                                       if r.mail_from.startswith("demo-bounces")) >= len(MEMBERS))
    copies = [r for r in got if r.mail_from.startswith("demo-bounces")]
    [copy] = [c for c in copies if c.rcpt_tos == [ALICE]]
    assert copy.mail_from == "demo-bounces+alice=example.com@example.org"
    assert copy.message["Sender"] == "demo-bounces@lists.example.com"
    assert copy.message["List-Owner"] == "<mailto:owner-demo@example.org>"
    assert not any(r.mail_from.startswith("owner-demo") for r in got)

    # The welcome a new member gets leaves from the list's sender too (Majordomo's welcome).
    send(srv, "newbie@example.net", "majordomo@example.org",
         "From: newbie@example.net\nTo: majordomo@example.org\nSubject: x\n\nsubscribe demo\n")
    got = sink.wait_for(lambda rs: any(r.rcpt_tos == ["newbie@example.net"]
                                       and "Welcome" in str(r.message["Subject"]) for r in rs))
    [welcome] = [r for r in got if r.rcpt_tos == ["newbie@example.net"]
                 and "Welcome" in str(r.message["Subject"])]
    assert welcome.mail_from == "demo-bounces@example.org"

    send(srv, STRANGER, "plain@example.org", post_text(STRANGER).replace("demo@", "plain@"))
    got = sink.wait_for(lambda rs: any(r.mail_from == "plain-errors@example.org" for r in rs))
    [plain] = [r for r in got if r.mail_from == "plain-errors@example.org"]
    assert plain.rcpt_tos == [ALICE] and plain.message["Sender"] == "plain-errors@example.org"

    # The member's server bounces the post to the envelope sender of her copy: scored.
    send_raw(srv, "", copy.mail_from, dsn(copy.mail_from, ALICE))
    m = wait_member(srv, ALICE, lambda m: m is not None and m.bounce_score > 0)
    assert m.bounce_score == 1.0
    assert member(srv, ALICE, "plain").bounce_score == 0
    # The bare sender address is the list's bounce address too (accepted at RCPT).
    send_raw(srv, "", "plain-errors@example.org", dsn("plain-errors@example.org", ALICE))
    deadline = __import__("time").monotonic() + 20
    while member(srv, ALICE, "plain").bounce_score == 0:
        assert __import__("time").monotonic() < deadline, "bounce to plain-errors@ not scored"
        __import__("time").sleep(0.1)
