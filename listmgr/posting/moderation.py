"""Held posts: stored with their reasons, decided by token, by Approved: resend or by CLI.

A held post is a row in `held_posts` and a copy of the post (Approved: removed) in
spool/held. The moderator (else the owners) gets a notice, Subject `BOUNCE LIST@domain:
reasons` on one line as in Majordomo (reference 5.4), with the post inline after the text
(so a moderator's old `approve` script still reads it) and a single-use token of
kind "held-post" ({"held_id": N}) for `accept TOKEN` / `reject TOKEN [reason]` sent to
majordomo@. `decide()` is the one place a decision is carried out.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

from listmgr import tokens
from listmgr.mail import automatic
from listmgr.mail.addresses import address_list
from listmgr.posting import notices, scrub
from listmgr.posting.message import RawMessage
from listmgr.store import held as held_store
from listmgr.store import hooks
from listmgr.store.db import Session
from listmgr.store.lists import owners_of
from listmgr.store.models import HeldPost, utcnow
from listmgr.store.settings import ListSettings, read_list_by_id

log = logging.getLogger(__name__)

TOKEN_KIND = "held-post"


class DecisionError(Exception):
    """The post is unknown or already decided; the message is for the person deciding."""


@dataclass(frozen=True)
class HeldInfo:
    id: int
    list_name: str
    mail_from: str
    sender: str
    subject: str
    reasons: list[str]
    state: str
    held_at: dt.datetime
    expires_at: dt.datetime


def moderators(mlist: ListSettings) -> list[str]:
    return address_list(mlist.moderator) or owners_of(mlist)


def hold(app, s: Session, mlist: ListSettings, msg: RawMessage, *, mail_from: str,
         reasons: list[str]) -> HeldPost:
    """Keep the post for a decision and tell the moderator; returns the stored row."""
    data = msg.to_bytes()
    now = utcnow()
    path = app.spool.write("held", data)
    held = HeldPost(list_id=mlist.id, spool_path=path, mail_from=mail_from,
                    sender=(msg.addresses("from") or [mail_from])[0],
                    subject=msg.get("subject")[:1000], reasons=json.dumps(reasons),
                    state="held", held_at=now,
                    expires_at=now + dt.timedelta(seconds=mlist.hold_expiry))
    s.add(held)
    s.flush()
    issued = tokens.issue(s, TOKEN_KIND, lifetime=mlist.hold_expiry, list_name=mlist.name,
                          payload={"held_id": held.id})
    domain = app.config.domain
    notices.send(app, s, mlist=mlist, to=moderators(mlist), template="post_held.txt",
                 mail_from=f"owner-{mlist.name}@{domain}", inline=data, auto=False,
                 held=held, reasons=reasons, token=issued.secret,
                 subject=held.subject, sender=held.sender,
                 expires=held.expires_at.strftime("%Y-%m-%d %H:%M UTC"))
    log.info("list=%s held=%d from=<%s> reasons=%s", mlist.name, held.id, mail_from,
             "; ".join(reasons))
    return held


def info(s: Session, held: HeldPost) -> HeldInfo:
    name = held_store.list_name_of(s, held)
    return HeldInfo(held.id, name or "", held.mail_from, held.sender, held.subject,
                    json.loads(held.reasons or "[]"), held.state, held.held_at,
                    held.expires_at)


def pending(s: Session, list_name: str | None = None) -> list[HeldInfo]:
    return [info(s, h) for h in held_store.pending(s, list_name)]


def _close(app, s: Session, held: HeldPost, state: str, note: str) -> None:
    held.state = state
    held.decided_at = utcnow()
    held.decision_note = note[:2000]
    path = held.spool_path
    hooks.after_commit(s, lambda: app.spool.remove(path))


def decide(app, s: Session, held_id: int, *, approve: bool, reason: str = "",
           by: str = "") -> str:
    """Approve (distribute now) or reject (tell the poster) held post `held_id`.

    Returns a one-line result; raises DecisionError when the post is unknown or already
    decided.
    """
    from listmgr.posting.fanout import distribute
    held = s.get(HeldPost, held_id, with_for_update=True)
    if held is None:
        raise DecisionError(f"There is no held post {held_id}.")
    if held.state != "held":
        raise DecisionError(f"Held post {held_id} was already {held.state}.")
    mlist = read_list_by_id(s, held.list_id)
    if mlist is None:  # the row cascades with its list; kept for a clear error
        raise DecisionError(f"The list of held post {held_id} is gone.")
    who = f" by {by}" if by else ""
    if approve:
        try:
            data = app.spool.read(held.spool_path)
        except FileNotFoundError:
            raise DecisionError(f"Held post {held_id} is missing from the spool.") from None
        try:
            data = scrub.scrub(data)  # an Approved: line the chain could not take out
        except scrub.ApprovalLeak as exc:
            raise DecisionError(f"Held post {held_id} was not sent: {exc}. Reject it and ask "
                                f"for it again without the password.") from None
        done = distribute(app, s, mlist, RawMessage.parse(data))
        _close(app, s, held, "approved", f"approved{who}" + (f": {reason}" if reason else ""))
        log.info("list=%s held=%d approved%s queue_id=%s", mlist.name, held_id, who,
                 done.queue_id)
        return (f"Post {held_id} to {mlist.name} approved and sent to "
                f"{done.recipients} member{'s' if done.recipients != 1 else ''}.")
    _close(app, s, held, "rejected", f"rejected{who}" + (f": {reason}" if reason else ""))
    if not automatic.is_automatic(held.mail_from, None):
        notices.send(app, s, mlist=mlist, to=[held.mail_from], template="post_rejected.txt",
                     mail_from="", subject=held.subject, reason=reason, limit=True)
    log.info("list=%s held=%d rejected%s", mlist.name, held_id, who)
    return f"Post {held_id} to {mlist.name} rejected."


def settle_resent(app, s: Session, mlist: ListSettings, msg: RawMessage, by: str) -> list[int]:
    """An owner resent a held post with Approved:: mark the held copy approved too.

    The copies are matched by Message-ID, so the poster is not later told it expired.
    """
    mid = msg.get("message-id").strip()
    if not mid:
        return []
    done = []
    for held in held_store.pending_of_list(s, mlist.id):
        try:
            copy = RawMessage.parse(app.spool.read(held.spool_path)[:65536])
        except FileNotFoundError:
            continue
        if copy.get("message-id").strip() == mid:
            _close(app, s, held, "approved", f"approved by resend from {by}")
            done.append(held.id)
    return done


def expire_due(app, *, now: dt.datetime | None = None, limit: int = 100) -> int:
    """Expire held posts past their list's hold_expiry, telling each poster; returns count."""
    now = now or utcnow()
    n = 0
    with app.store.session() as s:
        for held in held_store.due_to_expire(s, now, limit):
            mlist = read_list_by_id(s, held.list_id)
            assert mlist is not None  # held posts are removed with their list
            _close(app, s, held, "expired", "expired")
            if not automatic.is_automatic(held.mail_from, None):
                notices.send(app, s, mlist=mlist, to=[held.mail_from],
                             template="post_expired.txt", mail_from="", limit=True,
                             subject=held.subject,
                             days=max(1, round(mlist.hold_expiry / 86400)))
            log.info("list=%s held=%d expired", mlist.name, held.id)
            n += 1
    return n


def sweep_orphans(app, *, min_age: float = 3600.0) -> int:
    """Remove held-post copies in spool/held that no pending held post refers to.

    They are left behind when a list with held posts is removed (`rmlist` deletes the rows
    in its transaction; the files can only go once that has committed). Files younger than
    `min_age` are kept, so a post being held right now is never touched.
    """
    import time
    folder = app.spool.root / "spool" / "held"
    if not folder.is_dir():
        return 0
    with app.store.session() as s:
        live = held_store.pending_paths(s)
    cutoff = time.time() - min_age
    removed = 0
    for f in folder.iterdir():
        rel = str(f.relative_to(app.spool.root))
        if rel in live or not f.is_file() or f.stat().st_mtime > cutoff:
            continue
        app.spool.remove(rel)
        removed += 1
    if removed:
        log.info("removed %d held-post copies of removed lists", removed)
    return removed
