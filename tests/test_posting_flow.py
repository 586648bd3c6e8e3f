"""Posts through the pipeline handler on both databases: what gets queued, held, archived.

The post is stored as an inbound task exactly as the SMTP ingress stores it, and the real
pipeline runs the handler; the assertions read the outbound queue the delivery worker
drains.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json

import pytest
from sqlalchemy import func, select

from listmgr.pipeline import InboundWorker
from listmgr.posting.fanout import FanoutWorker
from listmgr.service import INBOUND_HANDLERS
from listmgr.posting import moderation
from listmgr.spool import new_queue_id
from listmgr.store import lists as repo
from listmgr.store.models import (HeldPost, InboundMessage, InboundTask, OutboundMessage,
                                  OutboundRecipient, Token)
from listmgr import tokens
from tests.support import run_cli


def make_list(app, name="demo", *, members=(), password="s3cret", **settings):
    with app.store.session() as s:
        ml = repo.create_list(s, name, ["owner@example.org"], password=password)
        for k, v in settings.items():
            repo.set_setting(s, ml, k, v)
        if members:
            repo.add_members(s, ml, members)


def post(app, data: bytes | str, *, to="demo", mail_from="member@example.com"):
    if isinstance(data, str):
        data = data.encode()
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    qid = new_queue_id()
    path = app.spool.write("in", data, qid)
    with app.store.session() as s:
        m = InboundMessage(queue_id=qid, spool_path=path, mail_from=mail_from, size=len(data))
        s.add(m)
        s.flush()
        s.add(InboundTask(message_id=m.id, kind="post", target=to, rcpt=f"{to}@example.org"))
    p = InboundWorker(app, "all", INBOUND_HANDLERS)
    while p.run_once():
        pass
    FanoutWorker(app).run_all()  # members past the first batch
    with app.store.session() as s:
        states = list(s.scalars(select(InboundTask.state)))
    assert "shunted" not in states, states


def mail(subject="hello", body="Hi all.\n", frm="member@example.com", extra=""):
    return (f"From: {frm}\nTo: demo@example.org\nSubject: {subject}\n"
            f"Message-ID: <{new_queue_id()}@example.com>\n{extra}\n{body}")


def queued(app, origin_prefix="post:"):
    """[(mail_from, [rcpts], message)] for queued outbound messages of this origin."""
    out = []
    with app.store.session() as s:
        for m in s.scalars(select(OutboundMessage).where(
                OutboundMessage.origin.startswith(origin_prefix)).order_by(OutboundMessage.id)):
            rcpts = list(s.scalars(select(OutboundRecipient.rcpt).where(
                OutboundRecipient.message_id == m.id).order_by(OutboundRecipient.id)))
            data = app.spool.read(m.spool_path)
            out.append((m.mail_from, rcpts, email.message_from_bytes(
                data, policy=email.policy.default)))
    return out


def held(app):
    with app.store.session() as s:
        return moderation.pending(s)


MEMBERS = ["member@example.com", "b@example.net", "c@example.com"]


# --------------------------------------------------------------------------- policies

@pytest.mark.parametrize("policy,poster,outcome", [
    ("open", "member@example.com", "sent"),
    ("open", "stranger@elsewhere.example", "sent"),
    ("members", "member@example.com", "sent"),
    ("members", "stranger@elsewhere.example", "held"),
    ("moderated", "member@example.com", "held"),
    ("moderated", "stranger@elsewhere.example", "held"),
    ("announce", "owner@example.org", "sent"),
    ("announce", "member@example.com", "held"),
])
def test_post_policy(app, policy, poster, outcome):
    make_list(app, members=MEMBERS, post_policy=policy)
    post(app, mail(frm=poster), mail_from=poster)
    sent = queued(app)
    if outcome == "sent":
        assert len(sent) == 1
        mail_from, rcpts, msg = sent[0]
        assert mail_from == "owner-demo@example.org"
        assert sorted(rcpts) == sorted(MEMBERS)
        assert msg["List-Id"] == "<demo.example.org>"
        assert held(app) == []
    else:
        assert sent == []
        (h,) = held(app)
        assert h.sender == poster and h.list_name == "demo"
        notice = queued(app, "notice:")
        assert len(notice) == 1
        mail_from, rcpts, msg = notice[0]
        assert rcpts == ["owner@example.org"]
        assert msg["Subject"].startswith("BOUNCE demo@example.org: ")
        assert h.reasons[0] in msg["Subject"]
        # As Majordomo's resend: the post inline after the notice, so an `approve`
        # script can take it from the body.
        body = msg.get_content().replace("\r\n", "\n")
        # (Its first header may be our Authentication-Results, added on arrival.)
        assert f"\nFrom: {poster}\n" in body and "accept " in body


def test_nonmember_reject_tells_the_poster(app):
    make_list(app, members=MEMBERS, post_policy="members", nonmember_action="reject")
    post(app, mail(frm="x@elsewhere.example"), mail_from="x@elsewhere.example")
    assert queued(app) == [] and held(app) == []
    ((mail_from, rcpts, msg),) = queued(app, "notice:")
    assert mail_from == "" and rcpts == ["x@elsewhere.example"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert "Non-member submission from [x@elsewhere.example]" in msg.get_content()


def test_nonmember_reject_never_answers_a_bounce(app):
    make_list(app, members=MEMBERS, post_policy="members", nonmember_action="reject")
    post(app, mail(frm="mailer-daemon@elsewhere.example"), mail_from="")
    assert queued(app, "") == []


def test_moderator_gets_the_notice_when_set(app):
    make_list(app, members=MEMBERS, post_policy="moderated", moderator="mod@example.org")
    post(app, mail())
    ((_, rcpts, _),) = queued(app, "notice:")
    assert rcpts == ["mod@example.org"]


def test_loop_is_discarded(app):
    make_list(app, members=MEMBERS, post_policy="open")
    post(app, mail(extra="X-Loop: demo@example.org\n"))
    assert queued(app, "") == [] and held(app) == []


def test_administrivia_held_and_sender_told(app):
    make_list(app, members=MEMBERS, post_policy="open")
    post(app, mail(subject="unsubscribe"))
    assert queued(app) == []
    assert held(app)[0].reasons == ["Admin request: Subject: unsubscribe"]
    notices = queued(app, "notice:")
    to_sender = [n for n in notices if n[1] == ["member@example.com"]]
    assert len(to_sender) == 1
    assert "majordomo@example.org" in to_sender[0][2].get_content()


def test_japanese_list_notices(app):
    make_list(app, members=MEMBERS, post_policy="moderated", language="ja")
    post(app, mail())
    ((_, _, msg),) = queued(app, "notice:")
    assert "保留" in msg.get_body(("plain",)).get_content()


# --------------------------------------------------------------------------- decisions

def test_hold_then_approve_by_token_decision(app):
    make_list(app, members=MEMBERS, post_policy="moderated", subject_prefix="[$LIST]")
    post(app, mail(subject="news"))
    (h,) = held(app)
    ((_, _, notice),) = queued(app, "notice:")
    text = notice.get_body(("plain",)).get_content()
    secret = [ln.split()[1] for ln in text.splitlines() if ln.strip().startswith("accept ")][0]
    with app.store.session() as s:
        tok = tokens.consume(s, secret, kind="held-post")
        assert tokens.payload(tok) == {"held_id": h.id}
        result = moderation.decide(app, s, h.id, approve=True, by="owner@example.org")
    assert result == f"Post {h.id} to demo approved and sent to 3 members."
    ((mail_from, rcpts, msg),) = queued(app)
    assert sorted(rcpts) == sorted(MEMBERS)
    assert msg["Subject"] == "[demo] news"
    assert held(app) == []
    with app.store.session() as s:
        with pytest.raises(moderation.DecisionError, match="already approved"):
            moderation.decide(app, s, h.id, approve=False)
        with pytest.raises(moderation.DecisionError, match="no held post"):
            moderation.decide(app, s, 999, approve=True)
        row = s.get(HeldPost, h.id)
        assert row.state == "approved" and "owner@example.org" in row.decision_note
    assert not app.spool.path(row.spool_path).exists()


def test_reject_tells_the_poster_with_the_reason(app):
    make_list(app, members=MEMBERS, post_policy="moderated")
    post(app, mail(subject="spammy"))
    (h,) = held(app)
    with app.store.session() as s:
        assert moderation.decide(app, s, h.id, approve=False, reason="off topic") == \
            f"Post {h.id} to demo rejected."
    assert queued(app) == []
    notices = queued(app, "notice:")
    (rej,) = [n for n in notices if n[1] == ["member@example.com"]]
    assert rej[0] == ""
    assert "off topic" in rej[2].get_content()


def test_approved_header_resend_distributes_and_settles_the_held_copy(app):
    make_list(app, members=MEMBERS, post_policy="moderated")
    original = mail(subject="please post")
    post(app, original)
    (h,) = held(app)
    # The owner resends it with an Approved: header (the Majordomo way).
    post(app, "Approved: s3cret\n" + original, mail_from="owner@example.org")
    ((_, rcpts, msg),) = queued(app)
    assert sorted(rcpts) == sorted(MEMBERS)
    assert msg["Approved"] is None
    assert held(app) == []
    with app.store.session() as s:
        assert s.get(HeldPost, h.id).state == "approved"


def test_approved_first_body_line_resend(app):
    make_list(app, members=MEMBERS, post_policy="moderated")
    inner = mail(subject="original subject", frm="member@example.com")
    post(app, mail(subject="Fwd", frm="owner@example.org", body="Approved: s3cret\n" + inner),
         mail_from="owner@example.org")
    ((_, _, msg),) = queued(app)
    assert msg["Subject"] == "original subject"
    assert msg["From"] == "member@example.com"
    assert "Approved" not in msg.as_string()


def test_wrong_approved_password_holds_and_is_never_sent(app):
    make_list(app, members=MEMBERS, post_policy="open")
    post(app, mail(extra="Approved: wrong\n"))
    assert queued(app) == []
    (h,) = held(app)
    assert h.reasons == ["Invalid 'Approved:' header"]
    with app.store.session() as s:
        data = app.spool.read(s.get(HeldPost, h.id).spool_path)
    assert b"wrong" not in data


def test_cli_held_approve_reject(app, config_file):
    cfg = config_file()
    make_list(app, members=MEMBERS, post_policy="moderated")
    post(app, mail(subject="first"))
    post(app, mail(subject="second"))
    first, second = held(app)
    r = run_cli(cfg, "held", "demo")
    assert r.status == 0, r.err
    assert "Subject: first" in r.out and "Approval required" in r.out
    r = run_cli(cfg, "approve", str(first.id))
    assert r.status == 0 and "approved and sent to 3 members" in r.out, r.err
    r = run_cli(cfg, "reject", str(second.id), "--reason", "not today")
    assert r.status == 0 and "rejected" in r.out
    r = run_cli(cfg, "approve", str(second.id))
    assert r.status == 1 and "already rejected" in r.err
    assert run_cli(cfg, "held").out.strip() == "no held posts"
    assert run_cli(cfg, "held", "nolist").status == 1
    assert [m["Subject"] for _, _, m in queued(app)] == ["first"]


def test_expiry_tells_the_poster(app):
    make_list(app, members=MEMBERS, post_policy="moderated", hold_expiry="1d")
    post(app, mail(subject="old news"))
    (h,) = held(app)
    assert moderation.expire_due(app) == 0
    later = h.held_at + dt.timedelta(days=1, seconds=1)
    assert moderation.expire_due(app, now=later) == 1
    assert held(app) == []
    with app.store.session() as s:
        assert s.get(HeldPost, h.id).state == "expired"
        with pytest.raises(moderation.DecisionError):
            moderation.decide(app, s, h.id, approve=True)
    (exp,) = [n for n in queued(app, "notice:") if n[1] == ["member@example.com"]]
    assert "old news" in exp[2].get_content() and "1 day" in exp[2].get_content()


# --------------------------------------------------------------------------- delivery

def test_archive_and_sequence(app):
    make_list(app, members=MEMBERS, post_policy="open", subject_prefix="[$LIST:$SEQ]")
    post(app, mail(subject="one"))
    post(app, mail(subject="Re: [demo:00001] one"))
    subjects = [m["Subject"] for _, _, m in queued(app)]
    assert subjects == ["[demo:00001] one", "[demo:00002] Re: one"]
    files = list((app.config.data_path / "archive" / "demo").iterdir())
    assert len(files) == 1 and files[0].name.startswith("demo.20")
    box = files[0].read_bytes()
    assert box.count(b"\nFrom owner-demo@example.org ") + box.startswith(b"From ") == 2
    assert b"\r\n" not in box


def test_members_with_delivery_off_are_skipped(app):
    make_list(app, members=MEMBERS, post_policy="open")
    with app.store.session() as s:
        m = repo.find_member(s, repo.get_list(s, "demo"), "b@example.net")
        m.delivery_enabled = False
    post(app, mail())
    ((_, rcpts, _),) = queued(app)
    assert sorted(rcpts) == ["c@example.com", "member@example.com"]


def test_empty_list_queues_nothing(app):
    make_list(app, post_policy="open")
    post(app, mail())
    assert queued(app) == []
    with app.store.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboundMessage)) == 0


@pytest.mark.slow
def test_ten_thousand_members_each_queued_once(app):
    members = [f"user{i:05d}@d{i % 7}.example.net" for i in range(10_000)]
    make_list(app, members=members, post_policy="open")
    post(app, mail())
    with app.store.session() as s:
        (mid,) = s.scalars(select(OutboundMessage.id))
        rows = list(s.execute(select(OutboundRecipient.rcpt, OutboundRecipient.domain)
                              .order_by(OutboundRecipient.id)))
    rcpts = [r[0] for r in rows]
    assert len(rcpts) == 10_000 and set(rcpts) == set(members)
    # grouped by destination domain within each batch
    first_batch = [r[1] for r in rows[:app.config.posting.fanout_batch]]
    assert first_batch == sorted(first_batch)


def test_token_kind_payload(app):
    make_list(app, members=MEMBERS, post_policy="moderated")
    post(app, mail())
    (h,) = held(app)
    with app.store.session() as s:
        (tok,) = s.scalars(select(Token))
        assert tok.kind == "held-post" and tok.list_name == "demo"
        assert json.loads(tok.payload) == {"held_id": h.id}


@pytest.mark.slow
def test_two_workers_fan_out_a_post_once(app):
    """Two workers (as two `listmgr serve` on one database) never fan one post out twice."""
    import threading
    make_list(app, members=[f"u{i}@example.net" for i in range(2000)], post_policy="open")
    data = mail().replace("\n", "\r\n").encode()
    qid = new_queue_id()
    path = app.spool.write("in", data, qid)
    with app.store.session() as s:
        m = InboundMessage(queue_id=qid, spool_path=path, mail_from="member@example.com",
                           size=len(data))
        s.add(m)
        s.flush()
        s.add(InboundTask(message_id=m.id, kind="post", target="demo", rcpt="demo@example.org"))
    workers = [InboundWorker(app, "all", INBOUND_HANDLERS), InboundWorker(app, "all", INBOUND_HANDLERS)]
    workers[1].owner += "-b"
    start = threading.Barrier(2)

    def run(p):
        start.wait()
        while p.run_once():
            pass
    threads = [threading.Thread(target=run, args=(p,)) for p in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    fanouts = [FanoutWorker(app), FanoutWorker(app)]  # the rest of the members, in batches
    fanouts[1].owner += "-b"
    threads = [threading.Thread(target=f.run_all) for f in fanouts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ((_, rcpts, _),) = queued(app)
    assert len(rcpts) == 2000 == len(set(rcpts))


def test_removing_a_list_leaves_no_held_copies_behind(app, config_file):
    cfg = config_file()
    make_list(app, members=MEMBERS, post_policy="moderated")
    make_list(app, "keep", members=MEMBERS, post_policy="moderated")
    post(app, mail(subject="doomed"))
    post(app, mail(subject="kept"), to="keep")
    doomed, = [h for h in held(app) if h.list_name == "demo"]
    with app.store.session() as s:
        paths = {h.id: h.spool_path for h in s.scalars(select(HeldPost))}
    assert run_cli(cfg, "rmlist", "demo").status == 0
    assert moderation.sweep_orphans(app, min_age=0) == 1
    assert not app.spool.path(paths[doomed.id]).exists()
    kept = [p for i, p in paths.items() if i != doomed.id]
    assert kept and all(app.spool.path(p).exists() for p in kept)
