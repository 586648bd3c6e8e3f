"""Posting logic without a store: parsing, approval, rules, subject prefix, decoration."""

from __future__ import annotations

import email
import email.policy
import time
from types import SimpleNamespace

import pytest

from listmgr.config import ADMINISTRIVIA
from listmgr.posting import chain, rules
from listmgr.posting.archive import mbox_entry
from listmgr.posting.decorate import ListInfo, decorate, expand, prefixed_subject
from listmgr.posting.message import RawMessage


def mlist(**kw):
    base = dict(name="demo", owners=("owner@example.org",), moderator="", post_policy="open",
                nonmember_action="hold", administrivia=True, taboo_headers="", taboo_body="",
                maxlength=None, approve_passwd_hash="", admin_passwd_hash="")
    base.update(kw)
    return SimpleNamespace(**base)


def post_of(data: bytes, ml=None, *, members=(), mail_from="poster@example.com", budget=2.0):
    ml = ml or mlist()
    return chain.build_post(mlist=ml, data=data, mail_from=mail_from, domain="example.org",
                            is_member=lambda a: a.lower() in members,
                            admin_patterns=rules.compile_admin(ADMINISTRIVIA),
                            max_size=5 * 1024 * 1024, time_budget=budget)


def msg(subject="hello", body="Hi all.\n", frm="poster@example.com", extra=""):
    return (f"From: {frm}\nTo: demo@example.org\nSubject: {subject}\n"
            f"Message-ID: <m1@example.com>\n{extra}\n{body}").encode()


# --------------------------------------------------------------------------- parsing

def test_raw_message_keeps_fields_and_body_bytes():
    m = RawMessage.parse(b"From x@y  Mon\nSubject: =?utf-8?q?h=C3=A9llo?=\n world\n"
                         b"From: A <a@b.example>\n\nbody\n")
    assert m.get("subject") == "héllo world"
    assert m.addresses("from") == ["a@b.example"]
    assert m.to_bytes().endswith(b"\r\n\r\nbody\r\n")
    assert b"From x@y" not in m.to_bytes()


# --------------------------------------------------------------------------- approval

def test_approved_header_is_taken_out():
    a = chain.extract_approval(RawMessage.parse(msg(extra="Approved: s3cret\n")))
    assert a.password == "s3cret"
    assert not a.msg.has("approved")


def test_approved_first_body_line_with_blank_line_is_eaten():
    a = chain.extract_approval(RawMessage.parse(msg(body="Approved: pw\n\nThe text.\n")))
    assert a.password == "pw"
    assert a.msg.body == b"The text.\r\n"
    assert a.msg.get("subject") == "hello"


def test_approved_first_body_line_then_a_whole_message_replaces_headers():
    inner = "From: orig@example.com\nSubject: original\n\nOriginal body.\n"
    a = chain.extract_approval(RawMessage.parse(msg(body="Approved: pw\n" + inner)))
    assert a.password == "pw"
    assert a.msg.get("subject") == "original"
    assert a.msg.addresses("from") == ["orig@example.com"]
    assert a.msg.body == b"Original body.\r\n"


def test_valid_and_invalid_passwords():
    from listmgr.passwords import hash_password
    ml = mlist(post_policy="moderated", approve_passwd_hash=hash_password("good"))
    p = post_of(msg(extra="Approved: good\n"), ml)
    assert p.approved and chain.decide(p).action == "accept"
    p = post_of(msg(extra="Approved: bad\n"), ml)
    d = chain.decide(p)
    assert d.action == "hold" and "Invalid 'Approved:' header" in d.reasons
    assert b"Approved" not in d.msg.to_bytes()


# --------------------------------------------------------------------------- rules

@pytest.mark.parametrize("policy,poster,members,expected", [
    ("open", "stranger@elsewhere.example", (), "accept"),
    ("members", "member@example.com", ("member@example.com",), "accept"),
    ("members", "stranger@elsewhere.example", (), "hold"),
    ("moderated", "member@example.com", ("member@example.com",), "hold"),
    ("announce", "owner@example.org", (), "accept"),
    ("announce", "member@example.com", ("member@example.com",), "hold"),
])
def test_post_policy(policy, poster, members, expected):
    d = chain.decide(post_of(msg(frm=poster), mlist(post_policy=policy), members=members,
                             mail_from=poster))
    assert d.action == expected, d.reasons


def test_nonmember_reject_setting():
    d = chain.decide(post_of(msg(frm="x@y.example"), mlist(post_policy="members",
                                                         nonmember_action="reject"),
                             mail_from="x@y.example"))
    assert d.action == "reject"
    assert d.reasons == ["Non-member submission from [x@y.example]"]


def test_loop_is_discarded():
    d = chain.decide(post_of(msg(extra="X-Loop: demo@example.org\n")))
    assert d.action == "discard"
    d = chain.decide(post_of(msg(extra="List-Id: Demo <demo.example.org>\n")))
    assert d.action == "discard"
    d = chain.decide(post_of(msg(extra="List-Id: <other.example.net>\n")))
    assert d.action == "accept"


def test_size_limit_uses_maxlength():
    d = chain.decide(post_of(msg(body="x" * 2000 + "\n"), mlist(maxlength=1000)))
    assert d.action == "hold" and d.reasons == ["Message too long (>1000 bytes)"]


@pytest.mark.parametrize("subject,body,held", [
    ("unsubscribe", "bye\n", True),
    ("Re: subscribe demo", "x\n", True),
    ("hello", "please remove me\n", True),
    ("hello", "\nunsubscribe demo\n", True),
    ("How to unsubscribe from a newsletter politely?", "Any ideas?\n", False),
    ("hello", "I will not remove me from anything, said she.\n", False),
])
def test_administrivia_is_whole_line(subject, body, held):
    d = chain.decide(post_of(msg(subject=subject, body=body)))
    assert (d.action == "hold") == held, d.reasons
    if held:
        assert d.hit_by("administrivia")


def test_administrivia_can_be_turned_off():
    d = chain.decide(post_of(msg(subject="unsubscribe"), mlist(administrivia=False)))
    assert d.action == "accept"


def test_taboo_headers_and_body():
    ml = mlist(taboo_headers="/^Subject:.*viagra/i", taboo_body="/forbidden\\s+word/")
    d = chain.decide(post_of(msg(subject="cheap VIAGRA"), ml))
    assert d.reasons == ["taboo header: /^Subject:.*viagra/i"]
    d = chain.decide(post_of(msg(body="one\nthe forbidden  word\n"), ml))
    assert d.reasons == ['taboo body match "/forbidden\\s+word/" at line 2']


def test_taboo_body_sees_through_base64():
    import base64
    body = base64.encodebytes(b"hello\nforbidden word\n").decode()
    data = msg(body=body, extra="MIME-Version: 1.0\nContent-Type: text/plain\n"
                               "Content-Transfer-Encoding: base64\n")
    d = chain.decide(post_of(data, mlist(taboo_body="/forbidden word/")))
    assert d.action == "hold"


def test_pathological_taboo_pattern_is_stopped_by_the_time_budget():
    ml = mlist(taboo_body="/(x+x+)+y/")
    t0 = time.monotonic()
    d = chain.decide(post_of(msg(body="x" * 5000 + "\n"), ml, budget=0.3))
    assert time.monotonic() - t0 < 10  # unbounded without the budget; slack for a loaded machine
    assert d.action == "hold"
    assert "ran out of time" in d.reasons[0]


# --------------------------------------------------------------------------- decoration

@pytest.mark.parametrize("subject,expected", [
    ("hello", "[demo] hello"),
    ("Re: [demo] hello", "Re: [demo] hello"),  # Majordomo leaves a prefix where it is
    ("[demo] Re: hello", "[demo] Re: hello"),
    ("RE: Re: [demo] hello", "RE: Re: [demo] hello"),
    ("Re: hello", "[demo] Re: hello"),
    ("Fwd: news", "[demo] Fwd: news"),
    ("[DEMO] hello", "[demo] [DEMO] hello"),  # literal, case-sensitive
])
def test_subject_prefix_no_double_prefix(subject, expected):
    assert prefixed_subject(subject, "[$LIST]", list_name="demo") == expected


def test_subject_prefix_with_sequence_replaces_the_old_number():
    got = prefixed_subject("Re: [demo:00041] topic", "[$LIST:$SEQ]", list_name="demo", seq=42)
    assert got == "[demo:00042] Re: topic"


def test_subject_prefix_raw_form_keeps_the_posters_encoding():
    raw = (b"From: a@example.com\r\nSubject: =?utf-8?b?5pel5pys6Kqe?=\r\n\r\nbody\r\n")
    out = decorate(RawMessage.parse(raw), info(subject_prefix="[$LIST]"))
    line = [ln for ln in out.split(b"\r\n") if ln.startswith(b"Subject:")][0]
    assert line == b"Subject: [demo] =?utf-8?b?5pel5pys6Kqe?="
    assert str(parse(out)["Subject"]) == "[demo] 日本語"
    raw = b"From: a@example.com\r\nSubject: Re: [demo] x\r\n\r\nbody\r\n"
    out = decorate(RawMessage.parse(raw), info(subject_prefix="[$LIST]"))
    assert b"\r\nSubject: Re: [demo] x\r\n" in out


def test_expand_escapes():
    assert expand("\\$LIST is $LIST", list_name="demo") == "$LIST is demo"


def info(**kw):
    base = dict(name="demo", domain="example.org", description="Demo list")
    base.update(kw)
    return ListInfo(**base)


def parse(data: bytes):
    return email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=email.policy.default)


def test_decorate_headers():
    raw = msg(extra="Sender: x@y.example\nReturn-Receipt-To: a@b.example\nResent-From: r@x.example"
                    "\nPrecedence: urgent\nReply-To: p@example.com\nErrors-To: e@x.example\n")
    out = parse(decorate(RawMessage.parse(raw), info(subject_prefix="[$LIST]",
                                                     reply_to="demo@example.org")))
    assert out["Sender"] == "owner-demo@example.org"
    assert out["Precedence"] == "bulk"
    assert out["Reply-To"] == "demo@example.org"
    assert out.get_all("Reply-To") == ["demo@example.org"]
    assert out["Subject"] == "[demo] hello"
    for gone in ("Return-Receipt-To", "Resent-From", "Errors-To"):
        assert out[gone] is None
    assert out["List-Id"] == "Demo list <demo.example.org>"
    assert out["List-Post"] == "<mailto:demo@example.org>"
    assert out["List-Help"] == "<mailto:majordomo@example.org?body=help>"
    assert out["List-Subscribe"] == "<mailto:majordomo@example.org?body=subscribe%20demo>"
    assert out["List-Unsubscribe"] == "<mailto:majordomo@example.org?body=unsubscribe%20demo>"
    assert out["List-Unsubscribe-Post"] is None
    assert out["X-Loop"] == "demo@example.org"
    assert out.get_content() == "Hi all.\n"


def test_base_url_leaves_list_unsubscribe_to_each_copy():
    # One-click links are per member: delivery puts them on each copy (delivery.personal).
    out = parse(decorate(RawMessage.parse(msg()), info(base_url="https://lists.example.org/")))
    assert out["List-Unsubscribe"] is None
    assert out["List-Unsubscribe-Post"] is None
    assert out["List-Help"] == "<mailto:majordomo@example.org?body=help>"


def test_announce_list_says_no_posting():
    out = parse(decorate(RawMessage.parse(msg()), info(post_policy="announce")))
    assert out["List-Post"].startswith("NO")


def test_non_ascii_subject_prefix_is_encoded():
    raw = msg(subject="=?utf-8?b?44GT44KT44Gr44Gh44Gv?=")
    data = decorate(RawMessage.parse(raw), info(subject_prefix="[$LIST]"))
    assert data.isascii()
    assert parse(data)["Subject"] == "[demo] こんにちは"


def test_footer_appended_to_plain_text():
    out = decorate(RawMessage.parse(msg()), info(message_footer="--\nThe $LIST list",
                                                 message_fronter="Hello from $LIST"))
    assert parse(out).get_content() == "Hello from demo\nHi all.\n--\nThe demo list\n"


def test_footer_on_multipart_mixed_is_a_new_part():
    raw = (b"From: p@example.com\nSubject: s\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=XX\n\npreamble\n--XX\n"
           b"Content-Type: text/plain\n\nbody text\n--XX\nContent-Type: application/pdf\n"
           b"Content-Transfer-Encoding: base64\n\nJVBERg==\n--XX--\n")
    out = parse(decorate(RawMessage.parse(raw), info(message_footer="footer ü")))
    parts = list(out.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "application/pdf",
                                                      "text/plain"]
    assert parts[0].get_content() == "body text"
    assert parts[2].get_content().replace("\r\n", "\n") == "footer ü\n"


def test_signed_message_is_wrapped_not_changed():
    signed_part = (b"Content-Type: text/plain; charset=us-ascii\r\n\r\nsigned text\r\n")
    raw = (b"From: p@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; "
           b"micalg=pgp-sha256; boundary=SIG\r\n\r\n--SIG\r\n" + signed_part +
           b"--SIG\r\nContent-Type: application/pgp-signature\r\n\r\nSIGDATA\r\n--SIG--\r\n")
    out = decorate(RawMessage.parse(raw), info(message_footer="footer"))
    assert signed_part in out  # the signed entity is byte for byte intact
    top = parse(out)
    assert top.get_content_type() == "multipart/mixed"
    kinds = [p.get_content_type() for p in top.iter_parts()]
    assert kinds == ["multipart/signed", "text/plain"]


def test_quoted_printable_text_gets_a_footer_part():
    raw = msg(body="caf=C3=A9\n", extra="MIME-Version: 1.0\nContent-Type: text/plain; "
                                        "charset=utf-8\nContent-Transfer-Encoding: "
                                        "quoted-printable\n")
    out = parse(decorate(RawMessage.parse(raw), info(message_footer="foot")))
    parts = list(out.iter_parts())
    assert parts[0].get_content() == "café\n"
    assert parts[1].get_content() == "foot\n"


def test_mbox_entry_quotes_from_lines():
    import datetime as dt
    e = mbox_entry(b"Subject: x\r\n\r\nFrom here\r\n>From there\r\n",
                   envelope_from="owner-demo@example.org",
                   when=dt.datetime(2026, 11, 29, 4, 0, 0))
    assert e.startswith(b"From owner-demo@example.org Sun Nov 29 04:00:00 2026\n")
    assert b"\n>From here\n>>From there\n" in e


def test_list_id_with_non_ascii_description_keeps_the_id_readable():
    data = decorate(RawMessage.parse(msg()), info(description="日本語のリスト"))
    raw = [ln for ln in data.split(b"\r\n") if ln.startswith(b"List-Id:")][0]
    assert raw.endswith(b" <demo.example.org>") and raw.isascii()
    assert parse(data)["List-Id"] == "日本語のリスト <demo.example.org>"


def test_list_id_quotes_specials():
    out = parse(decorate(RawMessage.parse(msg()), info(description='Demo, "the" list')))
    assert out["List-Id"] == '"Demo, \\"the\\" list" <demo.example.org>'


def test_approved_line_inside_a_mime_part_holds_instead_of_leaking():
    from listmgr.passwords import hash_password
    raw = (b"From: owner@example.org\nSubject: s\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/alternative; boundary=B\n\n--B\n"
           b"Content-Type: text/plain\n\nApproved: good\n\nhello\n--B\n"
           b"Content-Type: text/html\n\n<p>Approved: good</p><p>hello</p>\n--B--\n")
    d = chain.decide(post_of(raw, mlist(approve_passwd_hash=hash_password("good"))))
    assert d.action == "hold" and d.hit_by("approved_in_part")


def test_a_plain_post_with_approved_taken_out_is_not_held_for_it():
    from listmgr.passwords import hash_password
    d = chain.decide(post_of(msg(body="Approved: good\n\nhello\n"),
                             mlist(approve_passwd_hash=hash_password("good"))))
    assert d.action == "accept" and d.msg.body == b"hello\r\n"
