"""/u/TOKEN: one-click unsubscribe (RFC 8058).

A POST with `List-Unsubscribe=One-Click` removes the member at once: no login, no cookie, no
CSRF token, no confirmation step (the token is the proof), and answers 200 with a short page.
A GET only shows a page with a button (mail scanners follow links; they must not
unsubscribe anyone). The token names a member row and is checked with listmgr.unsubscribe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from listmgr import unsubscribe as tokens
from listmgr.commands import texts
from listmgr.commands.guard import x_loop_value
from listmgr.config import japanese_charset
from listmgr.mail.compose import new_message, to_bytes
from listmgr.store import lists as repo
from listmgr.store.models import MailingList, Member
from listmgr.store.outbound import enqueue
from listmgr.web import pages
from listmgr.web.security import BodyTooLarge

log = logging.getLogger("listmgr.web")


def routes() -> list[Route]:
    return [Route("/u/{token}", one_click, methods=["GET", "POST"])]


@dataclass(frozen=True)
class Found:
    list_name: str
    address: str


def _member(s, secret: bytes, tok: str) -> tuple[Member, MailingList] | None:
    member_id = tokens.member_id_of(tok)
    if member_id is None:
        return None
    member = s.get(Member, member_id)
    if member is None:
        return None
    mlist = s.get(MailingList, member.list_id)
    if mlist is None or not tokens.verify(secret, tok, mlist.name, member.key):
        return None
    return member, mlist


def lookup(s, secret: bytes, tok: str) -> Found | None:
    found = _member(s, secret, tok)
    return Found(found[1].name, found[0].address) if found else None


def notify_owners(app, s, mlist: MailingList, address: str) -> None:
    """The owners' UNSUBSCRIBE notice, as the mail command sends it (`announcements`)."""
    owners = repo.owners_of(mlist)
    if not mlist.announcements or not owners:
        return
    domain = app.config.domain
    lang = mlist.language or app.config.language
    msg = new_message(from_=f"majordomo@{domain}", to=owners,
                      subject=texts.msg(lang, "subject_unsubscribed", list=mlist.name,
                                        addr=address),
                      body="--\n\n" + texts.msg(lang, "notice_unsubscribed", list=mlist.name,
                                                addr=address),
                      domain=domain, headers={"X-Loop": x_loop_value(domain),
                                              "Auto-Submitted": "auto-generated"},
                      charset=japanese_charset(app.config))
    enqueue(s, app.spool, mail_from=f"majordomo-owner@{domain}", recipients=owners,
            data=to_bytes(msg), origin="web")


def unsubscribe(s, app, secret: bytes, tok: str) -> Found | None:
    found = _member(s, secret, tok)
    if found is None:
        return None
    member, mlist = found
    address = member.address
    s.delete(member)
    s.flush()
    notify_owners(app, s, mlist, address)
    log.info("web unsubscribe %s %s one-click", mlist.name, member.key)
    return Found(mlist.name, address)


async def one_click(request: Request) -> Response:
    web = request.app.state.web
    tok = request.path_params["token"]
    if request.method == "GET":
        found = await web.db(lookup, web.secret, tok)
        if found is None:
            return pages.render(request, "unsubscribe_gone.html", status=404, session=False)
        return pages.render(request, "unsubscribe.html", found=found, token=tok,
                            session=False)
    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=4096)
    except (HTTPException, BodyTooLarge):
        raise
    except Exception:
        raise HTTPException(400, "bad form") from None
    if form.get("List-Unsubscribe") != "One-Click":
        raise HTTPException(400, "not a one-click unsubscribe")
    found = await web.db(unsubscribe, web.app, web.secret, tok)
    if found is None:
        return pages.render(request, "unsubscribe_gone.html", status=404, session=False)
    web.app.notify("outbound")
    return pages.render(request, "unsubscribed.html", found=found, session=False)
