"""/admin/: site admins (the site password, or a mailbox user named in `[web] admin_users`
with that user's password) create and remove lists, manage mailbox users, and see the
outbound queue and the held posts."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listmgr.commands import site as site_commands
from listmgr.mailbox.maildir import Maildir
from listmgr.passwords import verify_password
from listmgr.store import lists as repo
from listmgr.store import inbound, mailboxes, outbound_claims
from listmgr.web import auth, pages
from listmgr.web.personal import check_password
from listmgr.web.public import _visitor
from listmgr.web.security import checked_form

log = logging.getLogger("listmgr.web")


def routes() -> list[Route]:
    return [
        Route("/admin/", overview),
        Route("/admin/login", login, methods=["POST"]),
        Route("/admin/logout", logout, methods=["POST"]),
        Route("/admin/lists/create", list_create, methods=["POST"]),
        Route("/admin/lists/remove", list_remove, methods=["POST"]),
        Route("/admin/users/add", user_add, methods=["POST"]),
        Route("/admin/users/password", user_password, methods=["POST"]),
        Route("/admin/users/delete", user_delete, methods=["POST"]),
    ]


def _web(request: Request):
    return request.app.state.web


async def _is_admin(request: Request) -> bool:
    web = _web(request)
    session = dict(request.session)
    return await web.db(lambda s: auth.site_admin_ok(s, web, session))


async def _require(request: Request) -> None:
    if not await _is_admin(request):
        raise HTTPException(403, "not a site admin")


def check_admin_password(s, web, name: str, password: str) -> dict | None:
    """Session values for the site password (no name) or an admin_users mailbox user."""
    if name:
        user = check_password(s, web, name, password)
        if user is None or user.name not in web.config.web.admin_users:
            return None
        return {"site": "user:" + user.name,
                "site_fp": web.fingerprint("site", user.name, user.password_hash)}
    stored = auth.site_hash(s)
    if not stored:
        auth.dummy_check(web, password)
        return None
    if not verify_password(stored, password):
        return None
    return {"site": "password", "site_fp": web.fingerprint("site", stored)}


@dataclass(frozen=True)
class ListRow:
    name: str
    description: str
    owners: str
    members: int
    held: int


@dataclass(frozen=True)
class UserRow:
    name: str
    autoreply: bool
    messages: int


@dataclass(frozen=True)
class Queue:
    messages: int
    counts: dict
    due: int
    deferred: int
    oldest: str
    shunted: int
    held: int


def _overview(s, data_dir: str) -> tuple[list[ListRow], list[UserRow], Queue]:
    held = repo.held_counts(s)
    lists = [ListRow(m.name, m.description, ", ".join(repo.owners_of(m)),
                     repo.member_count(s, m), held.get(m.id, 0)) for m in repo.all_lists(s)]
    users = [UserRow(u.name, u.autoreply_enabled,
                     len(Maildir.for_user(data_dir, u.name).entries()))
             for u in mailboxes.all_users(s)]
    sm = outbound_claims.summary(s)
    shunted = inbound.shunted_count(s)
    oldest = f"{sm.oldest[0]} ({sm.oldest[1]:%Y-%m-%d %H:%M} UTC)" if sm.oldest else ""
    return lists, users, Queue(sm.messages, dict(sm.counts), sm.due, sm.deferred, oldest,
                               shunted, sum(held.values()))


async def overview(request: Request, *, errors: dict[str, str] | None = None,
                   status: int = 200) -> Response:
    if not await _is_admin(request):
        return pages.render(request, "login.html", status=401 if errors else 200,
                            action="/admin/login", title_key="admin_login",
                            errors=errors or {}, name="", name_label="admin_name")
    web = _web(request)
    lists, users, queue = await web.db(_overview, web.config.data_dir)
    return pages.render(request, "admin.html", lists=lists, users=users, queue=queue,
                        errors=errors or {}, status=status)


async def login(request: Request) -> Response:
    form = await checked_form(request)
    web = _web(request)
    name = str(form.get("user", "")).strip().lower()[:64]
    password = str(form.get("password", ""))[:200]
    values = await auth.checked_password(request, web, "site:" + name, check_admin_password,
                                         web, name, password)
    if values is None:
        return await overview(request, errors={"login": "login_failed"})
    auth.start_session(request, **values)
    log.info("web login page=admin as=%s", values["site"])
    return RedirectResponse("/admin/", status_code=303)


async def logout(request: Request) -> Response:
    await checked_form(request)
    auth.end_session(request)
    return RedirectResponse("/admin/", status_code=303)


def _done(request: Request, key: str) -> Response:
    pages.flash(request, key)
    return RedirectResponse("/admin/", status_code=303)


async def list_create(request: Request) -> Response:
    form = await checked_form(request)
    await _require(request)
    web = _web(request)
    name = str(form.get("name", "")).strip()[:64]
    owner = str(form.get("owner", "")).strip()[:320]
    description = " ".join(str(form.get("description", "")).split())[:500]

    def create(s) -> tuple[bool, str]:
        ctx = _visitor(web.app, s, web.config.language, f"majordomo-owner@{web.config.domain}")
        ok = site_commands.create_list(ctx, [name, owner, *description.split()])
        return ok, "\n".join(ctx.out.lines).strip()
    ok, said = await web.db(create)
    if not ok:
        return await overview(request, errors={"create": said or "list_not_created"},
                              status=400)
    web.app.notify("outbound")
    log.info("web newlist %s owner=%s", name.lower(), owner)
    return _done(request, "list_created")


async def list_remove(request: Request) -> Response:
    form = await checked_form(request)
    await _require(request)
    name = str(form.get("name", "")).strip().lower()[:64]
    if str(form.get("confirm", "")).strip().lower() != name:
        return await overview(request, errors={"remove": "confirm_by_name"}, status=400)
    try:
        await _web(request).db(repo.delete_list, name)
    except repo.ListError:
        raise HTTPException(404, "no such list") from None
    log.info("web rmlist %s", name)
    return _done(request, "list_removed")


async def user_add(request: Request) -> Response:
    form = await checked_form(request)
    await _require(request)
    web = _web(request)
    name = str(form.get("name", ""))[:64]
    password = str(form.get("password", ""))[:200]
    if len(password) < 8:
        return await overview(request, errors={"users": "password_rules"}, status=400)

    def add(s) -> str:
        user = mailboxes.add_user(s, name, password)
        Maildir.for_user(web.config.data_dir, user.name).create()
        return user.name
    try:
        added = await web.db(add)
    except mailboxes.UserError as exc:
        return await overview(request, errors={"users": str(exc)}, status=400)
    log.info("web user add %s", added)
    return _done(request, "user_added")


async def user_password(request: Request) -> Response:
    form = await checked_form(request)
    await _require(request)
    name = str(form.get("name", ""))[:64]
    password = str(form.get("password", ""))[:200]
    if len(password) < 8:
        return await overview(request, errors={"users": "password_rules"}, status=400)
    try:
        await _web(request).db(mailboxes.set_password, name, password)
    except mailboxes.UserError as exc:
        return await overview(request, errors={"users": str(exc)}, status=400)
    log.info("web user passwd %s", name.lower())
    return _done(request, "user_password_set")


async def user_delete(request: Request) -> Response:
    form = await checked_form(request)
    await _require(request)
    web = _web(request)
    name = str(form.get("name", "")).strip().lower()[:64]
    if str(form.get("confirm", "")).strip().lower() != name:
        return await overview(request, errors={"users": "confirm_by_name"}, status=400)
    try:
        await web.db(mailboxes.delete_user, name)
    except mailboxes.UserError as exc:
        return await overview(request, errors={"users": str(exc)}, status=400)
    await asyncio.to_thread(Maildir.for_user(web.config.data_dir, name).remove)
    log.info("web user del %s", name)
    return _done(request, "user_deleted")
