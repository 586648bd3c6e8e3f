"""What a message to a list's bounce address is: pure, no I/O.

- a feedback report (RFC 5965 ARF: multipart/report; report-type=feedback-report),
- a bounce: delivery status notifications (RFC 3464) and the many vendor formats
  flufl.bounce knows (`all_failures`: permanent and temporary failures),
- an auto-reply (vacation, out of office: RFC 3834 and the usual vendor markers), or other
  automatic mail that is not a bounce (listmgr.mail.automatic: robots, Precedence bulk),
- or mail from a person (forwarded to the owners, as mail to the owners always was).

Bounces are read only up to MAX_BYTES; a larger message is never parsed for addresses.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message

from flufl.bounce import all_failures

from listmgr.mail import automatic, verp

MAX_BYTES = 1024 * 1024   # larger "bounces" are not analysed (they go to the owners)
MAX_ADDRESSES = 100       # addresses taken from one bounce

FEEDBACK, BOUNCE, AUTO_REPLY, PERSON, TOO_BIG = (
    "feedback", "bounce", "auto-reply", "person", "too-big")

_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|"
    r"vacation|away from|abwesen|absence|r[ée]ponse automatique|自動応答|自動返信|不在)",
    re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"(undeliver|returned mail|delivery (status notification|failure|has failed)|"
    r"failure notice|mail delivery failed|non[- ]?delivery|nondeliverable|"
    r"delivery problem|could not be delivered)", re.IGNORECASE)
_BOUNCE_SENDERS = ("mailer-daemon", "postmaster", "mail-daemon", "mailer_daemon")


@dataclass
class Verdict:
    kind: str                                   # FEEDBACK | BOUNCE | AUTO_REPLY | PERSON | TOO_BIG
    permanent: list[str] = field(default_factory=list)
    temporary: list[str] = field(default_factory=list)
    looks_like_bounce: bool = False             # by sender, type or subject, found or not
    reason: str = ""                            # one line, for logs and owners
    feedback_type: str = ""
    complainants: list[str] = field(default_factory=list)  # feedback: who complained
    feedback_list: str = ""                     # feedback: the list named by the report


def _parse(data: bytes) -> Message:
    return email.message_from_bytes(data)  # compat32: what flufl.bounce expects


def _header(msg: Message, name: str) -> str:
    v = msg.get(name)
    if v is None:
        return ""
    try:
        return str(make_header(decode_header(str(v)))).strip()
    except (UnicodeError, LookupError, ValueError):  # a bad RFC 2047 word: as it came
        return str(v).strip()


def _addresses(found) -> list[str]:
    out: list[str] = []
    for raw in found:
        a = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        a = a.strip().strip("<>").strip()
        if "@" in a and len(a) <= 320 and a not in out:
            out.append(a)
        if len(out) >= MAX_ADDRESSES:
            break
    return sorted(out)


def looks_like_bounce(mail_from: str, msg: Message) -> bool:
    local = mail_from.rpartition("@")[0].lower()
    frm = _header(msg, "from").lower()
    if local in _BOUNCE_SENDERS or any(f"{s}@" in frm for s in _BOUNCE_SENDERS):
        return True
    if msg.get_content_type() == "multipart/report":
        return True
    return bool(_BOUNCE_SUBJECT.search(_header(msg, "subject")))


def is_auto_reply(msg: Message) -> bool:
    """RFC 3834 auto-replies and the vendors' own markers (vacation, out of office)."""
    auto = _header(msg, "auto-submitted").lower()
    if auto.startswith("auto-replied"):
        return True
    if _header(msg, "precedence").lower() == "auto_reply":
        return True
    if any(msg.get(h) is not None for h in ("x-autoreply", "x-autorespond", "x-vacation")):
        return True
    if _header(msg, "x-auto-response-suppress") and _AUTO_SUBJECT.search(
            _header(msg, "subject")):
        return True
    return bool(_AUTO_SUBJECT.search(_header(msg, "subject")))


_DIAG = re.compile(r"^diagnostic-code:\s*(?:[a-z0-9-]+\s*;\s*)?(.+(?:\n[ \t].+)*)",
                   re.IGNORECASE | re.MULTILINE)


def _diagnostic(msg: Message) -> str:
    """The first Diagnostic-Code of a DSN (RFC 3464), on one line."""
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            text = "\n".join(f"{k}: {v}" for p in payload if isinstance(p, Message)
                             for k, v in p.items())
        else:
            text = payload if isinstance(payload, str) else ""
        m = _DIAG.search(text[:20000])
        if m:
            return " ".join(m.group(1).split())[:300]
    return ""


def _feedback(msg: Message, domain: str) -> Verdict:
    ftype, complainants, list_name = "", [], ""
    original: Message | None = None
    for part in msg.walk():
        ct = part.get_content_type()
        if ct == "message/feedback-report":
            fields = _report_fields(part)
            ftype = fields.get("feedback-type", "").lower()
            mfrom = fields.get("original-mail-from", "").strip("<> ")
            hit = _verp_of(mfrom, domain)
            if hit:
                list_name = hit[0]
                complainants.append(hit[1])
            for key in ("original-rcpt-to", "removal-recipient"):
                a = fields.get(key, "").strip("<> ")
                if "@" in a:
                    complainants.append(a)
        elif ct in ("message/rfc822", "text/rfc822-headers") and original is None:
            original = _inner(part)
    if original is not None:
        hit = _verp_of(_header(original, "return-path").strip("<> "), domain)
        if hit:
            list_name = list_name or hit[0]
            complainants.append(hit[1])
        m = re.search(r"<([^<>.@\s]+)\.[^<>\s]+>", _header(original, "list-id"))
        if m and not list_name:
            list_name = m.group(1).lower()
    uniq = list(dict.fromkeys(a for a in complainants if "@" in a))[:MAX_ADDRESSES]
    return Verdict(FEEDBACK, feedback_type=ftype or "abuse", complainants=uniq,
                   feedback_list=list_name, reason=f"feedback report ({ftype or 'abuse'})")


def _report_fields(part: Message) -> dict[str, str]:
    """The fields of a message/feedback-report part (one header block)."""
    payload = part.get_payload()
    if isinstance(payload, list):  # parsed as a message: its headers are the fields
        items = [(k, str(v)) for p in payload for k, v in p.items()]
    else:
        text = payload if isinstance(payload, str) else ""
        items = []
        for line in text.splitlines()[:200]:
            k, sep, v = line.partition(":")
            if sep and k.strip() and not k.startswith((" ", "\t")):
                items.append((k, v))
    out: dict[str, str] = {}
    for k, v in items:
        out.setdefault(k.strip().lower(), v.strip())
    return out


def _inner(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):
        return email.message_from_string(payload)
    return None


def _verp_of(address: str, domain: str) -> tuple[str, str] | None:
    local, _, dom = address.rpartition("@")
    if dom.lower() != domain.lower():
        return None
    return verp.decode(local)


def classify(mail_from: str, data: bytes, domain: str) -> Verdict:
    """What a message to a bounce address is (see the module docstring)."""
    if len(data) > MAX_BYTES:
        return Verdict(TOO_BIG, looks_like_bounce=True,
                       reason=f"message of {len(data)} bytes is larger than the "
                              f"{MAX_BYTES} analysed")
    msg = _parse(data)
    if msg.get_content_type() == "multipart/report" and \
            msg.get_param("report-type", "").lower() == "feedback-report":
        return _feedback(msg, domain)
    try:
        temporary, permanent = all_failures(msg)
    except Exception as exc:  # a detector tripped on malformed input: nothing found
        temporary, permanent = frozenset(), frozenset()
        reason = f"the bounce could not be read ({type(exc).__name__})"
    else:
        reason = ""
    perm, temp = _addresses(permanent), _addresses(temporary)
    temp = [a for a in temp if a not in perm]
    bouncy = looks_like_bounce(mail_from, msg)
    if perm or temp:
        return Verdict(BOUNCE, permanent=perm, temporary=temp, looks_like_bounce=True,
                       reason=_diagnostic(msg) or _header(msg, "subject")[:200]
                       or "delivery failure")
    if is_auto_reply(msg):
        return Verdict(AUTO_REPLY, reason="auto-reply")
    if bouncy:
        return Verdict(BOUNCE, looks_like_bounce=True,
                       reason=reason or "no failed address found in it")
    why = automatic.reason(mail_from, msg)
    if why:  # automatic, and not a bounce: an auto-reply by another name, or a robot
        return Verdict(AUTO_REPLY, reason=why)
    return Verdict(PERSON)
