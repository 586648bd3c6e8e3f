"""Stories by mail: confirmation, owner approval, welcome and notices, config, new lists,
archives, loops and floods (through the command handler, both databases)."""

from __future__ import annotations

import datetime as dt
import os
import re

import pytest
from sqlalchemy import update

from listmgr.commands.context import SITE_PASSWORD_KEY
from listmgr.passwords import hash_password
from listmgr.store.models import SiteSetting, Token
from tests.commands_helpers import cmd_app, mailer, make_list, members_of  # noqa: F401

JOE = "joe@example.net"
ANN = "ann@example.com"
OWNER = "owner@example.com"


def key_from(sent) -> tuple[str, str]:
    m = re.search(r"^\tauth (\w+) (\S+ \S+ .+)$", sent.body, re.M)
    assert m, sent.body
    return m.group(1), m.group(2)


# --------------------------------------------------------------------------- policies

# policy, requester subscribes self or ANN, expected first outcome
SUBSCRIBE_TABLE = [
    ("open", "self", "added"),
    ("open", "other", "forward"),
    ("closed", "self", "forward"),
    ("closed", "other", "forward"),
    ("auto", "self", "added"),
    ("auto", "other", "confirm"),         # stricter than Majordomo: the address confirms
    ("open+confirm", "self", "confirm"),
    ("open+confirm", "other", "confirm"),
    ("closed+confirm", "self", "confirm"),
    ("auto+confirm", "other", "confirm"),
]


def outcome(out, target) -> str:
    text = out.text
    if "Succeeded." in out.lines:
        return "added"
    if "must be authenticated." in text:
        assert out.to(target) and out.to(target)[0].subject.startswith("Confirmation for")
        return "confirm"
    if 'has been forwarded to the owner of the "demo" list for approval.' in text:
        [req] = out.to(OWNER)
        assert req.subject == "APPROVE demo"
        return "forward"
    return "?\n" + text


@pytest.mark.parametrize("policy,who,expected", SUBSCRIBE_TABLE,
                         ids=[f"{p}-{w}" for p, w, _ in SUBSCRIBE_TABLE])
def test_subscribe_decision_table(mailer, policy, who, expected):
    make_list(mailer.app, subscribe_policy=policy)
    target = JOE if who == "self" else ANN
    out = mailer.send("subscribe demo" + ("" if who == "self" else f" {ANN}"))
    assert outcome(out, target) == expected
    assert members_of(mailer.app, "demo") == ([target] if expected == "added" else [])


# policy, who, expected (ANN is a member; JOE asks)
UNSUBSCRIBE_TABLE = [
    ("closed", "self", "removed"),
    ("open", "other", "forward"),
    ("closed", "other", "forward"),
    ("auto", "other", "confirm"),
    ("open+confirm", "other", "confirm"),
    ("auto+confirm", "other", "confirm"),
]


@pytest.mark.parametrize("policy,who,expected", UNSUBSCRIBE_TABLE,
                         ids=[f"{p}-{w}" for p, w, _ in UNSUBSCRIBE_TABLE])
def test_unsubscribe_decision_table(mailer, policy, who, expected):
    make_list(mailer.app, unsubscribe_policy=policy, members=(JOE, ANN))
    target = JOE if who == "self" else ANN
    out = mailer.send("unsubscribe demo" + ("" if who == "self" else f" {ANN}"))
    got = "removed" if "Succeeded." in out.lines else outcome(out, target)
    assert got == expected, out.text
    assert (target in members_of(mailer.app, "demo")) == (expected != "removed")


def test_confirm_then_auth_subscribes_with_welcome_and_notice(mailer):
    make_list(mailer.app, subscribe_policy="open+confirm", intro="Be nice.")
    out = mailer.send("subscribe demo")
    [confirm] = out.to(JOE)[:1]
    assert confirm.subject == "Confirmation for subscribe demo"
    assert confirm.lines[:3] == ["--", "", "Someone (possibly you) has requested that your"
                                 " email address be added"]
    key, rest = key_from(confirm)
    assert rest == f"subscribe demo {JOE}"
    assert out.lines[1:4] == ["**** Your request to majordomo@example.org:", "**** ",
                              f"**** \tsubscribe demo {JOE}"]
    out = mailer.send(f"auth {key} subscribe demo {JOE}")
    assert f">>>> auth {key} subscribe demo {JOE}" in out.lines
    assert "Succeeded." in out.lines
    assert members_of(mailer.app, "demo") == [JOE]
    [welcome] = [m for m in out.to(JOE) if m.subject == "Welcome to demo"]
    assert welcome.mail_from == "owner-demo@example.org"
    assert "Welcome to the demo mailing list!" in welcome.lines
    assert "Be nice." in welcome.lines
    [notice] = out.to(OWNER)
    assert notice.subject == f"SUBSCRIBE demo {JOE}"
    assert notice.lines[2:] == [f"{JOE} has been added to demo.",
                                "No action is required on your part."]
    # The key is single-use: replaying it gives a clear error and a fresh confirmation.
    out = mailer.send(f"auth {key} subscribe demo {JOE}")
    assert "**** auth: that key has already been used." in out.lines
    assert "**** A new confirmation is being sent." in out.lines
    assert out.to(JOE)[0].subject == "Confirmation for subscribe demo"


def test_accept_key_alone(mailer):
    make_list(mailer.app, subscribe_policy="auto+confirm", welcome=False, announcements=False)
    out = mailer.send(f"subscribe demo {ANN}")
    key, _ = key_from(out.to(ANN)[0])
    out = mailer.send(f"accept {key}")  # anyone holding the key, auto+confirm
    assert "Succeeded." in out.lines
    assert members_of(mailer.app, "demo") == [ANN]


def test_reject_key_withdraws(mailer):
    make_list(mailer.app, subscribe_policy="open+confirm")
    key, _ = key_from(mailer.send("subscribe demo").to(JOE)[0])
    out = mailer.send(f"reject {key}")
    assert f"Request withdrawn: subscribe demo {JOE}" in out.lines
    out = mailer.send(f"auth {key} subscribe demo {JOE}")
    assert "**** auth: that key has already been used." in out.lines
    assert members_of(mailer.app, "demo") == []


def test_wrong_and_expired_keys(mailer):
    make_list(mailer.app, subscribe_policy="open+confirm")
    out = mailer.send(f"auth 0123456789abcdef0123456789abcdef subscribe demo {JOE}")
    assert "**** auth: that key is not valid for this request." in out.lines
    assert out.to(JOE)[0].subject == "Confirmation for subscribe demo"
    key, _ = key_from(out.to(JOE)[0])
    # A key for one request does not confirm another.
    out = mailer.send(f"auth {key} subscribe demo {ANN}", frm=ANN)
    assert "**** auth: that key is not valid for this request." in out.lines
    with mailer.app.store.session() as s:
        s.execute(update(Token).values(expires_at=dt.datetime(2000, 1, 1)))
    out = mailer.send(f"auth {key} subscribe demo {JOE}")
    assert "**** auth: that key has expired." in out.lines
    assert members_of(mailer.app, "demo") == []


def test_open_confirm_auth_from_elsewhere_goes_to_owner(mailer):
    make_list(mailer.app, subscribe_policy="open+confirm")
    key, _ = key_from(mailer.send(f"subscribe demo {ANN}").to(ANN)[0])
    out = mailer.send(f"auth {key} subscribe demo {ANN}")  # sent by JOE, not ANN
    assert out.to(OWNER)[0].subject == "APPROVE demo"
    assert members_of(mailer.app, "demo") == []
    key, _ = key_from(mailer.send(f"subscribe demo {ANN}").to(ANN)[0])
    out = mailer.send(f"auth {key} subscribe demo {ANN}", frm=ANN)
    assert "Succeeded." in out.lines


def test_closed_list_owner_approval(mailer):
    make_list(mailer.app, subscribe_policy="closed")
    out = mailer.send("subscribe demo")
    [req] = out.to(OWNER)
    assert req.lines[2] == f"{JOE} requests that you approve the following:"
    assert f"\tsubscribe demo {JOE}" in req.lines
    assert " \tapprove PASSWORD \\" in req.lines
    assert "If you disapprove, do nothing." in req.lines
    assert contains_all(out.lines, ["When the list owner approves your request, you will be "
                                    "notified."])
    # The owner answers with the template, continuation lines and all.
    out = mailer.send(f" \tapprove s3cret \\\n \tsubscribe demo \\\n \t{JOE}\n", frm=OWNER)
    assert "Succeeded." in out.lines
    assert members_of(mailer.app, "demo") == [JOE]
    assert [m.subject for m in out.to(JOE)] == ["Welcome to demo"]


def contains_all(lines, wanted):
    return all(w in lines for w in wanted)


def test_strip_no_keeps_display_name(mailer):
    make_list(mailer.app, subscribe_policy="open", strip=False, welcome=False)
    out = mailer.send(f"subscribe demo Joe Bloggs <{JOE}>")
    assert "Succeeded." in out.lines
    assert members_of(mailer.app, "demo") == [f"Joe Bloggs <{JOE}>"]


def test_listserv_style_request(mailer):
    make_list(mailer.app, subscribe_policy="closed")
    out = mailer.send("subscribe demo Joe Bloggs")
    assert "**** subscribe: invalid address 'Joe Bloggs'" in out.lines


def test_forged_from_with_other_reply_to_is_not_self(mailer):
    make_list(mailer.app, subscribe_policy="open")
    out = mailer.send(f"subscribe demo {ANN}", frm=ANN, headers={"Reply-To": JOE})
    assert out.reply.rcpts == [JOE]
    assert 'has been forwarded to the owner of the "demo" list for approval.' in out.text
    assert members_of(mailer.app, "demo") == []


def test_unsubscribe_star(mailer):
    make_list(mailer.app, "demo", members=(JOE,), announcements=False)
    make_list(mailer.app, "other", members=(JOE,), announcements=False)
    make_list(mailer.app, "third", members=(ANN,))
    out = mailer.send("unsubscribe *")
    assert contains_all(out.lines, ["Succeeded (from list demo).", "Succeeded (from list other)."])
    assert members_of(mailer.app, "demo") == members_of(mailer.app, "other") == []
    out = mailer.send("unsubscribe *")
    # Majordomo skips the lists quietly: a miss adds nothing to the echo.
    assert [ln for ln in out.lines if ln.strip()] == [">>>> unsubscribe *"], out.lines


def test_unsubscribe_notice(mailer):
    make_list(mailer.app, members=(JOE,))
    out = mailer.send("unsubscribe demo")
    [n] = out.to(OWNER)
    assert n.subject == f"UNSUBSCRIBE demo {JOE}"
    assert n.lines[2:] == [f"{JOE} has unsubscribed from demo.",
                           "No action is required on your part."]


def test_announcements_and_welcome_off(mailer):
    make_list(mailer.app, subscribe_policy="open", welcome=False, announcements=False)
    out = mailer.send("subscribe demo")
    assert "Succeeded." in out.lines and out.others() == []


def test_welcome_uses_info_when_no_intro(mailer):
    make_list(mailer.app, subscribe_policy="open", info="The info text.", announcements=False)
    [w] = [m for m in mailer.send("subscribe demo").to(JOE) if m.subject == "Welcome to demo"]
    assert " Here's the general information for the list you've subscribed to," in w.lines
    assert "The info text." in w.lines


# --------------------------------------------------------------------------- owner commands

def test_newinfo_then_info_and_passwd(mailer):
    make_list(mailer.app)
    out = mailer.send("newinfo demo s3cret\nFirst line\n\n  indented\nEOF\ninfo demo")
    assert "New info for list demo accepted." in out.lines
    i = out.lines.index(">>>> info demo")
    assert out.lines[i + 1].startswith("[Last updated on: ")
    assert out.lines[i + 2:i + 5] == ["First line", "", "  indented"]
    out = mailer.send("passwd demo s3cret n3w\nnewinfo demo s3cret\nx\nEOF\n")
    assert "Password changed." in out.lines
    assert "**** newinfo: invalid password." in out.lines
    # After a failed password in a mail, the rest of that mail's passwords are not checked.
    out = mailer.send("newinfo demo n3w\nEOF\ninfo demo")
    assert "New info for list demo accepted." in out.lines
    assert "#### No info available for demo." in out.lines


def test_config_round_trip(mailer):
    make_list(mailer.app, description="Demo list", taboo_body="/viagra/i",
              message_footer="--\n  indented\n\nlast")
    out = mailer.send("config demo s3cret")
    lines = out.lines
    assert lines[1].startswith("# The configuration file for the mailing list \"demo\".")
    assert "description = Demo list" in lines
    assert "subscribe_policy = open+confirm" in lines
    assert "admin_passwd = " in lines
    i = lines.index("message_footer << END")
    assert lines[i + 1:i + 6] == ["---", "-  indented", "-", "last", "END"]
    config = "\n".join(lines[1:])
    config = config.replace("description = Demo list", "description = Changed # a comment")
    config = config.replace("who_access = open", "who_access = closed")
    out = mailer.send(f"newconfig demo s3cret\n{config}\nEOF\nwho demo\nconfig demo s3cret")
    assert "New config for list demo accepted." in out.lines, out.text
    assert "**** Command disabled." in out.lines  # applies to later commands at once
    assert "description = Changed" in out.lines
    i = out.lines.index("message_footer << END")
    assert out.lines[i + 1:i + 6] == ["---", "-  indented", "-", "last", "END"]


def test_newconfig_errors_change_nothing(mailer):
    make_list(mailer.app, description="Before")
    out = mailer.send("newconfig demo s3cret\n"
                      "description = After\n"
                      "maxlength = 0\n"
                      "foo = bar\n"
                      "welcome = maybe\n"
                      "subscribe_policy = bogus\n"
                      "taboo_body << END\n/x(/\nEND\n"
                      "EOF\ninfo demo")
    lines = out.lines
    i = lines.index("The new config file for demo was NOT accepted because:")
    errors = lines[i + 1:lines.index(">>>> info demo")]
    assert len(errors) == 5, errors
    assert any("maxlength" in e and "at line 2" in e for e in errors)
    assert "unknown key |foo| in file demo.new.config at line 3" in errors
    assert any("welcome" in e and "at line 4" in e for e in errors)
    assert any("subscribe_policy" in e and "at line 5" in e for e in errors)
    assert any("taboo_body" in e for e in errors)
    out = mailer.send("config demo s3cret")
    assert "description = Before" in out.lines


def test_newconfig_sets_password(mailer):
    make_list(mailer.app)
    out = mailer.send("newconfig demo s3cret\nadmin_passwd = other1\nEOF\n"
                      "writeconfig demo other1")
    assert "wrote new config for list demo." in out.lines


# --------------------------------------------------------------------------- site

def set_site_password(app, password="sitepw"):
    with app.store.session() as s:
        s.merge(SiteSetting(key=SITE_PASSWORD_KEY, value=hash_password(password)))


def test_newlist_by_mail(mailer):
    set_site_password(mailer.app)
    out = mailer.send("newlist fans fan@example.com Fans of things")
    assert "Your request for a new list 'fans' has been forwarded to the" in out.lines
    [req] = out.to("admin@example.org")
    assert req.subject == "NEWLIST fans"
    line = [ln for ln in req.lines if ln.startswith("\tapprove SITE-PASSWORD newlist")][0]
    assert line == "\tapprove SITE-PASSWORD newlist fans fan@example.com Fans of things"
    out = mailer.send(line.replace("SITE-PASSWORD", "wrong"), frm="admin@example.org")
    assert "**** approve: invalid list or password." in out.lines
    out = mailer.send(line.replace("SITE-PASSWORD", "sitepw"), frm="admin@example.org")
    assert "List fans created; its password has been sent to fan@example.com." in out.lines
    [welcome] = out.to("fan@example.com")
    pw = re.search(r"^\tpasswd fans (\S+) NEW-PASSWORD$", welcome.body, re.M).group(1)
    out = mailer.send(f"lists\napprove {pw} subscribe fans {ANN}", frm="fan@example.com")
    assert "  fans                    Fans of things" in out.lines
    assert "Succeeded." in out.lines
    out = mailer.send("approve sitepw rmlist fans", frm="admin@example.org")
    assert "List fans removed." in out.lines
    assert "fans" not in mailer.send("lists").text


def test_site_password_approves_any_list(mailer):
    set_site_password(mailer.app)
    make_list(mailer.app, subscribe_policy="closed")
    out = mailer.send(f"approve sitepw subscribe demo {ANN}", frm="admin@example.org")
    assert "Succeeded." in out.lines


def test_newlist_without_site_password_set(mailer):
    out = mailer.send("approve anything newlist x a@example.com")
    assert "**** approve: invalid list or password." in out.lines


# --------------------------------------------------------------------------- archive

def test_index_and_get(mailer):
    make_list(mailer.app, members=(JOE,))
    base = mailer.app.config.data_path / "archive" / "demo"
    base.mkdir(parents=True)
    (base / "demo.202611").write_text("From a@b Sun Nov  1 00:00:00 2026\nSubject: hi\n\nhello\n")
    (base / ".hidden").write_text("x")
    secret = mailer.app.config.data_path / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, base / "link")
    (base / "sub").mkdir()
    out = mailer.send("index demo\nget demo demo.202611\nget demo link\nget demo .hidden\n"
                      "get demo /etc/passwd\nget demo sub/../demo.202611\nget demo sub")
    lines = out.lines
    assert "Files available for list 'demo':" in lines
    assert any(ln.startswith("  demo.202611") for ln in lines)
    assert not any(".hidden" in ln and not ln.startswith(">>>>") and "invalid" not in ln
                   for ln in lines)
    assert ["List 'demo' file 'demo.202611'", "is being sent as a separate message."] == \
        lines[lines.index(">>>> get demo demo.202611") + 1:][:2]
    for bad in ("link", ".hidden", "/etc/passwd", "sub/../demo.202611", "sub"):
        assert f"**** get: invalid file '{bad}' for list 'demo'." in lines, bad
    [f] = [m for m in out.to(JOE) if m.subject.startswith("Majordomo file")]
    assert f.subject == "Majordomo file: list 'demo' file 'demo.202611'"
    assert "hello" in f.lines and "top secret" not in f.body


# --------------------------------------------------------------------------- loops, abuse

@pytest.mark.parametrize("headers,mail_from", [
    ({}, ""),
    ({"From": "MAILER-DAEMON@example.com"}, "MAILER-DAEMON@example.com"),
    ({"From": "other-request@example.com"}, "other-request@example.com"),
    ({"From": "majordomo@example.com"}, "majordomo@example.com"),
    ({"From": "listserv@example.com"}, "listserv@example.com"),
    ({"Auto-Submitted": "auto-replied"}, None),
    ({"Precedence": "bulk"}, None),
    ({"Precedence": "junk"}, None),
    ({"Precedence": "list"}, None),
    ({"X-Loop": "majordomo@example.org"}, None),
    ({"From": "demo-request@example.org"}, None),
    ({"From": "not an address"}, None),
], ids=["null-sender", "mailer-daemon", "request", "majordomo", "listserv", "auto-submitted",
        "bulk", "junk", "list", "x-loop", "own-address", "no-address"])
def test_no_reply_to_robots_and_loops(mailer, headers, mail_from):
    make_list(mailer.app, subscribe_policy="open")
    headers = dict(headers)
    frm = headers.pop("From", JOE)
    out = mailer.send("subscribe demo", frm=frm, headers=headers, mail_from=mail_from)
    assert out.sent == []
    assert members_of(mailer.app, "demo") == []


def test_auto_submitted_no_is_answered(mailer):
    out = mailer.send("lists", headers={"Auto-Submitted": "no"})
    assert out.reply is not None


def test_replies_are_rate_limited_per_requester(mailer):
    limit = mailer.app.config.commands.replies_per_hour
    replies = sum(1 for _ in range(limit + 3) if mailer.send("lists").reply)
    assert replies == limit
    assert mailer.send("lists", frm=ANN).reply is not None


def test_confirmations_to_a_victim_are_bounded(mailer):
    make_list(mailer.app, subscribe_policy="auto")
    limit = mailer.app.config.commands.replies_per_hour
    sent = 0
    for i in range(limit + 3):
        out = mailer.send(f"subscribe demo {ANN}", frm=f"forger{i}@example.com")
        sent += len(out.to(ANN))
    assert sent == limit
    assert "no confirmation was sent" in out.text


def test_japanese_replies(mailer):
    make_list(mailer.app, "nihon", subscribe_policy="open", language="ja", welcome=True)
    out = mailer.send("subscribe\nfoo\n", default_list="nihon")
    assert out.reply.subject.startswith("Majordomo 処理結果")
    assert any("成功" in ln for ln in out.lines), out.text
    [w] = [m for m in out.to(JOE) if m.mail_from == "owner-nihon@example.org"]
    assert "nihon" in w.subject


# --------------------------------------------------------------------------- held posts

def test_accept_and_reject_held_posts(mailer):
    from listmgr.posting.message import RawMessage
    from listmgr.posting.moderation import hold
    from listmgr.store import lists as repo
    app = mailer.app
    make_list(app, members=("m1@example.com",), moderator=OWNER)
    keys = []
    for n in (1, 2):
        def held(n=n):
            with app.store.session() as s:
                mlist = repo.get_list(s, "demo")
                hold(app, s, mlist, RawMessage.parse(
                    f"From: {ANN}\r\nTo: demo@example.org\r\nSubject: post {n}\r\n\r\n"
                    f"Hello {n}\r\n".encode()), mail_from=ANN, reasons=["Non-member"])
        notice = mailer.capture(held).to(OWNER)[0]
        text = notice.message.as_string()
        keys.append(re.search(r"accept ([0-9a-f]{32})", text).group(1))
    out = mailer.send(f"accept {keys[0]}\nreject {keys[1]} off topic\naccept {keys[0]}",
                      frm=OWNER)
    lines = out.lines
    assert lines[1].startswith("Post ") and lines[1].endswith(
        " to demo approved and sent to 1 member."), lines
    assert lines[3].startswith("Post ") and lines[3].endswith(" to demo rejected.")
    assert lines[5] == "**** That key has already been used."
    assert out.to("m1@example.com")  # the approved post went out


# --------------------------------------------------------------------------- robustness

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ctype=st.sampled_from(["text/plain; charset=iso-2022-jp", "multipart/mixed; boundary=b",
                              "text/html; charset=shift_jis", "text/plain; charset=bogus",
                              "application/octet-stream"]),
       cte=st.sampled_from(["base64", "quoted-printable", "8bit", "7bit"]),
       body=st.binary(max_size=400), n=st.integers(0, 10**9))
def test_any_body_gets_a_reply_never_a_crash(cmd_app, ctype, cte, body, n):
    from tests.commands_helpers import Mailer
    head = (f"From: fuzz{n}@example.net\r\nSubject: x\r\nContent-Type: {ctype}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n").encode()
    out = Mailer(cmd_app).raw(head + body, mail_from=f"fuzz{n}@example.net")
    assert out.lines[0].startswith(">>>> ") or out.lines[0].startswith("**** No valid")


def test_a_failing_command_is_rolled_back_and_reported(mailer, monkeypatch):
    from listmgr.commands import registry
    make_list(mailer.app, subscribe_policy="open", welcome=False, announcements=False)

    def broken(ctx, args, line=None):
        raise RuntimeError("disk on fire")
    registry.load()
    monkeypatch.setitem(registry.COMMANDS, "who", broken)
    out = mailer.send("subscribe demo\nwho demo\nlists")
    assert out.lines[-4:] == [
        ">>>> who demo",
        ">>> Sorry, an error has occurred while processing your request",
        ">>> The caretaker of Majordomo ( majordomo-owner@example.org ) has been notified",
        ">>> of the problem."]
    assert members_of(mailer.app, "demo") == [JOE]  # earlier commands stand
    [note] = out.to("admin@example.org")
    assert note.subject == "MAJORDOMO ABORT (listmgr)"
    assert "RuntimeError: disk on fire" in note.body


_header_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                       max_size=120)


@settings(max_examples=60, deadline=None)
@given(subject=_header_text, message_id=_header_text, references=_header_text,
       name=_header_text, n=st.integers(0, 10**9))
def test_any_headers_get_a_reply_never_a_crash(cmd_app, subject, message_id, references,
                                                name, n):
    from email.header import Header

    from tests.commands_helpers import Mailer
    frm = Header(name, "utf-8").encode() + f" <hdr{n}@example.net>"
    head = (f"From: {frm}\r\nSubject: {Header(subject, 'utf-8').encode()}\r\n"
            f"Message-ID: {message_id}\r\nReferences: {references}\r\n\r\nlists\r\n")
    out = Mailer(cmd_app).raw(head.encode("utf-8", "surrogateescape"),
                              mail_from=f"hdr{n}@example.net")
    assert ">>>> lists" in out.lines


def test_advertise_and_noadvertise(mailer):
    make_list(mailer.app, "public")
    make_list(mailer.app, "corp", advertise="/@example\\.com$/i")
    make_list(mailer.app, "hidden", noadvertise="/.*/", members=(ANN,))
    joe = [ln.split()[0] for ln in mailer.send("lists").lines if ln.startswith("  ")]
    ann = [ln.split()[0] for ln in mailer.send("lists", frm=ANN).lines if ln.startswith("  ")]
    assert joe == ["public"]
    assert ann == ["corp", "hidden", "public"]  # hidden: members always see their list


def test_site_language_japanese(mailer):
    app = mailer.app
    saved = app.config
    app.config = saved.with_overrides(language="ja")
    try:
        out = mailer.send("lists\nfrobnicate")
        assert out.reply.subject == "Majordomo 処理結果: commands"
        assert "**** コマンド 'frobnicate' は認識できません。" in out.lines
        assert any("このヘルプは majordomo@example.org" in ln for ln in out.lines)
    finally:
        app.config = saved


def test_index_and_get_read_the_posting_archive(mailer):
    from listmgr.posting import archive
    make_list(mailer.app, get_access="open")
    when = dt.datetime(2026, 11, 3, tzinfo=dt.timezone.utc)
    path = archive.append(mailer.app.config, "demo", b"From: a@example.com\r\nSubject: s\r\n\r\n"
                          b"archived body\r\n", envelope_from="a@example.com", when=when)
    assert path.name == "demo.202611"
    out = mailer.send("index demo\nget demo demo.202611")
    assert any(ln.startswith("  demo.202611 ") for ln in out.lines)
    [f] = [m for m in out.to(JOE) if m.subject.startswith("Majordomo file")]
    assert "archived body" in f.lines


def test_housekeeping_forgets_old_keys_and_counters(mailer):
    from listmgr.commands import housekeeping
    from listmgr.store.models import RateCounter
    app = mailer.app
    make_list(app, subscribe_policy="open+confirm")
    mailer.send("subscribe demo")
    with app.store.session() as s:
        s.add(RateCounter(key="autoreply:x:y", window_start=dt.datetime(2000, 1, 1), count=1))
    assert housekeeping.purge(app) == (0, 0)
    with app.store.session() as s:
        s.execute(update(Token).values(expires_at=dt.datetime(2000, 1, 1)))
        s.execute(update(RateCounter).values(window_start=dt.datetime(2000, 1, 1)))
    assert housekeeping.purge(app) == (1, 1)  # the autoreply counter is not ours
    with app.store.session() as s:
        assert s.get(RateCounter, "autoreply:x:y") is not None
