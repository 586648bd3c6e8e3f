"""/lists/LIST/admin/: the list's owners (list password) or a site admin run the list:
members, held posts (the same decision as `accept`/`reject` by mail), settings (the registry
of `listmgr config`), and the info and intro texts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listmgr.listconfig import SETTINGS, SettingError, describe, format_value
from listmgr.mail.addresses import AddressError, normalise, parse_single
from listmgr.passwords import verify_password
from listmgr.posting import moderation
from listmgr.store import lists as repo
from listmgr.store.models import HeldPost, MailingList
from listmgr.web import auth, mailview, pages
from listmgr.web.security import checked_form

log = logging.getLogger("listmgr.web")

PAGE_SIZE = 100
MAX_BULK_LINES = 100_000
MAX_TEXT = 100_000
MAX_REASON = 1000


def routes() -> list[Route]:
    base = "/lists/{name}/admin"
    return [
        Route(base + "/", overview),
        Route(base + "/login", login, methods=["POST"]),
        Route(base + "/logout", logout, methods=["POST"]),
        Route(base + "/members/", members_page),
        Route(base + "/members/add", member_add, methods=["POST"]),
        Route(base + "/members/bulk", members_bulk, methods=["POST"]),
        Route(base + "/members/remove", member_remove, methods=["POST"]),
        Route(base + "/members/delivery", member_delivery, methods=["POST"]),
        Route(base + "/members/digest", member_digest, methods=["POST"]),
        Route(base + "/held/", held_page),
        Route(base + "/held/{id:int}", held_post),
        Route(base + "/held/{id:int}/decide", held_decide, methods=["POST"]),
        Route(base + "/settings/", settings_page),
        Route(base + "/settings/save", settings_save, methods=["POST"]),
        Route(base + "/texts/", texts_page),
        Route(base + "/texts/save", texts_save, methods=["POST"]),
    ]


def _web(request: Request):
    return request.app.state.web


def _name(request: Request) -> str:
    return str(request.path_params["name"]).lower()[:64]


def _base(name: str) -> str:
    return f"/lists/{name}/admin/"


@dataclass(frozen=True)
class ListView:
    name: str
    description: str
    members: int
    held: int


def _list_view(s, mlist: MailingList) -> ListView:
    held = repo.held_counts(s).get(mlist.id, 0)
    return ListView(mlist.name, mlist.description, repo.member_count(s, mlist), held)


async def _allowed(request: Request) -> ListView | None:
    """The list when this session may run it; None when it may not (or no such list)."""
    web = _web(request)
    name = _name(request)
    session = dict(request.session)

    def check(s) -> ListView | None:
        mlist = repo.get_list(s, name)
        if mlist is None or not auth.list_owner_ok(s, web, session, mlist):
            return None
        return _list_view(s, mlist)
    return await web.db(check)


async def _require(request: Request) -> ListView:
    found = await _allowed(request)
    if found is None:
        raise HTTPException(403, "not logged in for this list")
    return found


def _page(request: Request, template: str, lv: ListView, tab: str, **ctx) -> Response:
    return pages.render(request, template, lst=lv, tab=tab, base=_base(lv.name), **ctx)


# --------------------------------------------------------------------------- login

def _login_page(request: Request, *, failed: bool = False) -> Response:
    return pages.render(request, "login.html", status=401 if failed else 200,
                        action=_base(_name(request)) + "login", title_key="owner_login",
                        errors={"login": "list_login_failed"} if failed else {},
                        name="", name_label="", list_name=_name(request))


async def overview(request: Request) -> Response:
    lv = await _allowed(request)
    if lv is None:
        return _login_page(request)
    return RedirectResponse(_base(lv.name) + "held/" if lv.held else
                            _base(lv.name) + "members/", status_code=303)


def check_owner_password(s, web, name: str, password: str) -> dict | None:
    """Session values for the list's admin password, or for the site password; None when
    neither matches (the same argon2 work when the list does not exist)."""
    mlist = repo.get_list(s, name)
    if mlist is None:
        auth.dummy_check(web, password)
        auth.dummy_check(web, password)
        return None
    if mlist.admin_passwd_hash and verify_password(mlist.admin_passwd_hash, password):
        return {"list": mlist.name,
                "list_fp": web.fingerprint("list", mlist.name, mlist.admin_passwd_hash)}
    stored = auth.site_hash(s)
    if stored and verify_password(stored, password):
        return {"site": "password", "site_fp": web.fingerprint("site", stored)}
    if not stored:
        auth.dummy_check(web, password)
    return None


async def login(request: Request) -> Response:
    form = await checked_form(request)
    web = _web(request)
    name = _name(request)
    password = str(form.get("password", ""))[:200]
    values = await auth.checked_password(request, web, "list:" + name, check_owner_password,
                                         web, name, password)
    if values is None:
        return _login_page(request, failed=True)
    auth.start_session(request, **values)
    log.info("web login page=owner list=%s as=%s", name,
             "site-admin" if "site" in values else "owner")
    return RedirectResponse(_base(name), status_code=303)


async def logout(request: Request) -> Response:
    await checked_form(request)
    auth.end_session(request)
    return RedirectResponse(_base(_name(request)), status_code=303)


# --------------------------------------------------------------------------- members

@dataclass(frozen=True)
class MemberRow:
    address: str
    delivery: bool
    since: str
    digest: bool = False


def _members(s, name: str, q: str, page: int) -> tuple[list[MemberRow], int]:
    rows, total = repo.search_members(s, repo.require_list(s, name), q,
                                      offset=page * PAGE_SIZE, limit=PAGE_SIZE)
    return [MemberRow(a, d, f"{t:%Y-%m-%d}", g) for a, d, t, g in rows], total


async def members_page(request: Request, *, result: repo.BulkResult | None = None,
                       errors: dict[str, str] | None = None, status: int = 200) -> Response:
    lv = await _require(request)
    q = request.query_params.get("q", "")[:200].strip() if request.method == "GET" else ""
    page_text = request.query_params.get("page", "0") if request.method == "GET" else "0"
    page = int(page_text) if page_text.isdigit() and len(page_text) < 7 else 0
    rows, total = await _web(request).db(_members, lv.name, q, page)
    return _page(request, "owner_members.html", lv, "members", rows=rows, total=total, q=q,
                 page=page, pages=max(1, -(-total // PAGE_SIZE)), result=result,
                 errors=errors or {}, status=status)


def _add_one(s, name: str, address: str) -> str:
    mlist = repo.require_list(s, name)
    result = repo.add_members(s, mlist, [address])
    if result.invalid:
        return "bad_address"
    return "member_added" if result.added else "already_member"


async def member_add(request: Request) -> Response:
    form = await checked_form(request)
    lv = await _require(request)
    address = str(form.get("address", ""))[:320]
    outcome = await _web(request).db(_add_one, lv.name, address)
    if outcome == "bad_address":
        return await members_page(request, errors={"add": "bad_address"}, status=400)
    log.info("web members add list=%s address=%s by=web", lv.name, normalise(address))
    pages.flash(request, outcome)
    return RedirectResponse(_base(lv.name) + "members/", status_code=303)


async def members_bulk(request: Request) -> Response:
    web = _web(request)
    form = await checked_form(request, max_files=1, max_part_size=web.config.web.max_upload)
    lv = await _require(request)
    text = str(form.get("addresses", "") or "")
    upload = form.get("file")
    if upload is not None and hasattr(upload, "read"):
        data = await upload.read()
        text += "\n" + data.decode("utf-8", "replace")
    lines = text.splitlines()
    if len(lines) > MAX_BULK_LINES:
        return await members_page(request, errors={"bulk": "too_many_lines"}, status=400)
    result = await web.db(lambda s: repo.add_members(s, repo.require_list(s, lv.name), lines))
    log.info("web members bulk list=%s added=%d duplicates=%d invalid=%d", lv.name,
             len(result.added), len(result.duplicates), len(result.invalid))
    return await members_page(request, result=result)


async def member_remove(request: Request) -> Response:
    form = await checked_form(request)
    lv = await _require(request)
    address = str(form.get("address", ""))[:320]
    result = await _web(request).db(
        lambda s: repo.remove_members(s, repo.require_list(s, lv.name), [address]))
    pages.flash(request, "member_removed" if result.added else "not_a_member")
    log.info("web members remove list=%s address=%s removed=%d", lv.name,
             address.encode("ascii", "backslashreplace").decode()[:320], len(result.added))
    return RedirectResponse(_base(lv.name) + "members/", status_code=303)


async def _member_flag(request: Request, attr: str) -> tuple[ListView, str, bool, bool]:
    """Set one member's boolean `attr` from the form's `address` and `on`; returns the list,
    the address as given, the new value, and whether such a member was found."""
    form = await checked_form(request)
    lv = await _require(request)
    address = str(form.get("address", ""))[:320]
    on = form.get("on") == "1"

    def change(s) -> bool:
        mlist = repo.require_list(s, lv.name)
        try:
            member = repo.find_member(s, mlist, parse_single(address))
        except AddressError:
            return False
        if member is None:
            return False
        setattr(member, attr, on)
        return True
    return lv, address, on, await _web(request).db(change)


async def member_delivery(request: Request) -> Response:
    lv, _, on, done = await _member_flag(request, "delivery_enabled")
    pages.flash(request, ("delivery_on" if on else "delivery_off") if done else "not_a_member")
    return RedirectResponse(_base(lv.name) + "members/", status_code=303)


async def member_digest(request: Request) -> Response:
    """Digest mode on or off for one member: what `set LIST digest|nodigest` does."""
    lv, address, on, done = await _member_flag(request, "digest")
    if done:
        log.info("web set %s %s %s by=owner", lv.name, "digest" if on else "nodigest",
                 normalise(address))
    pages.flash(request, ("digest_on" if on else "digest_off") if done else "not_a_member")
    return RedirectResponse(_base(lv.name) + "members/", status_code=303)


# --------------------------------------------------------------------------- held posts

async def held_page(request: Request) -> Response:
    lv = await _require(request)
    held = await _web(request).db(moderation.pending, lv.name)
    return _page(request, "owner_held.html", lv, "held", held=held)


_STAMP = "[Last updated on: "


def _unstamped(text: str) -> str:
    if text.startswith(_STAMP) and "\n" in text:
        return text.split("\n", 1)[1]
    return text


def _held(s, app, name: str, held_id: int) -> tuple[moderation.HeldInfo, bytes] | None:
    row = s.get(HeldPost, held_id)
    if row is None:
        return None
    info = moderation.info(s, row)
    if info.list_name != name:  # another list's post: as if it did not exist
        return None
    try:
        data = app.spool.read(row.spool_path) if info.state == "held" else b""
    except FileNotFoundError:
        data = b""
    return info, data


async def held_post(request: Request) -> Response:
    lv = await _require(request)
    web = _web(request)
    found = await web.db(_held, web.app, lv.name, request.path_params["id"])
    if found is None:
        raise HTTPException(404, "no such held post")
    info, data = found
    view = mailview.view(data) if data else None
    return _page(request, "owner_held_post.html", lv, "held", post=info, mail=view)


async def held_decide(request: Request) -> Response:
    form = await checked_form(request)
    lv = await _require(request)
    web = _web(request)
    held_id = request.path_params["id"]
    action = form.get("action")
    if action not in ("approve", "reject"):
        raise HTTPException(400, "approve or reject")
    reason = " ".join(str(form.get("reason", "")).split())[:MAX_REASON]

    def decide(s) -> str:
        found = _held(s, web.app, lv.name, held_id)
        if found is None:
            raise HTTPException(404, "no such held post")
        return moderation.decide(web.app, s, held_id, approve=action == "approve",
                                 reason=reason, by="web")
    try:
        await web.db(decide)
    except moderation.DecisionError:
        pages.flash(request, "held_already_decided")
        return RedirectResponse(_base(lv.name) + "held/", status_code=303)
    web.app.notify("outbound")
    pages.flash(request, "held_approved" if action == "approve" else "held_rejected")
    return RedirectResponse(_base(lv.name) + "held/", status_code=303)


# --------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class Field:
    key: str
    kind: str
    description: str
    value: str
    choices: tuple[str, ...]
    secret: bool


def _fields(s, name: str, lang: str) -> list[Field]:
    mlist = repo.require_list(s, name)
    return [Field(st.key, st.kind, describe(st, lang), format_value(mlist, st),
                  tuple(getattr(st.parse, "choices", ())), st.secret)
            for st in SETTINGS.values()]


async def settings_page(request: Request, *, errors: dict[str, str] | None = None,
                        sent: dict[str, str] | None = None, status: int = 200) -> Response:
    lv = await _require(request)
    fields = await _web(request).db(_fields, lv.name, pages.language(request))
    if sent:
        fields = [Field(f.key, f.kind, f.description,
                        sent.get(f.key, f.value) if not f.secret else "", f.choices, f.secret)
                  for f in fields]
    return _page(request, "owner_settings.html", lv, "settings", fields=fields,
                 errors=errors or {}, status=status)


class _Invalid(Exception):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors


async def settings_save(request: Request) -> Response:
    form = await checked_form(request)
    lv = await _require(request)
    sent = {k: str(form.get(k, ""))[:MAX_TEXT] for k in SETTINGS if form.get(k) is not None}

    def save(s) -> list[str]:
        mlist = repo.require_list(s, lv.name)
        changed, errors = [], {}
        for key, text in sent.items():
            st = SETTINGS[key]
            if st.secret and not text:
                continue  # a password field left empty keeps the password
            if not st.secret and text.replace("\r\n", "\n").strip() == \
                    format_value(mlist, st).strip():
                continue
            try:
                repo.set_setting(s, mlist, key, text)
                changed.append(key)
            except SettingError as exc:
                errors[key] = str(exc)
        if errors:
            raise _Invalid(errors)  # nothing is stored: the transaction rolls back
        return changed
    try:
        changed = await _web(request).db(save)
    except _Invalid as bad:
        return await settings_page(request, errors=bad.errors, sent=sent, status=400)
    log.info("web settings list=%s changed=%s", lv.name, ",".join(changed) or "-")
    if "admin_passwd" in changed and request.session.get("list") == lv.name:
        def fp(s) -> str:
            mlist = repo.require_list(s, lv.name)
            return _web(request).fingerprint("list", mlist.name, mlist.admin_passwd_hash)
        request.session["list_fp"] = await _web(request).db(fp)
    pages.flash(request, "settings_saved")
    return RedirectResponse(_base(lv.name) + "settings/", status_code=303)


# --------------------------------------------------------------------------- info / intro

async def texts_page(request: Request) -> Response:
    lv = await _require(request)

    def get(s) -> tuple[str, str]:
        mlist = repo.require_list(s, lv.name)
        return _unstamped(mlist.info), _unstamped(mlist.intro)
    info, intro = await _web(request).db(get)
    return _page(request, "owner_texts.html", lv, "texts", info=info, intro=intro)


async def texts_save(request: Request) -> Response:
    form = await checked_form(request)
    lv = await _require(request)
    values = {k: str(form.get(k, "")).replace("\r\n", "\n")[:MAX_TEXT]
              for k in ("info", "intro")}

    def save(s) -> None:
        mlist = repo.require_list(s, lv.name)
        for what, data in values.items():
            if data.strip() == _unstamped(getattr(mlist, what)).strip():
                continue
            # as newinfo / newintro by mail: dated when the list says so
            if data.strip() and getattr(mlist, f"date_{what}"):
                data = f"[Last updated on: {time.ctime()}]\n" + data
            setattr(mlist, what, data if data.strip() else "")
    await _web(request).db(save)
    pages.flash(request, "texts_saved")
    return RedirectResponse(_base(lv.name) + "texts/", status_code=303)
