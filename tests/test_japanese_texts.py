"""Every text a `ja` list or site sends is Japanese throughout, rendered with the values the
code passes (English reasons from the posting rules and the bounce detector included).

Each template under templates/en/ (the web pages aside, tested with the pages) must have a
Japanese version, and each of its variables a realistic sample here: a new text without one
fails. The Subject lines Majordomo's scripts and the hosting company's help pages name
(`BOUNCE LIST@domain: REASON`, `APPROVE LIST`, `Returned mail: User unknown`) keep their
English on purpose and are checked as such.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import jinja2.meta
import pytest

from listmgr.config import format_duration
from listmgr.render import environment, render
from tests.japanese_audit import assert_japanese, english_left

ROOT = Path(str(resources.files("listmgr.templates")))
REPO = Path(__file__).resolve().parent.parent

# What a remote server says, a post's subject, an internal error: quoted, not ours.
REMOTE = "550 5.1.1 <taro@example.net>: Recipient address rejected: User unknown"
ERROR = "OperationalError: database is locked"
SUBJECT = "Weekly meeting notes"  # a poster's own subject stays as they wrote it

SAMPLE = {
    "list": "nihon", "domain": "example.jp", "whoami": "majordomo@example.jp",
    "whoami_owner": "majordomo-owner@example.jp", "member": "taro@example.net",
    "addr": "taro@example.net", "subscriber": "taro@example.net",
    "requester": "hanako@example.net", "owner": "owner@example.jp",
    "approval": "nihon-approval@example.jp", "password": "Xy7pQ2mK",
    "key": "0123456789abcdef0123456789abcdef", "token": "0123456789abcdef0123456789abcdef",
    "cmd": "subscribe", "command": "subscribe", "what": "index", "string": "taro",
    "lifetime": format_duration(7 * 86400, "ja"), "interval": 7 * 86400,
    "version": "1.0", "stamp": "Thu Dec  3 04:26:25 2026", "at": dt.datetime(2026, 12, 3, 4, 26), "n": 3, "limit": 100, "failures": 10, "posts": 4, "recipients": 12,
    "volume": 2, "issue": 7, "size": 1234, "when": "2026-12-01 10:00", "file": "notes.txt",
    "description": "日本語で話すリスト", "subject": SUBJECT, "original_subject": SUBJECT,
    "body": "ただいま不在です。", "error": ERROR, "mode": "digest", "option": "daily",
    "why": "taro@ は完全なインターネットアドレスではありません",
    "info": "このリストは日本語のリストです。", "intro": "ようこそ。",
    "reason": REMOTE, "reasons": ["Approval required: the list is moderated"],
    "sender": "taro@example.net", "held": SimpleNamespace(id=42),
    "expires": "2026-12-10 04:00 UTC", "days": 7, "score": "5", "threshold": "5",
    "warnings": 3, "notice": 1, "left": 2, "feedback_type": "abuse",
    "action": "unsubscribed", "reporter": "fbl@isp.example",
    # returned mail
    "kind": "failure", "hostname": "mail.example.jp", "received_from": "localhost [127.0.0.1]",
    "arrival": "Thu, 03 Dec 2026 04:26:25 GMT",
    "arrived_at": dt.datetime(2026, 12, 3, 4, 26, 25),
    "recipients_failed": None, "transcript": ["... while talking to mx.example.net.:",
                                              ">>> RCPT TO:<taro@example.net>", f"<<< {REMOTE}",
                                              "<taro@example.net>... Deferred: 451 try later"],
    "expired": True, "warn_after": format_duration(4 * 3600),
    "give_up": format_duration(5 * 86400), "give_up_local": format_duration(5 * 86400, "ja"),
    "warn_after_local": format_duration(4 * 3600, "ja"),
}
DSN_RECIPIENTS = [{"rcpt": "taro@example.net", "reason": REMOTE}]
DATA = [REMOTE, ERROR, SUBJECT, *SAMPLE["transcript"][1:3], "localhost [127.0.0.1]", "451 try later",
        "nihon", '"abuse"', SAMPLE["password"], SAMPLE["option"], SAMPLE["string"]]  # the list's name; RFC 5965's feedback type, quoted

# The first line (the Subject) of these notices is read by programs and people's filters.
SUBJECT_KEPT = {"post_held.txt"}


def mail_templates() -> list[str]:
    return sorted(str(p.relative_to(ROOT / "en")) for p in (ROOT / "en").rglob("*.txt")
                  if "web" not in p.parts and p.name not in ("README.txt", "messages.txt", "words.txt"))


def variables(name: str) -> set[str]:
    env = environment()
    names: set[str] = set()
    for lang in ("ja", "en"):
        src = env.loader.get_source(env, f"{lang}/{name}")[0]  # type: ignore[union-attr]
        names |= jinja2.meta.find_undeclared_variables(env.parse(src))
    return names


def context_for(name: str) -> dict:
    ctx = {}
    for var in variables(name):
        assert var in SAMPLE, f"{name}: add a realistic sample for {{{{ {var} }}}}"
        ctx[var] = SAMPLE[var]
    if name.startswith("dsn/"):
        ctx["recipients"] = DSN_RECIPIENTS
    return ctx


@pytest.mark.parametrize("name", mail_templates())
def test_each_mail_text_has_a_japanese_version_said_in_japanese(name):
    assert (ROOT / "ja" / name).exists(), f"templates/ja/{name} is missing"
    kinds = ["failure", "warning"] if name == "dsn/subject.txt" else [None]
    for kind in kinds:
        ctx = context_for(name)
        if kind:
            ctx["kind"] = kind
        text = render(name, "ja", **ctx)
        if name == "dsn/subject.txt":
            # The hosting company's help page names these Subjects: kept word for word.
            assert text.strip() in ("Returned mail: see transcript for details",
                                    "Warning: could not send message for past 4 hours")
            continue
        if name in SUBJECT_KEPT:
            subject, _, text = text.partition("\n")
            assert subject.startswith("BOUNCE nihon@example.jp: ")
        assert_japanese(text, what=name, data=DATA)


def test_returned_mail_subjects_stay_as_the_help_page_names_them():
    def subj(kind, reason="", warn=4 * 3600):
        from listmgr.delivery import dsn
        status = {"user-unknown": "5.1.1", "host-unknown": "5.1.2"}.get(reason, "5.0.0")
        failed = dsn.Failed("taro@example.net", status if kind == "failure" else "4.4.1",
                            REMOTE if reason == "user-unknown" else "451 try later")
        return dsn.subject(kind, [failed], language="ja", warn_after=warn)
    assert subj("failure", "user-unknown") == "Returned mail: User unknown"
    assert subj("warning") == "Warning: could not send message for past 4 hours"


# ----------------------------------------------------------------------- short replies

MACRO_ARGS = {"reason": ("expired", "used", "unknown")}
# Majordomo's machine-read Subjects and markers, kept in every language.
MACHINE = {"end_of_commands": "END OF COMMANDS", "subject_approve": "APPROVE nihon",
           "subject_subscribed": "SUBSCRIBE nihon taro@example.net",
           "subject_unsubscribed": "UNSUBSCRIBE nihon taro@example.net",
           "subject_newlist": "NEWLIST nihon", "subject_abort": "MAJORDOMO ABORT"}


# Table rows: only the values they line up.
ROWS = {"index_row", "which_row", "lists_row"}


def _macros(lang: str) -> dict:
    from listmgr.commands.texts import _module
    mod = _module(lang)
    return {k: getattr(mod, k) for k in dir(mod) if not k.startswith("_")
            and isinstance(getattr(mod, k), jinja2.runtime.Macro)}


def test_every_short_reply_has_a_japanese_version():
    assert set(_macros("en")) <= set(_macros("ja"))


@pytest.mark.parametrize("name", sorted(_macros("en")))
def test_each_short_reply_is_said_in_japanese(name):
    macro = _macros("ja")[name]
    for variant in MACRO_ARGS.get("reason", ()) if "reason" in macro.arguments else [None]:
        kw = {}
        for arg in macro.arguments:
            kw[arg] = variant if arg == "reason" else SAMPLE[arg]
        text = str(macro(**kw))
        if name in MACHINE:
            assert MACHINE[name] in text
            continue
        assert_japanese(text, what=name, data=DATA, some_japanese=name not in ROWS)


# ----------------------------------------------------------------- reasons from the code

def _sample_of(node: ast.expr) -> str | None:
    """The text a reason expression yields, with realistic values for its parts."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                out.append(str(part.value))
                continue
            src = ast.unparse(part.value)  # type: ignore[attr-defined]
            if "poster" in src or "member" in src or "found" in src:
                out.append("taro@example.net")
            elif "len(" in src or "MAX" in src or "limit" in src:
                out.append("40000")
            elif "Error" in src or "exc" in src:
                out.append("ValueError")
            elif "pattern" in src:
                out.append("^subscribe")
            elif src in ("n", "i", "line") or "lineno" in src:
                out.append("1")
            else:
                out.append("help")
        return "".join(out)
    if isinstance(node, ast.BinOp):  # "..." "..." split over lines, or a + b
        left, right = _sample_of(node.left), _sample_of(node.right)
        return None if left is None or right is None else left + right
    return None


def _reasons_in(path: Path, call: str, position: int, keyword: str = "") -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
        if name != call:
            continue
        exprs = [k.value for k in node.keywords if k.arg == keyword] if keyword else \
            node.args[position:position + 1]
        for e in exprs:
            if isinstance(e, ast.IfExp):
                found += [s for s in (_sample_of(e.body), _sample_of(e.orelse)) if s]
            elif (s := _sample_of(e)) is not None:
                found.append(s)
    return found


def held_reasons() -> list[str]:
    return _reasons_in(REPO / "listmgr/posting/rules.py", "hit", 1)


def test_the_reasons_are_found_in_the_code():
    assert "Approval required: the list is moderated" in held_reasons()
    assert "Non-member submission from [taro@example.net]" in held_reasons()
    assert len(held_reasons()) >= 10
    assert "a feedback report that names no member" in unrecognised_reasons()


@pytest.mark.parametrize("reason", held_reasons())
def test_every_hold_or_refusal_reason_is_said_in_japanese(reason):
    for name in ("post_held.txt", "post_refused.txt"):
        ctx = context_for(name)
        ctx["reasons"] = [reason]
        text = render(name, "ja", **ctx)
        subject, _, body = text.partition("\n")
        if name == "post_held.txt":
            # Majordomo's BOUNCE Subject keeps the reason as moderators' scripts read it
            assert subject == f"BOUNCE nihon@example.jp: {reason}"
        assert_japanese(body, what=f"{name} for {reason!r}", data=DATA)


def unrecognised_reasons() -> list[str]:
    inbound = _reasons_in(REPO / "listmgr/bounces/inbound.py", "_unrecognised", 4)
    detect = _reasons_in(REPO / "listmgr/bounces/detect.py", "Verdict", 0, "reason")
    return [r for r in inbound + detect if r != "help" and r != "auto-reply"]


@pytest.mark.parametrize("reason", unrecognised_reasons())
def test_every_unrecognised_bounce_reason_is_said_in_japanese(reason):
    text = render("bounces/owner_unrecognised.txt", "ja", **{**SAMPLE, "reason": reason})
    assert_japanese(text.partition("\n")[2], what=reason, data=DATA)


def test_the_feedback_notice_from_the_null_sender():
    text = render("bounces/owner_feedback.txt", "ja", **{**SAMPLE, "reporter": ""})
    assert_japanese(text, what="feedback", data=DATA)


def test_english_left_finds_english():
    assert english_left("7 days 以内に") == ["days"]
    assert english_left("... is not a complete Internet address") != []
    assert english_left("accept 0123456789abcdef0123456789abcdef を taro@example.net") == []
    assert re.search("[ぁ-ん]", render("commands/confirm.txt", "ja", **context_for(
        "commands/confirm.txt")))


# ----------------------------------------------------------------------------- digests

def _posts():
    import email
    import email.policy
    raw = [b"From: taro@example.net\r\nSubject: =?utf-8?b?5Lya6K2w?=\r\n\r\nhello\r\n",
           b"From: hanako@example.net\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n"]
    return [email.message_from_bytes(r, policy=email.policy.default) for r in raw]


@pytest.mark.parametrize("charset", ["", "iso-2022-jp"])
def test_a_japanese_mime_digest_says_its_own_words_in_japanese(charset):
    from listmgr.posting.digest import build_mime
    ml = SimpleNamespace(name="nihon", digest_name="", reply_to="", precedence="bulk")
    msg = build_mime(ml, _posts(), volume=2, issue=7, domain="example.jp", language="ja",
                     charset=charset)
    ours = [p for p in msg.walk() if p.get_content_type() == "text/plain"
            and not any(p is q for q in _inner_parts(msg))]
    assert len(ours) == 2  # the contents and the end
    for part in ours:
        text = part.get_content()
        assert_japanese(text, what="digest", data=DATA + ["taro@example.net",
                                                         "hanako@example.net"])
        if charset:
            assert part.get_content_charset() == "iso-2022-jp"
    assert "（件名なし）" in ours[0].get_content() and "会議" in ours[0].get_content()


def _inner_parts(msg):
    out = []
    for p in msg.walk():
        if p.get_content_type() == "message/rfc822":
            out += list(p.get_payload()[0].walk())
    return out


def test_an_rfc1153_digest_keeps_its_format_lines_and_says_the_rest_in_japanese():
    from listmgr.posting.digest import build_rfc1153
    ml = SimpleNamespace(name="nihon", digest_name="", reply_to="", precedence="bulk")
    msg = build_rfc1153(ml, _posts(), volume=2, issue=7, domain="example.jp", language="ja",
                        charset="iso-2022-jp")
    text = msg.get_content()
    assert msg.get_content_charset() == "iso-2022-jp"
    assert "Today's Topics:" in text and "End of nihon Digest V2 Issue #7" in text
    assert "[このメッセージにはテキストの部分がありません。]" in text and "（件名なし）" in text


# ------------------------------------------------------------------- newconfig's findings

def config_findings() -> list[str]:
    found = []
    for path in ("listmgr/majordomo/configmap.py", "listmgr/majordomo/configfile.py"):
        for node in ast.walk(ast.parse((REPO / path).read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "append" \
                    and isinstance(node.func.value, ast.Attribute) \
                    and node.func.value.attr in ("errors", "notes"):
                text = _sample_of(node.args[0])
                if text and not text.startswith("ValueError"):  # `{exc} at line`: below
                    found.append(text)
    details = _reasons_in(REPO / "listmgr/listconfig.py", "ValueError", 0)
    found += [f"bad value 'sideways' for 'subscribe_policy': {d} at line 3" for d in details]
    return found


def test_newconfig_findings_are_found_in_the_code():
    findings = config_findings()
    assert any(f.startswith("unknown key |") for f in findings)
    assert "bad value 'sideways' for 'subscribe_policy': expected yes or no at line 3" \
        in findings


@pytest.mark.parametrize("finding", config_findings())
def test_every_newconfig_finding_is_said_in_japanese(finding):
    from listmgr.commands.texts import localise
    said = localise(finding, "ja", "config_errors")
    # what Majordomo's keywords mean here (`no_effect`) is documentation quoted as it is
    said = said.split("ここでは効果がありません: ")[0]
    assert_japanese(said, what=finding,  # keywords are the file's words
                    data=("sideways", "subscribe_policy", "nihon.new.config", "moderate",
                          "yes", "no", "en", "ja", "90s", "30m", "4h", "5d", "5MB", "1s", "365d"))


def list_errors() -> list[str]:
    found = _reasons_in(REPO / "listmgr/store/lists.py", "ListError", 0)
    found = [f for f in found if f != "help"]  # str(exc): a setting's finding, below
    for why in _reasons_in(REPO / "listmgr/mail/addresses.py", "AddressError", 0):
        found.append(f"bad value 'Bob <bob>' for 'owners': {why}")
    return found


@pytest.mark.parametrize("why", list_errors())
def test_every_reason_a_list_is_not_created_is_said_in_japanese(why):
    from listmgr.commands.texts import localise
    assert_japanese(localise(why, "ja", "list_errors"), what=why, data=("Bob <bob>", "bob"))
