"""`listmgr import-majordomo` on a Majordomo 1.94.5 directory built here as a site has it:
hand-edited files with comments, odd spacing and CRLF line ends, a digest twin, an aliases
file with resend options, majordomo.cf, and a 50,000-member list. After the import, mail
over SMTP gets Majordomo's answers from the imported lists."""

from __future__ import annotations

import os
from pathlib import Path

from listmgr.majordomo import sources
from listmgr.store import lists as repo
from listmgr.store.models import MailingList
from tests.commands_helpers import members_of
from tests.support import run_cli
from tests.test_commands_smtp import Session

DEFAULT = (Path(__file__).parent / "data" / "majordomo" / "default-1.94.5.config").read_text()

DEMO_MEMBERS = """\
# demo subscribers, kept by hand
joe@example.net
Joe User <joe.user@example.net>
   ann@example.com (Ann Example)   
\"Bob, the builder\" <bob@example.com>

JOE@EXAMPLE.NET
not an address
"""

DEMO_CHANGES = {
    "admin_passwd        =   demo.admin": "admin_passwd = demoadmin1   # changed 1998",
    "approve_passwd      =   demo.pass": "approve_passwd      =   demopost1",
    "strip               =   yes": "strip = no",
    "subject_prefix      =": "subject_prefix      =   [$LIST]",
    "restrict_post       =": "restrict_post = demo:demo-digest",
    "who_access          =   open": "who_access = list",
    "debug               =   no": "debug = yes",
    "description         =": "description = Demonstration list",
    "message_footer      <<  END\n\nEND": "message_footer << EOF\n--\n-\nTo leave: unsubscribe $LIST\nEOF",
}

ALIASES = """\
# Majordomo aliases, as NEWLIST says
majordomo: "|/usr/local/majordomo/wrapper majordomo"
owner-majordomo: mjadmin@example.org
demo: "|/usr/local/majordomo/wrapper resend -l demo -h example.org -s -R -M 60000 -p list demo-outgoing"
demo-outgoing: :include:/usr/local/majordomo/lists/demo,
\t"|/usr/local/majordomo/wrapper archive2.pl -f /usr/local/majordomo/lists/demo.archive/demo -m"
owner-demo: alice@example.com,
    bob@example.com
demo-approval: owner-demo
demo-request: "|/usr/local/majordomo/wrapper majordomo -l demo"
big: "|/usr/local/majordomo/wrapper resend -A -m /usr/lib/sendmail -x -l big big-outgoing"
owner-big: carol
"""

MAJORDOMO_CF = """\
# majordomo.cf
$whereami = "example.com";
$whoami = "Majordomo\\@$whereami";
$whoami_owner = "Majordomo-Owner\\@$whereami";
$listdir = "/usr/local/majordomo/lists";
$config'default_subscribe_policy = "open+confirm";
$global_taboo_headers = <<'END';
/^subject:\\s*autoreply/i
/^subject:\\s*away from my mail/i
END
$admin_body = <<'END';
/^subscribe\\b/i
END
1;
"""


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def build_site(root: Path, big_members: int = 50_000) -> tuple[Path, Path, Path]:
    lists = root / "lists"
    lists.mkdir(parents=True)
    (lists / "demo").write_bytes(crlf(DEMO_MEMBERS))
    config = DEFAULT
    for old, new in DEMO_CHANGES.items():
        assert old in config, old
        config = config.replace(old, new)
    (lists / "demo.config").write_bytes(crlf(config))
    (lists / "demo.info").write_text("[Last updated on: Mon Jan  4 10:00:00 1999]\n"
                                     "Demo is a list for demonstrations.\n")
    (lists / "demo.intro").write_text("Welcome to demo. Be nice.\n")
    (lists / "demo.passwd").write_text("masterpw\n")
    (lists / "demo.archive").mkdir()
    (lists / "demo.archive" / "demo.9901").write_text("From joe@example.net Mon Jan  4 1999\n"
                                                      "Subject: first\n\nhello\n")
    (lists / "demo.archive" / ".hidden").write_text("not copied\n")
    (lists / "demo-digest").write_text("digester@example.org\n")
    (lists / "demo-digest.config").write_text("reply_to = demo\ndigest_volume = 3\n"
                                              "digest_issue = 42\n")
    with (lists / "big").open("w") as f:
        for i in range(big_members):
            f.write(f"user{i}@d{i % 97}.example\n")
    (lists / "big.closed").write_text("")
    (lists / "big.private").write_text("")
    (lists / "quiet").write_text("q@example.net\n")
    (lists / "quiet.hidden").write_text("")
    (lists / "quiet.auto").write_text("")
    (lists / "RCS").mkdir()
    aliases = root / "aliases"
    aliases.write_text(ALIASES)
    work = root / "digest"
    (work / "demo-digest").mkdir(parents=True)
    (work / "demo-digest" / "001").write_text("From: x@example.org\n\nqueued\n")
    cf = root / "majordomo.cf"
    cf.write_text(MAJORDOMO_CF + f'$digest_work_dir = "{work}";\n')
    return lists, aliases, cf


def import_args(lists, aliases, cf, *extra):
    return ("import-majordomo", "--listdir", str(lists), "--aliases", str(aliases),
            "--cf", str(cf), *extra)


def list_row(out: str, name: str) -> list[str]:
    for line in out.splitlines():
        if line.split()[:1] == [name]:
            return line.split()
    raise AssertionError(f"no row for {name} in\n{out}")


def get_list(app, name):
    with app.store.session() as s:
        mlist = repo.get_list(s, name)
        s.expunge(mlist) if mlist is not None else None
        return mlist


def test_import_then_mail_gets_majordomo_answers(tmp_path, config_file, server, sink):
    cfg = config_file()
    assert run_cli(cfg, "init").status == 0
    lists, aliases, cf = build_site(tmp_path / "majordomo")

    # --dry-run reports everything and changes nothing.
    toml_before = Path(cfg).read_text()
    dry = run_cli(cfg, *import_args(lists, aliases, cf, "--dry-run"))
    assert dry.status == 0, dry.err
    assert dry.out.startswith("Dry run: nothing was changed.")
    assert "global_taboo_headers: 2 pattern(s) would be written to" in dry.out
    assert Path(cfg).read_text() == toml_before
    assert list_row(dry.out, "big")[1:4] == ["50000", "50000", "0"]
    srv = server()
    assert srv.call(lambda s: s.query(MailingList).count()) == 0
    assert not (tmp_path / "var" / "archive" / "demo").exists()

    res = run_cli(cfg, *import_args(lists, aliases, cf))
    assert res.status == 0, res.err + res.out
    out = res.out
    # The summary table: members read, added, already there, invalid; settings.
    assert list_row(out, "demo")[1:5] == ["6", "4", "1", "1"]
    assert list_row(out, "big")[1:4] == ["50000", "50000", "0"]
    assert "demo-digest (digest of demo)" in out
    assert list_row(out, "total")[1:3] == ["50008", "50006"]
    # What could not be mapped is named with where it came from and why.
    assert "majordomo.cf $global_taboo_headers: 2 pattern(s) written to" in out
    assert "[posting] global_taboo_headers (in effect when serve starts)" in out
    assert "$admin_body: 1 pattern(s) not mapped" in out
    assert "$whereami = example.com: lists now answer at @example.org" in out
    assert "not mapped: demo.config line" in out and "debug = yes: accepted, has no " \
        "effect here" in out
    assert "not mapped: aliases big: resend -m /usr/lib/sendmail: the mailer command" in out
    assert "not mapped: aliases big: resend -x: not a resend option" in out
    assert "local user 'carol' has no domain" in out
    assert "demo.passwd differs from admin_passwd" in out
    assert "invalid member: not an address" in out
    assert "1 post(s) waiting for the next digest, 1 queued for demo's next digest" in out

    # Idempotent: a second run adds nothing and changes nothing.
    again = run_cli(cfg, *import_args(lists, aliases, cf))
    assert again.status == 0
    assert list_row(again.out, "demo")[1:5] == ["6", "0", "5", "1"]
    assert list_row(again.out, "big")[1:4] == ["50000", "0", "50000"]
    assert list_row(again.out, "demo")[-1] == "0"  # archive files already there

    app = srv.app
    demo = get_list(app, "demo")
    assert demo.owners == "alice@example.com\nbob@example.com"
    assert demo.strip is False and demo.subject_prefix == "[$LIST]"
    assert demo.restrict_post == "demo demo-digest" and demo.post_policy == "members"
    assert demo.maxlength == 40000 and demo.maxlength_counts == "body"  # config beats -M
    assert demo.purge_received is False and demo.precedence == "bulk"  # config beats -R -p
    assert demo.subscribe_policy == "open+confirm"  # majordomo.cf's site default
    assert demo.admin_passwd_hash.startswith("$argon2")
    assert "demoadmin1" not in demo.admin_passwd_hash
    assert members_of(app, "demo")[:4] == ["joe@example.net", "Joe User <joe.user@example.net>",
                                       "ann@example.com (Ann Example)",
                                       '"Bob, the builder" <bob@example.com>']
    big = get_list(app, "big")
    assert (big.subscribe_policy, big.who_access, big.get_access) == ("closed", "closed",
                                                                      "closed")
    assert big.post_policy == "moderated"  # resend -A
    assert big.owners == "Majordomo-Owner@example.com"
    quiet = get_list(app, "quiet")
    assert quiet.noadvertise == "/.*/" and quiet.subscribe_policy == "auto"
    # The digest twin: its members are demo's digest members, its numbers demo's.
    assert get_list(app, "demo-digest") is None
    assert (demo.digest_volume, demo.digest_issue) == (3, 42)
    assert "digester@example.org" in members_of(app, "demo")
    with app.store.session() as s:
        assert repo.find_member(s, repo.get_list(s, "demo"), "digester@example.org").digest
    assert (tmp_path / "var" / "archive" / "demo" / "demo.9901").is_file()
    assert not (tmp_path / "var" / "archive" / "demo" / ".hidden").exists()

    # Mail: the imported lists answer as Majordomo did.
    mail = Session(srv, sink)
    got = mail.send("lists\nwho demo\ninfo demo\nindex demo\nconfig demo demoadmin1",
                    frm="Joe <joe@example.net>")
    lines = got.lines
    assert "majordomo@example.org serves the following lists:" in lines
    assert any(ln.startswith("  demo ") and "Demonstration list" in ln for ln in lines)
    assert not any(ln.startswith("  quiet") for ln in lines)  # quiet.hidden
    i = lines.index("Members of list 'demo':")
    assert lines[i + 2:i + 6] == ["joe@example.net", "Joe User <joe.user@example.net>",
                                  "ann@example.com (Ann Example)",
                                  '"Bob, the builder" <bob@example.com>']
    assert "Demo is a list for demonstrations." in lines
    assert any("demo.9901" in ln for ln in lines)
    assert "subject_prefix = [$LIST]" in lines
    got = mail.send("who big\nsubscribe big", frm="newbie@example.net", expect=2)
    assert "**** Command disabled." in got.lines  # big.private
    assert any("has been forwarded to the owner" in ln for ln in got.lines)  # big.closed
    [approval] = got.to("big-approval@example.org") or got.to("Majordomo-Owner@example.com")
    # A post from a member goes out with the prefix and footer; Majordomo's "-" line.
    with __import__("smtplib").SMTP("127.0.0.1", srv.smtp_port, timeout=10) as c:
        c.sendmail("ann@example.com", ["demo@example.org"],
                   b"From: ann@example.com\r\nTo: demo@example.org\r\nSubject: hello\r\n\r\n"
                   b"Hi all.\r\n")
    # The imported list keeps VERP (the default): one copy per member, each from
    # owner-demo+member=domain@, so the members are collected across the list's copies.
    assert demo.verp != "off"

    def copies(rs):
        return [r for r in rs if "[demo] hello" in str(r.message["Subject"])
                and (r.mail_from == "owner-demo@example.org"
                     or (r.mail_from.startswith("owner-demo+")
                         and r.mail_from.endswith("@example.org")))]

    def rcpts(rs):
        return {a for r in copies(rs) for a in r.rcpt_tos}

    wanted = {"joe@example.net", "joe.user@example.net", "bob@example.com"}
    posts = sink.wait_for(lambda rs: wanted <= rcpts(rs))
    for post in copies(posts):
        body = post.message.get_content()
        assert body.replace("\r\n", "\n").endswith("-\n\nTo leave: unsubscribe demo\n")
    assert "digester@example.org" not in rcpts(posts)  # a digest member: no single copy


def test_archive_names_and_limits(tmp_path):
    src = tmp_path / "a"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "x.1").write_text("one\n")
    os.symlink("/etc/passwd", src / "passwd")
    from listmgr.majordomo.importer import copy_archive
    dest = tmp_path / "dest"
    assert copy_archive(src, dest, dry_run=True) == 1
    assert not dest.exists()
    assert copy_archive(src, dest, dry_run=False) == 1
    assert (dest / "sub" / "x.1").read_text() == "one\n"
    assert not (dest / "passwd").exists()
    assert copy_archive(src, dest, dry_run=False) == 0


def test_resend_and_aliases_parsing():
    aliases = sources.parse_aliases(ALIASES)
    assert sources.resolve(aliases, "demo-approval") == ["alice@example.com",
                                                          "bob@example.com"]
    rs = sources.parse_resend(aliases["demo"][0])
    assert rs.list_name == "demo" and rs.outgoing == ["demo-outgoing"]
    assert ("-M", "60000") in rs.options and ("-s", "") in rs.options
    assert sources.parse_resend(aliases["demo-outgoing"][0]) is None
    cf = sources.parse_cf(MAJORDOMO_CF)
    assert cf.values["whoami"] == "Majordomo@example.com"
    assert sources.cf_patterns(cf.blocks["global_taboo_headers"])[0] == \
        "/^subject:\\s*autoreply/i"


def test_bad_inputs_are_one_line_errors(tmp_path, config_file):
    cfg = config_file()
    assert run_cli(cfg, "init").status == 0
    res = run_cli(cfg, "import-majordomo", "--listdir", str(tmp_path / "nope"))
    assert res.status == 1 and "not a directory" in res.err and "Traceback" not in res.err
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "huge.config").write_bytes(b"x" * (sources.MAX_TEXT + 1))
    (lists / "huge").write_text("a@example.com\n" + "b" * 2000 + "@example.com\n")
    res = run_cli(cfg, "import-majordomo", "--listdir", str(lists))
    assert res.status == 1
    assert "FAILED:" in res.out and "more than the" in res.out
    res = run_cli(cfg, "import-majordomo", "--listdir", str(lists), "--lists", "missing")
    assert res.status == 1 and "no list file" in res.out


def test_member_blocks_follow_the_line_rules(tmp_path):
    """A block is read in one scan when every line is a bare address; the answers are the
    ones the address rules give line by line, whatever else the block holds."""
    from listmgr.mail.addresses import domains_if_valid, is_valid
    from listmgr.majordomo.members import parse_block
    samples = ["a@b.example", "A.B+c@Example.ORG", '"quoted"@x.example', "x@[10.0.0.1]",
               "-dash@x.example", "pipe|x@x.example", "no-at-sign", "a@localhost",
               "a@-bad.example", "a@b.example.", "Name <a@b.example>", "é@x.example",
               "a" * 330 + "@x.example"]
    for line in samples:
        assert (domains_if_valid([line]) is not None) == is_valid(line), line
        assert (domains_if_valid(["ok@x.example", line]) is not None) == is_valid(line), line
    rows, bad = parse_block(["ok@X.example", "Name <n@y.example>", "bad"], keep_raw=True)
    assert rows == [("ok@X.example", "ok@x.example", "x.example"),
                    ("Name <n@y.example>", "n@y.example", "y.example")]
    assert [line for line, _ in bad] == ["bad"]

    # A file of plain lines (read a block at a time without per-line work) and one with
    # padding, CRLF and comments give the same lines.
    plain, padded = tmp_path / "plain", tmp_path / "padded"
    addrs = [f"u{i}@d{i % 7}.example" for i in range(70_000)]
    plain.write_text("".join(a + "\n" for a in addrs))
    padded.write_bytes("".join(f"  {a}\r\n" + ("# c\r\n\r\n" if i % 1000 == 0 else "")
                               for i, a in enumerate(addrs)).encode())
    p, q = sources.MemberLines(plain), sources.MemberLines(padded)
    assert list(p) == list(q) == addrs
    assert p.lines == q.lines == len(addrs)


def test_duplicates_across_batches_count_once(tmp_path, config_file):
    """The same address far apart in a big file is added once and counted as already
    there the second time, in the file's order."""
    from listmgr.majordomo import importer
    cfg = config_file()
    assert run_cli(cfg, "init").status == 0
    lists = tmp_path / "lists"
    lists.mkdir()
    n = importer.MEMBER_BATCH + 10
    (lists / "wide").write_text("first@x.example\n" + "".join(
        f"m{i}@y.example\n" for i in range(n)) + "FIRST@X.example\n")
    res = run_cli(cfg, "import-majordomo", "--listdir", str(lists))
    assert res.status == 0, res.err
    assert list_row(res.out, "wide")[1:5] == [str(n + 2), str(n + 1), "1", "0"]
    again = run_cli(cfg, "import-majordomo", "--listdir", str(lists))
    assert list_row(again.out, "wide")[1:5] == [str(n + 2), "0", str(n + 2), "0"]


WAITING = [
    ("001", "From talker@example.net  Tue Mar  2 10:00:00 1999\n"
            "Received: from mx.example.net by lists.example.com; Tue, 2 Mar 1999 10:00:00\n"
            "From: Talker <talker@example.net>\nTo: talk@example.com\n"
            "Subject: first waiting post\nDate: Tue, 2 Mar 1999 10:00:00 +0100\n"
            "Sender: owner-talk@example.com\nPrecedence: bulk\n\nStill in the work dir.\n"),
    ("002", "From: other@example.net\r\nTo: talk@example.com\r\n"
            "Subject: second waiting post\r\n\r\nAlso waiting.\r\n"),
]


def test_archive_dirs_and_waiting_digest_posts(tmp_path, config_file, server, sink):
    """archive_dir (relative to $listdir, as Majordomo runs there) and digest_archive are
    copied; the posts in Majordomo's digest work directory go into the next digest."""
    cfg = config_file()
    assert run_cli(cfg, "init").status == 0
    root = tmp_path / "mj"
    lists = root / "lists"
    (lists / "old" / "talk-files").mkdir(parents=True)
    (lists / "old" / "talk-files" / "talk.9903").write_text("Subject: archived\n\nx\n")
    (root / "digests" / "talk").mkdir(parents=True)
    (root / "digests" / "talk" / "v01.n007").write_text("an old digest\n")
    work = lists / "digest-work" / "talk-digest"
    work.mkdir(parents=True)
    for fname, text in WAITING:
        (work / fname).write_bytes(text.encode())
    (work / "tmp.lock").write_text("")
    (lists / "talk").write_text("talker@example.net\n")
    (lists / "talk.config").write_text("admin_passwd = talkpw\n"
                                       "archive_dir = old/talk-files\n")
    (lists / "talk-digest").write_text("reader@example.org\n")
    (lists / "talk-digest.config").write_text(
        f"digest_archive = {root / 'digests' / 'talk'}\n"
        f"digest_work_dir = digest-work/talk-digest\ndigest_volume = 1\ndigest_issue = 8\n")
    res = run_cli(cfg, "import-majordomo", "--listdir", str(lists))
    assert res.status == 0, res.err + res.out
    assert "not mapped:" not in res.out, res.out
    assert list_row(res.out, "talk")[-1] == "1" and list_row(res.out, "talk-digest")[-1] == "1"
    assert "2 post(s) waiting for the next digest, 2 queued for talk's next digest" in res.out
    again = run_cli(cfg, "import-majordomo", "--listdir", str(lists))
    assert "2 post(s) waiting for the next digest, 0 queued" in again.out
    archive = tmp_path / "var" / "archive" / "talk"
    assert (archive / "talk.9903").is_file()
    assert (archive / "digest" / "v01.n007").read_text() == "an old digest\n"

    srv = server()
    mail = Session(srv, sink)
    got = mail.send("mkdigest talk talkpw", frm="owner@example.org", expect=2)
    assert "Digest V1 #8 of talk: 2 message(s) sent to 1 digest member(s)." in got.lines
    [digest] = got.to("reader@example.org")
    dig = [p for p in digest.message.walk() if p.get_content_type() == "multipart/digest"][0]
    inner = [p.get_content() for p in dig.iter_parts()]
    assert [str(m["Subject"]) for m in inner] == ["first waiting post", "second waiting post"]
    assert inner[0].get_content().startswith("Still in the work dir.")


def test_site_taboo_patterns_go_to_listmgr_toml_and_hold_posts(tmp_path, config_file, sink):
    """majordomo.cf's $global_taboo_* are written to [posting] in listmgr.toml (the keys
    added, the rest of the file as it was); after the import a matching post is held."""
    import smtplib
    from listmgr import config as config_mod
    from tests.support import ServerThread
    cfg = config_file(delivery__smarthost=f"127.0.0.1:{sink.port}",
                      posting__fanout_batch=500)
    assert run_cli(cfg, "init").status == 0
    lists = tmp_path / "mj"
    lists.mkdir()
    (lists / "news").write_text("poster@example.net\nreader@example.net\n")
    (lists / "news.config").write_text("admin_passwd = newspw\n")
    cf = tmp_path / "majordomo.cf"
    cf.write_text("$whereami = \"example.org\";\n"
                  "$global_taboo_headers = <<'END';\n/^subject:.*\\bbuy now\\b/i\nEND\n"
                  "$global_taboo_body = <<'END';\n# comment lines are skipped\n/casino/i\n"
                  "END\n1;\n")
    before = Path(cfg).read_text()
    res = run_cli(cfg, "import-majordomo", "--listdir", str(lists), "--cf", str(cf))
    assert res.status == 0, res.err + res.out
    assert f"$global_taboo_body: 1 pattern(s) written to {cfg} [posting] global_taboo_body" \
        in res.out
    after = Path(cfg).read_text()
    assert after.startswith(before.split("[posting]")[0])  # the rest is as it was
    loaded = config_mod.load(cfg)
    assert loaded.posting.global_taboo_headers == ("/^subject:.*\\bbuy now\\b/i",)
    assert loaded.posting.global_taboo_body == ("/casino/i",)
    assert loaded.posting.fanout_batch == 500
    again = run_cli(cfg, "import-majordomo", "--listdir", str(lists), "--cf", str(cf))
    assert "1 pattern(s), already [posting] global_taboo_headers" in again.out
    assert Path(cfg).read_text() == after

    srv = ServerThread(Path(cfg))
    srv.start()
    try:
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=10) as c:
            c.sendmail("poster@example.net", ["news@example.org"],
                       b"From: poster@example.net\r\nTo: news@example.org\r\n"
                       b"Subject: Buy now, cheap\r\n\r\nHello.\r\n")
        got = sink.wait_for(lambda rs: any(
            str(r.message["Subject"]).startswith("BOUNCE news@example.org") for r in rs))
        [held] = [r for r in got if str(r.message["Subject"]).startswith("BOUNCE news@")]
        assert "global taboo header: /^subject:.*\\bbuy now\\b/i" in str(held.message["Subject"])
        assert not any("reader@example.net" in r.rcpt_tos for r in got)
    finally:
        srv.stop()
