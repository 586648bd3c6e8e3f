"""Real-world bounces (flufl.bounce's test data, see tests/data/bounces/README.md): the
addresses they name are found, permanent or temporary; auto-replies and feedback reports
are told apart from bounces."""

from __future__ import annotations

from pathlib import Path

import pytest

from listmgr.bounces import detect

DATA = Path(__file__).parent / "data" / "bounces"

PERMANENT = {
    "aol_01.txt": ["screenname@aol.com"],
    "dsn_01.txt": ["JimmyMcEgypt@go.com"],
    "dsn_02.txt": ["zzzzz@zeus.hud.ac.uk"],
    "dsn_09.txt": ["pr@allen-heath.com"],
    "dsn_11.txt": ["joem@example.com"],
    "exim_01.txt": ["delangen@its.tudelft.nl"],
    "groupwise_01.txt": ["thoff@MAINEX1.ASU.EDU"],
    "hotpop_01.txt": ["allensmithee@hotpop.com"],
    "llnl_01.txt": ["trotts1@llnl.gov"],
    "microsoft_01.txt": ["DJBENNETT@IKON.COM"],
    "microsoft_03.txt": ["midica@banknbr.com"],
    "netscape_01.txt": ["aaaaa@corel.com", "bbbbb@corel.com"],
    "newmailru_01.txt": ["zzzzz@newmail.ru"],
    "postfix_01.txt": ["xxxxx@local.ie"],
    "postfix_02.txt": ["yyyyy@digicool.com"],
    "qmail_01.txt": ["psadisc@wwwmail.n-h.de"],
    "qmail_02.txt": ["rauschlo@frontfin.com"],
    # Sendmail names the list's own relay too; only members are ever scored.
    "sendmail_01.txt": ["zzzzz@nfg.nl", "zzzzz@shaft.coal.nl"],
    "simple_01.txt": ["bbbsss@turbosport.com"],
    "simple_02.txt": ["chris.ggggmmmm@usa.net"],
    "sina_01.txt": ["alan_t18@sina.com", "boboman76@sina.com"],
    "smtp32_01.txt": ["oliver@pcworld.com.ph"],
    "smtp32_04.txt": ["after_another@pacbell.net", "one_bad_address@pacbell.net"],
    "yahoo_01.txt": ["subscribe.motorcycles@listsociety.com"],
    "yahoo_04.txt": ["agarciamartiartu@yahoo.es", "open00now@yahoo.co.uk"],
}
TEMPORARY = {
    "dsn_05.txt": ["pkocmid@atlas.cz"],
    "simple_03.txt": ["jacobus@geo.co.za"],
}


def classify(name: str) -> detect.Verdict:
    return detect.classify("", (DATA / name).read_bytes(), "example.org")


@pytest.mark.parametrize("name", sorted(PERMANENT))
def test_permanent_failures_are_found(name):
    v = classify(name)
    assert v.kind == detect.BOUNCE
    assert v.permanent == sorted(PERMANENT[name])
    assert v.temporary == []
    assert v.reason


@pytest.mark.parametrize("name", sorted(TEMPORARY))
def test_delay_warnings_are_temporary(name):
    v = classify(name)
    assert v.kind == detect.BOUNCE
    assert v.permanent == [] and v.temporary == TEMPORARY[name]


def test_a_bounce_naming_nobody_is_still_a_bounce():
    # Exchange's text/html report without the address: goes to the owners as unrecognised.
    v = classify("dumbass_01.txt")
    assert v.kind == detect.BOUNCE and v.permanent == v.temporary == []


def test_every_file_in_the_corpus_is_checked():
    files = {p.name for p in DATA.glob("*.txt")}
    assert files == set(PERMANENT) | set(TEMPORARY) | {"dumbass_01.txt"}


def test_an_encoded_subject_is_decoded_for_the_reason():
    data = (DATA / "aol_01.txt").read_bytes().replace(
        b"Subject: Mail Delivery Problem", b"Subject: =?utf-8?b?6YWN6YCB5aSx5pWX?=", 1)
    assert detect.classify("", data, "example.org").reason == "\u914d\u9001\u5931\u6557"


VACATION = b"""From: Alice <alice@example.com>
To: owner-demo+alice=example.com@example.org
Subject: Out of Office: hello
Auto-Submitted: auto-replied
Content-Type: text/plain

I am away until Monday.
"""


@pytest.mark.parametrize("headers", [
    b"Auto-Submitted: auto-replied\nSubject: hello\n",
    b"Subject: Automatic reply: hello\n",
    b"Subject: Re: hello\nX-Autoreply: yes\n",
    b"Subject: Re: hello\nPrecedence: auto_reply\n",
    "Subject: =?utf-8?b?6Ieq5YuV5b+c562U?=: hello\n".encode(),
])
def test_auto_replies_are_recognised(headers):
    data = b"From: alice@example.com\nTo: owner-demo@example.org\n" + headers + b"\nAway.\n"
    assert detect.classify("alice@example.com", data, "example.org").kind == detect.AUTO_REPLY


def test_a_dsn_marked_auto_replied_is_still_a_bounce():
    data = (DATA / "postfix_01.txt").read_bytes().replace(
        b"\nSubject:", b"\nAuto-Submitted: auto-replied\nSubject:", 1)
    assert detect.classify("", data, "example.org").kind == detect.BOUNCE


def test_a_person_is_not_a_bounce():
    data = b"From: bob@example.net\nTo: owner-demo@example.org\nSubject: hi\n\nQuestion.\n"
    assert detect.classify("bob@example.net", data, "example.org").kind == detect.PERSON


def test_larger_than_the_limit_is_not_parsed():
    data = (DATA / "postfix_01.txt").read_bytes()
    big = data + b"x" * (detect.MAX_BYTES + 1 - len(data))
    v = detect.classify("", big, "example.org")
    assert v.kind == detect.TOO_BIG and v.permanent == []
    assert detect.classify("", data, "example.org").kind == detect.BOUNCE


def test_addresses_per_bounce_are_capped():
    rcpts = "".join(f"Final-Recipient: rfc822; u{i}@example.net\nAction: failed\n"
                    f"Status: 5.1.1\n\n" for i in range(detect.MAX_ADDRESSES + 50))
    data = ("From: MAILER-DAEMON@mx.example\nSubject: failure\nMIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
            "--B\nContent-Type: text/plain\n\nfailed\n--B\n"
            "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
            f"{rcpts}--B--\n").encode()
    v = detect.classify("", data, "example.org")
    assert len(v.permanent) == detect.MAX_ADDRESSES


ARF = b"""From: fbl@isp.example
To: abuse@example.org
Subject: FW: hello
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain

An abuse report.

--ARF
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <owner-demo+bob=example.net@example.org>
Original-Rcpt-To: <bob@example.net>

--ARF
Content-Type: message/rfc822

From: someone@example.com
To: demo@example.org
List-Id: Demo list <demo.example.org>
Subject: hello

Hi.
--ARF--
"""


def test_feedback_report_names_the_list_and_the_member():
    v = detect.classify("fbl@isp.example", ARF, "example.org")
    assert v.kind == detect.FEEDBACK
    assert v.feedback_type == "abuse"
    assert v.feedback_list == "demo"
    assert v.complainants == ["bob@example.net"]


def test_feedback_report_without_verp_uses_the_list_id():
    data = ARF.replace(b"Original-Mail-From: <owner-demo+bob=example.net@example.org>\n", b"")
    v = detect.classify("fbl@isp.example", data, "example.org")
    assert v.feedback_list == "demo" and v.complainants == ["bob@example.net"]
