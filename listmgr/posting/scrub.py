"""Taking an `Approved:` password out of a post that is approved after a hold, and out of
the archive.

The chain holds a post whose Approved: line it could not take out (a base64 or
quoted-printable body, the first line of a MIME part, multipart/alternative). When the
owner approves it, the password must still never reach the members or the archive: each
text part is decoded, the password's line (and in HTML any `Approved: PASSWORD`) removed,
and the part encoded again as it was. If the password can still be read anywhere in the
text afterwards, the post is not sent (ApprovalLeak). The archive written before this fix
is scanned once (a marker set by migration 0006_i14_archive_scrub, done by `serve`).
"""

from __future__ import annotations

import email
import email.policy
import fcntl
import logging
import os
import re
from pathlib import Path

from listmgr.mail import mimelimits
from listmgr.store import site_flags

log = logging.getLogger(__name__)

SCRUB_MARKER = "archive_scrub_pending"  # site_settings key set by the migration
_LINE = re.compile(r"^[ \t]*Approved:[ \t]*(\S+)[ \t]*\r?$", re.I | re.M)
_HEAD_LINES = 5  # where the chain looks for the line (rules.ApprovedInPart)


class ApprovalLeak(Exception):
    """The password is in the post in a form that cannot be taken out."""


def _text_parts(msg):
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        try:
            yield part, part.get_content()
        except Exception:  # an unknown charset or broken encoding: leave that part alone
            continue


def _passwords(msg) -> set[str]:
    found = set()
    for part, text in _text_parts(msg):
        if part.get_content_subtype() != "plain":
            continue
        head = [ln for ln in text.splitlines() if ln.strip()][:_HEAD_LINES]
        for line in head:
            m = _LINE.match(line)
            if m:
                found.add(m.group(1))
    return found


def scrub(data: bytes) -> bytes:
    """`data` without any Approved: password in its text parts (unchanged when it has none);
    ApprovalLeak when one is there and cannot be removed."""
    if mimelimits.check(data):
        if b"approved:" not in data.lower():
            return data
        raise ApprovalLeak("the message is too complex to take its Approved: line out")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    passwords = _passwords(msg)
    if not passwords:
        return data
    alternation = "|".join(re.escape(p) for p in sorted(passwords, key=len, reverse=True))
    line_re = re.compile(rf"^[ \t]*Approved:[ \t]*(?:{alternation})[ \t]*\r?\n?(?:[ \t]*\r?\n)?",
                         re.I | re.M)
    inline_re = re.compile(rf"Approved:\s*(?:{alternation})", re.I)
    for part, text in list(_text_parts(msg)):
        new = line_re.sub("", text, count=1)
        new = inline_re.sub("", new)
        if new == text:
            continue
        cte = (part.get("content-transfer-encoding") or "").strip().lower() or None
        if cte in ("7bit", "8bit", "binary"):
            cte = None  # let the content manager pick what the text needs
        try:
            part.set_content(new, subtype=part.get_content_subtype(),
                             charset=part.get_content_charset() or "utf-8", cte=cte)
        except Exception:
            part.set_content(new, subtype=part.get_content_subtype(), charset="utf-8")
    for _part, text in _text_parts(msg):
        if any(p in text for p in passwords):
            raise ApprovalLeak("the Approved: password is still in the text of the post")
    return msg.as_bytes(policy=email.policy.SMTP)


# ---------------------------------------------------------------------------- the archive

_MBOX_FROM = re.compile(rb"^From ", re.M)


def _split_mbox(raw: bytes) -> list[bytes]:
    starts = [m.start() for m in _MBOX_FROM.finditer(raw)
              if m.start() == 0 or raw[m.start() - 2:m.start()] == b"\n\n"]
    if not starts:
        return [raw] if raw else []
    out = [raw[:starts[0]]] if starts[0] else []
    for a, b in zip(starts, starts[1:] + [len(raw)]):
        out.append(raw[a:b])
    return out


def _scrub_entry(entry: bytes) -> bytes:
    if not entry.startswith(b"From "):
        return entry
    first, _, body = entry.partition(b"\n")
    trailing = len(body) - len(body.rstrip(b"\n"))
    message = re.sub(rb"^>(>*From )", rb"\1", body.rstrip(b"\n"), flags=re.M)
    try:
        cleaned = scrub(message)
    except ApprovalLeak:
        # Nothing can be decoded out of it: blank every line that names a password.
        cleaned = re.sub(rb"(?im)^([ \t]*Approved:).*$", rb"\1 (removed)", message)
    if cleaned == message:
        return entry
    text = cleaned.replace(b"\r\n", b"\n")
    text = re.sub(rb"^(>*From )", rb">\1", text, flags=re.M)
    return first + b"\n" + text + b"\n" * max(trailing, 1)


def scrub_mbox(path: Path) -> bool:
    """Rewrite one archive mbox without Approved: passwords; True when it changed."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # archive.append takes the same lock
        raw = Path(path).read_bytes()
        entries = _split_mbox(raw)
        new = b"".join(_scrub_entry(e) for e in entries)
        if new == raw:
            return False
        tmp = Path(f"{path}.scrub")
        tmp.write_bytes(new)
        os.replace(tmp, path)
        return True
    finally:
        os.close(fd)


def scrub_archive(data_dir: str | os.PathLike[str]) -> int:
    """Scrub every list's archive; returns how many files changed."""
    changed = 0
    for path in sorted((Path(data_dir) / "archive").glob("*/*")):
        if path.is_file() and not path.name.endswith(".scrub"):
            try:
                if scrub_mbox(path):
                    changed += 1
            except OSError as exc:
                log.error("archive scrub: %s: %s", path, exc)
    return changed


def run_pending(app) -> int:
    """Scrub the archive once, when the migration asked for it; returns files changed."""
    with app.store.session() as s:
        if not site_flags.is_set(s, SCRUB_MARKER):
            return 0
    changed = scrub_archive(app.config.data_dir)
    with app.store.session() as s:
        site_flags.clear(s, SCRUB_MARKER)
    if changed:
        log.warning("archive scrub: removed Approved: passwords from %d file(s)", changed)
    return changed

