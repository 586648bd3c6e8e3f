"""Public list pages: /lists/ (advertised lists, as the `lists` command shows them to an
unknown requester), /lists/LIST/ (description, info, subscribe and unsubscribe forms that
mail the same confirmation as the mail commands) and the archive by month, following
`info_access`, `index_access` and `get_access` for a visitor who is nobody in particular
(the list's owners and site admins see everything)."""

from __future__ import annotations

import asyncio
import logging
import mailbox
import re
from dataclasses import dataclass
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listmgr.commands.context import Context, Request as CommandRequest
from listmgr.commands.listing import visible
from listmgr.commands.subscription import send_confirm
from listmgr.commands.guard import is_service_address
from listmgr.mail.addresses import AddressError, parse_single
from listmgr.posting.archive import archive_dir
from listmgr.store import lists as repo
from listmgr.store import ratelimit
from listmgr.store.models import MailingList
from listmgr.store.settings import read_all_lists, require_settings
from listmgr.web import auth, mailview, pages
from listmgr.web.security import checked_form

log = logging.getLogger("listmgr.web")

MONTH = re.compile(r"^\d{6}$")
MAX_ARCHIVE_FILE = 200 * 1024 * 1024  # larger monthly files are not opened by the web
MAX_LISTED = 2000                     # messages listed on one month's page
REQUESTS_PER_HOUR_PER_IP = 20         # subscribe/unsubscribe forms (each mails someone)


def routes() -> list[Route]:
    return [
        Route("/lists/", index),
        Route("/lists/{name}/", list_page),
        Route("/lists/{name}/subscribe", subscribe, methods=["POST"]),
        Route("/lists/{name}/unsubscribe", unsubscribe, methods=["POST"]),
        Route("/lists/{name}/archive/{month}/", archive_month),
        Route("/lists/{name}/archive/{month}/{n:int}", archive_message),
        Route("/lists/{name}/archive/{month}/{n:int}/{part:int}", archive_attachment),
    ]


def _web(request: Request):
    return request.app.state.web


def _visitor(app, s, lang: str, address: str = "") -> Context:
    """A command context for a web visitor: no identity proven, so never `is_self`."""
    return Context(app=app, s=s, req=CommandRequest(requester=address, address=address,
                                                    identities=()), lang=lang)


@dataclass(frozen=True)
class ListCard:
    name: str
    description: str


@dataclass(frozen=True)
class ListPage:
    name: str
    description: str
    info: str
    show_info: bool
    show_index: bool
    show_get: bool
    months: list[str]


async def index(request: Request) -> Response:
    web = _web(request)
    lang = pages.language(request)

    def cards(s) -> list[ListCard]:
        ctx = _visitor(web.app, s, lang)
        return [ListCard(m.name, m.description) for m in read_all_lists(s) if visible(ctx, m)]
    return pages.render(request, "lists.html", lists=await web.db(cards))


def _access(s, web, session: dict, mlist: MailingList, op: str) -> bool:
    """`*_access` for a visitor: open only; owners and site admins always."""
    if getattr(mlist, f"{op}_access", "closed") == "open":
        return True
    return auth.list_owner_ok(s, web, session, mlist)


def _months(config, name: str) -> list[str]:
    base = archive_dir(config, name)
    if not base.is_dir():
        return []
    found = []
    for p in base.iterdir():
        prefix, _, month = p.name.rpartition(".")
        if prefix == name and MONTH.match(month) and p.is_file():
            found.append(month)
    return sorted(found, reverse=True)


def _list_page(s, web, session: dict, name: str) -> ListPage | None:
    mlist = repo.get_list(s, name)
    if mlist is None:
        return None
    show_index = _access(s, web, session, mlist, "index")
    return ListPage(mlist.name, mlist.description, mlist.info,
                    _access(s, web, session, mlist, "info"), show_index,
                    _access(s, web, session, mlist, "get"),
                    _months(web.config, mlist.name) if show_index else [])


async def _require_list(request: Request) -> ListPage:
    web = _web(request)
    name = str(request.path_params["name"]).lower()[:64]
    found = await web.db(_list_page, web, dict(request.session), name)
    if found is None:
        raise HTTPException(404, "no such list")
    return found


async def list_page(request: Request, *, errors: dict[str, str] | None = None,
                    status: int = 200) -> Response:
    lp = await _require_list(request)
    return pages.render(request, "list.html", lst=lp, errors=errors or {},
                        domain=_web(request).config.domain, status=status)


def _request_change(s, web, lang: str, ip: str, name: str, cmd: str, address: str,
                    digest: bool = False) -> str:
    """Mail the address a confirmation for `cmd`; returns a message key for the page.
    `digest`: the subscription is to the digest, as `subscribe LIST-digest` by mail."""
    mlist = require_settings(s, name)
    bare = parse_single(address)
    cfg = web.config
    if is_service_address(bare, local_domains=cfg.local_domains,
                          has_list=lambda n: repo.get_list(s, n) is not None):
        return "confirm_sent"  # said as for anyone else; nothing is mailed
    if not ratelimit.allow(s, f"web-confirm:{ip}", REQUESTS_PER_HOUR_PER_IP):
        return "too_many_requests"
    if cmd == "unsubscribe" and not repo.is_member(s, mlist, bare):
        return "confirm_sent"  # the same answer: the page does not tell who is a member
    ctx = _visitor(web.app, s, lang, bare)
    send_confirm(ctx, cmd, mlist, bare, f"{mlist.name}-digest" if digest else "")
    log.info("web %s request list=%s%s address=%s ip=%s", cmd, mlist.name,
             " (digest)" if digest else "", bare, ip)
    return "confirm_sent"


async def _change(request: Request, cmd: str) -> Response:
    form = await checked_form(request)
    lp = await _require_list(request)
    address = str(form.get("address", ""))[:320]
    try:
        parse_single(address)
    except AddressError:
        return await list_page(request, errors={cmd: "bad_address"}, status=400)
    web = _web(request)
    ip = request.client.host if request.client else "?"
    digest = cmd == "subscribe" and form.get("digest") == "1"
    key = await web.db(_request_change, web, pages.language(request), ip, lp.name, cmd,
                       address, digest)
    web.app.notify("outbound")
    pages.flash(request, key)
    return RedirectResponse(f"/lists/{lp.name}/", status_code=303)


async def subscribe(request: Request) -> Response:
    return await _change(request, "subscribe")


async def unsubscribe(request: Request) -> Response:
    return await _change(request, "unsubscribe")


# --------------------------------------------------------------------------- archive

def _mbox_path(web, lp: ListPage, month: str) -> Path:
    if not MONTH.match(month) or month not in _months(web.config, lp.name):
        raise HTTPException(404, "no such month")
    path = archive_dir(web.config, lp.name) / f"{lp.name}.{month}"
    if path.stat().st_size > MAX_ARCHIVE_FILE:
        raise HTTPException(413, "archive file too large for the web")
    return path


@dataclass(frozen=True)
class Entry:
    n: int
    date: str
    sender: str
    subject: str


def _entries(path: Path) -> list[Entry]:
    box = mailbox.mbox(str(path), create=False)
    out = []
    try:
        for n, key in enumerate(box.iterkeys()):
            if n >= MAX_LISTED:
                break
            try:
                msg = box.get_message(key)
                head = [" ".join(str(msg.get(h, "") or "").split())[:200]
                        for h in ("Date", "From", "Subject")]
            except Exception:
                head = ["", "", ""]
            out.append(Entry(n, *head))
    finally:
        box.close()
    return out


def _raw(path: Path, n: int) -> bytes | None:
    box = mailbox.mbox(str(path), create=False)
    try:
        keys = box.keys()
        if not 0 <= n < len(keys):
            return None
        return box.get_bytes(keys[n])
    finally:
        box.close()


async def _archive(request: Request, op: str) -> tuple[ListPage, Path]:
    lp = await _require_list(request)
    if not lp.show_index or (op == "get" and not lp.show_get):
        raise HTTPException(403, "archive not open")
    web = _web(request)
    path = await web.db(lambda s: _mbox_path(web, lp, request.path_params["month"]))
    return lp, path


async def archive_month(request: Request) -> Response:
    lp, path = await _archive(request, "index")
    entries = await asyncio.to_thread(_entries, path)
    return pages.render(request, "archive_month.html", lst=lp,
                        month=request.path_params["month"], entries=entries)


async def archive_message(request: Request) -> Response:
    lp, path = await _archive(request, "get")
    data = await asyncio.to_thread(_raw, path, request.path_params["n"])
    if data is None:
        raise HTTPException(404, "no such message")
    return pages.render(request, "archive_message.html", lst=lp,
                        month=request.path_params["month"], n=request.path_params["n"],
                        mail=mailview.view(data))


def _download_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100].lstrip(".")
    return safe or "attachment"


async def archive_attachment(request: Request) -> Response:
    lp, path = await _archive(request, "get")
    data = await asyncio.to_thread(_raw, path, request.path_params["n"])
    part = mailview.attachment(data, request.path_params["part"]) if data else None
    if part is None:
        raise HTTPException(404, "no such attachment")
    filename, _ctype, payload = part
    # Always a download, never shown inline: an attached HTML file must not run here.
    return Response(payload, media_type="application/octet-stream", headers={
        "content-disposition": f'attachment; filename="{_download_name(filename)}"'})
