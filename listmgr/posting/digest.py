"""Digests (Majordomo's `digest`, reference 5.6): posts collected for members in digest mode
and sent as one message, numbered by volume and issue.

A post is queued (its bytes as members receive them) when the list has digest members. A
digest goes out when the queue passes the list's size (`maxlength`, default 40000 bytes,
as Majordomo's digest used it) or `digest_maxlines`, when its oldest post is
`digest_maxdays` old (checked by the posting timer of `listmgr serve`), or on
`mkdigest`. MIME multipart/digest (RFC 2046) by default, plain RFC 1153 with
`digest_format = rfc1153`. `digest_rm_fronter` / `digest_rm_footer` name the list whose
fronter / footer is cut from each post first. Each digest is archived as
`archive/LIST/digest/vVV.nNNN`, served by `get LIST digest/vVV.nNNN`.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.utils import format_datetime, make_msgid
from typing import Any, cast

from listmgr.config import japanese_charset
from listmgr.listconfig import sender_address, sender_header
from listmgr.mail.addresses import AddressError, parse_single
from listmgr.mail.compose import JIS, jis_ok
from listmgr.posting.archive import archive_dir
from listmgr.posting.decorate import expand
from listmgr.render import environment
from listmgr.store import digests as repo
from listmgr.store import hooks
from listmgr.store.models import utcnow
from listmgr.store.outbound import enqueue
from listmgr.store.settings import ListSettings, read_list, set_digest_issue

log = logging.getLogger(__name__)

DEFAULT_MAXLENGTH = 40000  # Majordomo's maxlength default, its digest size trigger
MAX_ENTRIES = 1000  # one digest never holds more posts than this; the rest wait


@dataclass(frozen=True)
class Sent:
    volume: int
    issue: int
    posts: int
    recipients: int
    queue_id: str


has_digest_members = repo.has_digest_members


def queue_post(app, s, mlist: ListSettings, data: bytes) -> Sent | None:
    """Keep a distributed post for the digest; send the digest if that passes a trigger."""
    text = data.replace(b"\r\n", b"\n")
    repo.add_entry(s, mlist, data, lines=text.count(b"\n"), size=len(text))
    if trigger(s, mlist):
        return send(app, s, mlist)
    return None


def trigger(s, mlist: ListSettings, now: dt.datetime | None = None) -> str:
    """Which trigger the queue has passed ("" for none): size, lines or days."""
    queue = repo.queue_of(s, mlist)
    count, size, lines, oldest = queue.count, queue.size, queue.lines, queue.oldest
    if not count:
        return ""
    if size > (mlist.maxlength or DEFAULT_MAXLENGTH):
        return "size"
    if mlist.digest_maxlines and lines > mlist.digest_maxlines:
        return "lines"
    now = now or utcnow()
    if mlist.digest_maxdays and oldest is not None \
            and oldest <= now - dt.timedelta(days=mlist.digest_maxdays):
        return "days"
    if count >= MAX_ENTRIES:
        return "size"
    return ""


def _recipients(s, mlist: ListSettings) -> list[str]:
    out = []
    for addr in repo.digest_addresses(s, mlist):
        try:
            out.append(parse_single(addr))
        except AddressError:
            log.warning("digest member %r does not parse: left out", addr)
    return out


def send(app, s, mlist: ListSettings) -> Sent | None:
    """Build and queue the next digest from everything queued; None if nothing is."""
    entries = repo.entries(s, mlist, MAX_ENTRIES)
    if not entries:
        return None
    posts = [email.message_from_bytes(data, policy=email.policy.default)
             for _, data in entries]
    posts = [_strip_decoration(s, mlist, p) for p in posts]
    volume, issue = mlist.digest_volume, mlist.digest_issue
    domain = app.config.domain
    if mlist.digest_format == "rfc1153":
        msg = build_rfc1153(mlist, posts, volume=volume, issue=issue, domain=domain,
                            language=mlist.language or app.config.language,
                            charset=japanese_charset(app.config))
    else:
        msg = build_mime(mlist, posts, volume=volume, issue=issue, domain=domain,
                         language=mlist.language or app.config.language,
                         charset=japanese_charset(app.config))
    data = msg.as_bytes(policy=email.policy.SMTP)
    rcpts = _recipients(s, mlist)
    envelope = sender_address(mlist, domain)
    out = enqueue(s, app.spool, mail_from=envelope, recipients=rcpts, data=data,
                  origin=f"digest:{mlist.name}")
    repo.remove_entries(s, [i for i, _ in entries])
    set_digest_issue(s, mlist, issue + 1)
    name = f"v{volume:02d}.n{issue:03d}"
    path = archive_dir(app.config, mlist.name) / "digest" / name
    hooks.after_commit(s, lambda: _archive(path, data))
    log.info("%s list=%s digest V%d #%d posts=%d recipients=%d", out.queue_id, mlist.name,
             volume, issue, len(entries), len(rcpts))
    return Sent(volume, issue, len(entries), len(rcpts), out.queue_id)


def _archive(path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.replace(b"\r\n", b"\n"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- content

def _strip_decoration(s, mlist: ListSettings, post: EmailMessage) -> EmailMessage:
    """Cut the fronter / footer of the lists digest_rm_fronter / digest_rm_footer name."""
    cuts = []
    for key, attr in (("digest_rm_fronter", "message_fronter"),
                      ("digest_rm_footer", "message_footer")):
        name = getattr(mlist, key)
        other = mlist if name.lower() == mlist.name else (read_list(s, name) if name else None)
        if other is not None and getattr(other, attr).strip():
            sender = str(post.get("From", ""))
            cuts.append((attr, expand(getattr(other, attr), list_name=other.name,
                                      sender=sender).strip()))
    if not cuts:
        return post
    for part in list(post.walk()):
        if part.get_content_type() != "text/plain" or part.is_multipart():
            continue
        try:
            text = part.get_content()
        except Exception:
            continue
        new = text.replace("\r\n", "\n")
        for attr, cut in cuts:
            if attr == "message_footer" and new.rstrip().endswith(cut):
                new = new.rstrip()[: -len(cut)].rstrip("\n") + "\n"
            if attr == "message_fronter" and new.lstrip().startswith(cut):
                new = new.lstrip()[len(cut):].lstrip("\n")
        if new != text.replace("\r\n", "\n"):
            if new.strip():
                part.set_content(new, subtype="plain", charset="utf-8")
            elif part is not post:
                part.set_content("", subtype="plain")
    return post


def words(language: str) -> Any:
    """The digest's fixed words in `language` (templates/<language>/digest/words.txt)."""
    return environment().get_or_select_template(
        [f"{language}/digest/words.txt", "en/digest/words.txt"]).module


def _text(post: Message, language: str = "en") -> str:
    body = post.get_body(preferencelist=("plain",)) if isinstance(post, EmailMessage) else None
    if body is None:
        return str(words(language).no_plain_text()) + "\n"
    try:
        return body.get_content().replace("\r\n", "\n")
    except Exception:
        return (cast("bytes | None", body.get_payload(decode=True)) or b"").decode("latin-1")


def _set_text(part: EmailMessage, text: str, charset: str, *, utf8: bool = False) -> None:
    """As email chooses (`utf8`: UTF-8 always), or ISO-2022-JP (7bit) when the site asks
    for it for Japanese text."""
    if charset == JIS and not text.isascii() and jis_ok(text):
        part.set_content(text, charset=JIS, cte="7bit")
    elif utf8:
        part.set_content(text, charset="utf-8")
    else:
        part.set_content(text)


def _title(mlist: ListSettings) -> str:
    return mlist.digest_name or mlist.name


def _headers(msg: EmailMessage, mlist: ListSettings, *, volume: int, issue: int,
             domain: str) -> None:
    title = _title(mlist)
    msg["From"] = f"{title} <{sender_header(mlist, domain)}>"
    msg["To"] = f"{mlist.name}@{domain}"
    msg["Subject"] = f"{title} Digest V{volume} #{issue}"
    msg["Date"] = format_datetime(utcnow().replace(tzinfo=dt.timezone.utc))
    msg["Message-ID"] = make_msgid(domain=domain)
    reply_to = mlist.reply_to if mlist.reply_to and mlist.reply_to != "$SENDER" else ""
    if reply_to and "@" not in reply_to:
        reply_to = f"{reply_to}@{domain}"
    msg["Reply-To"] = reply_to or f"{mlist.name}@{domain}"
    msg["Sender"] = sender_header(mlist, domain)
    if mlist.precedence:
        msg["Precedence"] = mlist.precedence
    msg["List-Id"] = f"<{mlist.name}.{domain}>"
    msg["X-Loop"] = f"{mlist.name}@{domain}"


def _subject(p: Message, language: str) -> str:
    return str(p.get("Subject") or "").strip() or str(words(language).no_subject())


def _topics(posts: Sequence[Message], language: str = "en") -> list[str]:
    return [f"  {n}. {_subject(p, language)} "
            f"({str(p.get('From', '')).strip()})" for n, p in enumerate(posts, 1)]


def build_mime(mlist: ListSettings, posts: Sequence[Message], *, volume: int, issue: int,
               domain: str, language: str = "en", charset: str = "") -> EmailMessage:
    """multipart/mixed: the contents, then a multipart/digest of message/rfc822 parts."""
    msg = EmailMessage(policy=email.policy.SMTP)
    _headers(msg, mlist, volume=volume, issue=issue, domain=domain)
    say = words(language)
    toc = str(say.contents(_title(mlist), volume, issue)) \
        + "\n".join(_topics(posts, language)) + "\n"
    _set_text(msg, toc, charset)
    msg.make_mixed()
    dig = EmailMessage(policy=email.policy.SMTP)
    dig.set_type("multipart/digest")
    for p in posts:
        part = EmailMessage(policy=email.policy.SMTP)
        part.set_content(p)  # message/rfc822
        del part["MIME-Version"]
        dig.attach(part)
    del dig["MIME-Version"]
    msg.attach(dig)
    footer = str(say.footer(_title(mlist), volume, issue)) + "\n"
    end = EmailMessage(policy=email.policy.SMTP)
    _set_text(end, footer, charset)
    del end["MIME-Version"]
    msg.attach(end)
    return msg


def build_rfc1153(mlist: ListSettings, posts: Sequence[Message], *, volume: int, issue: int,
                  domain: str, language: str = "en", charset: str = "") -> EmailMessage:
    """RFC 1153 plain text: header block, topics, 70-dash rule, messages between 30-dash
    rules, and the end line underlined with stars."""
    title = _title(mlist)
    date = utcnow().strftime("%a, %d %b %Y")
    head = f"{title} Digest".ljust(36) + f"{date}".ljust(22) + \
        f"Volume {volume:02d} : Number {issue:03d}"
    out = [head, "", "Today's Topics:", ""]
    out += [f"  {_subject(p, language)}" for p in posts]
    out += ["", "-" * 70, ""]
    for p in posts:
        for name in ("Date", "From", "Subject"):
            if p.get(name):
                out.append(f"{name}: {str(p.get(name)).strip()}")
        out.append("")
        for line in _text(p, language).rstrip("\n").split("\n"):
            if line.startswith("-"):
                line = "- " + line  # RFC 1153: a line starting "-" is escaped
            out.append(line)
        out += ["", "-" * 30, ""]
    end = f"End of {title} Digest V{volume} Issue #{issue}"
    out += [end, "*" * len(end), ""]
    msg = EmailMessage(policy=email.policy.SMTP)
    _headers(msg, mlist, volume=volume, issue=issue, domain=domain)
    _set_text(msg, "\n".join(out), charset, utf8=True)
    return msg


# --------------------------------------------------------------------------- age trigger

def send_due(app) -> int:
    """Send every list's digest whose oldest post is digest_maxdays old; how many went."""
    sent = 0
    with app.store.session() as s:
        ids = repo.lists_waiting(s)
    for list_id in ids:
        with app.store.session() as s:
            mlist = repo.list_by_id(s, list_id)
            if mlist is not None and trigger(s, mlist) and send(app, s, mlist):
                sent += 1
    return sent
