"""Digests: members choose them by mail, posts are collected and sent by size, by lines, by
age and on mkdigest, as MIME multipart/digest or RFC 1153 text, numbered and archived."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select, update

from listmgr.posting import digest
from listmgr.store.models import DigestEntry, MailingList, utcnow
from tests.commands_helpers import cmd_app, mailer, make_list  # noqa: F401
from tests.test_posting_flow import mail, post, queued

DIG = "dig@example.net"
NOW = "now@example.com"


def setup(mailer, **settings):
    make_list(mailer.app, members=(DIG, NOW, "member@example.com"), post_policy="open",
              **settings)
    out = mailer.send("set demo digest", frm=DIG)
    assert f"{DIG} now receives list demo as digests." in out.lines, out.text
    return mailer.app


def digests(app):
    return queued(app, "digest:")


def entries(app) -> int:
    with app.store.session() as s:
        return len(list(s.scalars(select(DigestEntry.id))))


def test_set_digest_and_back(mailer):
    app = setup(mailer)
    post(app, mail(subject="one"))
    [(env, rcpts, msg)] = queued(app)
    assert DIG not in rcpts and NOW in rcpts  # digest members get no single copies
    assert entries(app) == 1 and digests(app) == []
    out = mailer.send("set demo nodigest", frm=DIG)
    assert f"{DIG} now receives list demo one message at a time." in out.lines
    out = mailer.send("set demo digest other@example.net\nset demo weekly\n"
                      "set demo digest", frm="stranger@example.net")
    assert "**** set: you can change only your own address, not 'other@example.net'." \
        in out.lines
    assert "**** set: usage: set LIST digest|nodigest [ADDRESS]" in out.lines
    assert "**** set: 'stranger@example.net' is not a member of list 'demo'." in out.lines


def test_size_trigger(mailer):
    app = setup(mailer)
    post(app, mail(subject="post 0", body="x" * 500 + "\n"))
    with app.store.session() as s:
        # A post counts as members receive it: with the headers added on arrival
        # (Authentication-Results) and by the list, so measure it rather than guess.
        one = s.scalar(select(DigestEntry.size))
        s.execute(update(MailingList).where(MailingList.name == "demo")
                  .values(maxlength=2 * one + one // 2))
    n = 1
    while not digests(app) and n < 5:
        post(app, mail(subject=f"post {n}", body="x" * 500 + "\n"))
        n += 1
    assert n == 3  # two posts wait; the third passes maxlength (two and a half posts)
    [(env, rcpts, msg)] = digests(app)
    assert rcpts == [DIG] and env == "owner-demo@example.org"
    assert msg["Subject"] == "demo Digest V1 #1"
    assert entries(app) == 0


def test_lines_trigger(mailer):
    app = setup(mailer, digest_maxlines=40)
    post(app, mail(subject="a", body="line\n" * 10))
    assert digests(app) == []
    post(app, mail(subject="b", body="line\n" * 10))
    post(app, mail(subject="c", body="line\n" * 10))
    [(_, _, msg)] = digests(app)
    assert msg["Subject"] == "demo Digest V1 #1"


def test_age_trigger(mailer):
    app = setup(mailer, digest_maxdays=7)
    post(app, mail(subject="old news"))
    assert digest.send_due(app) == 0  # not old enough yet
    with app.store.session() as s:
        s.execute(update(DigestEntry).values(queued_at=utcnow() - dt.timedelta(days=8)))
    assert digest.send_due(app) == 1
    [(_, _, msg)] = digests(app)
    assert "old news" in msg.as_string()


def test_mkdigest_mime_numbers_and_archive(mailer):
    app = setup(mailer, digest_volume=3, digest_issue=42, digest_name="Demo Talk")
    out = mailer.send("mkdigest demo s3cret")
    assert "**** mkdigest: no messages are waiting for the demo digest." in out.lines
    post(app, mail(subject="first topic", body="Hello.\n"))
    post(app, mail(subject="second topic", frm="member@example.com", body="Bye.\n"))
    out = mailer.send("mkdigest demo-digest s3cret\nmkdigest demo wrong")
    assert "Digest V3 #42 of demo: 2 message(s) sent to 1 digest member(s)." in out.lines
    assert "**** mkdigest: invalid password." in out.lines
    [(_, rcpts, msg)] = digests(app)
    assert msg["Subject"] == "Demo Talk Digest V3 #42"
    assert msg["To"] == "demo@example.org" and msg["Reply-To"] == "demo@example.org"
    assert msg.get_content_type() == "multipart/mixed"
    toc, dig, end = msg.iter_parts()
    assert "Today's Topics:" in toc.get_content() and "first topic" in toc.get_content()
    assert dig.get_content_type() == "multipart/digest"
    inner = [p.get_content() for p in dig.iter_parts()]
    assert [p.get_content_type() for p in dig.iter_parts()] == ["message/rfc822"] * 2
    assert [str(m["Subject"]) for m in inner] == ["first topic", "second topic"]
    assert inner[0].get_content().startswith("Hello.")
    assert end.get_content().startswith("End of Demo Talk Digest V3 #42")
    with app.store.session() as s:
        assert s.scalar(select(MailingList.digest_issue)) == 43
    path = Path(app.config.data_dir) / "archive" / "demo" / "digest" / "v03.n042"
    assert path.is_file() and b"second topic" in path.read_bytes()
    out = mailer.send("get demo digest/v03.n042", frm=DIG)
    assert any("is being sent as a separate message" in ln for ln in out.lines), out.text


def test_rfc1153_format_and_footer_removed(mailer):
    app = setup(mailer, digest_format="rfc1153", message_footer="--\nTo leave: $LIST",
                digest_rm_footer="demo")
    post(app, mail(subject="dash lines", body="-- not a separator\ntext\n"))
    [(_, rcpts, single)] = queued(app)
    assert "To leave: demo" in single.get_content()  # single copies keep the footer
    out = mailer.send("mkdigest demo s3cret")
    assert "Digest V1 #1 of demo: 1 message(s) sent to 1 digest member(s)." in out.lines
    [(_, _, msg)] = digests(app)
    assert msg.get_content_type() == "text/plain"
    lines = msg.get_content().replace("\r\n", "\n").split("\n")
    assert lines[0].startswith("demo Digest") and lines[0].endswith("Volume 01 : Number 001")
    assert "Today's Topics:" in lines and "  dash lines" in lines
    assert "-" * 70 in lines and "-" * 30 in lines
    assert "Subject: dash lines" in lines
    assert "- -- not a separator" in lines  # RFC 1153 escape
    assert "To leave: demo" not in msg.get_content()  # digest_rm_footer
    i = lines.index("End of demo Digest V1 Issue #1")
    assert lines[i + 1] == "*" * len(lines[i])


def test_subscribe_to_the_digest_list_and_cli(mailer, tmp_path):
    app = mailer.app
    make_list(app, members=("member@example.com",))  # open+confirm
    out = mailer.send("subscribe demo-digest", frm="reader@example.net")
    [confirm] = [m for m in out.others() if "reader@example.net" in m.rcpts]
    auth = [ln.strip() for ln in confirm.lines if ln.strip().startswith("auth ")][0]
    assert auth.split()[2:4] == ["subscribe", "demo-digest"]
    out = mailer.send(auth, frm="reader@example.net")
    assert "Succeeded." in out.lines, out.text
    post(app, mail(subject="hello"))
    [(_, rcpts, _msg)] = queued(app)
    assert "reader@example.net" not in rcpts  # in digest mode
    assert entries(app) == 1
    # The command line: back to single messages.
    from tests.support import write_config, run_cli
    cfg = write_config(tmp_path, str(app.store.engine.url.render_as_string(
        hide_password=False)), data_dir=app.config.data_dir)
    res = run_cli(cfg, "set", "demo", "reader@example.net", "nodigest")
    assert res.status == 0, res.err
    post(app, mail(subject="again"))
    assert "reader@example.net" in queued(app)[-1][1]
    res = run_cli(cfg, "set", "demo", "nobody@example.net", "digest")
    assert res.status == 1 and "is not a member of demo" in res.err
