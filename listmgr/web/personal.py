"""/personal/: mailbox users log in with their POP3 name and password, change the password,
set the auto-responder and look at their mailbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.parser
import email.policy
import logging
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listmgr.passwords import verify_password
from listmgr.mailbox.maildir import Maildir
from listmgr.store import mailboxes
from listmgr.web import auth, pages
from listmgr.web.security import checked_form

log = logging.getLogger("listmgr.web")

MAX_SUBJECT = 200
MAX_BODY = 10000
MAX_PASSWORD = 200
MAX_NAME = 320
NEWEST = 10
HEADER_BYTES = 32 * 1024


def routes() -> list[Route]:
    return [
        Route("/personal/", page),
        Route("/personal/login", login, methods=["POST"]),
        Route("/personal/logout", logout, methods=["POST"]),
        Route("/personal/password", change_password, methods=["POST"]),
        Route("/personal/autoreply", autoreply, methods=["POST"]),
    ]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "?"


def _web(request: Request):
    return request.app.state.web


def _user_name(cfg, given: str) -> str:
    """'alice' or 'alice@<a local domain>' -> 'alice' (as POP3 USER)."""
    name = given.strip().lower()[:MAX_NAME]
    local, at, domain = name.rpartition("@")
    if at and domain in cfg.local_domains:
        name = local
    return name


def check_password(s, web, name: str, password: str) -> mailboxes.User | None:
    """The user when the password is right; the same argon2 work for unknown names."""
    user = mailboxes.get_user(s, name) if name else None
    if user is None:
        auth.dummy_check(web, password)
        return None
    return user if verify_password(user.password_hash, password) else None


async def current_user(request: Request) -> mailboxes.User | None:
    """The logged-in mailbox user; a session made before a password change is dropped."""
    name = request.session.get("user")
    if not isinstance(name, str):
        return None
    web = _web(request)
    user = await web.db(mailboxes.get_user, name)
    if user is None or request.session.get("user_fp") != web.fingerprint(
            "user", user.name, user.password_hash):
        auth.end_session(request)
        return None
    return user


@dataclass(frozen=True)
class MailboxView:
    count: int
    size: int
    newest: list[tuple[str, str, str]]  # (date, from, subject), newest first


def _headers(path) -> tuple[str, str, str]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEADER_BYTES)
        head = head.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        msg = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(head)
        return tuple(" ".join(str(msg.get(h, "") or "").split())[:200]  # type: ignore
                     for h in ("Date", "From", "Subject"))
    except Exception:  # a broken header is shown as empty, never as an error page
        return ("", "", "")


def mailbox_view(data_dir: str, name: str) -> MailboxView:
    entries = Maildir.for_user(data_dir, name).entries()
    newest = [_headers(e.path) for e in reversed(entries[-NEWEST:])]
    return MailboxView(len(entries), sum(e.size for e in entries), newest)


async def page(request: Request, *, errors: dict[str, str] | None = None,
               form: dict[str, str] | None = None, status: int = 200) -> Response:
    user = await current_user(request)
    if user is None:
        return pages.render(request, "login.html", status=status, action="/personal/login",
                            title_key="personal_login", errors=errors or {},
                            name=(form or {}).get("user", ""), name_label="user_name")
    web = _web(request)
    view = await asyncio.to_thread(mailbox_view, web.config.data_dir, user.name)
    values = {
        "enabled": user.autoreply_enabled,
        "subject": user.autoreply_subject,
        "body": user.autoreply_body,
        "start": user.autoreply_start.isoformat() if user.autoreply_start else "",
        "end": user.autoreply_end.isoformat() if user.autoreply_end else "",
        "interval": str(user.autoreply_interval_days),
    }
    if form:
        values.update(form)
    return pages.render(request, "personal.html", status=status, user=user,
                        address=f"{user.name}@{web.config.domain}", mailbox=view,
                        ar=values, errors=errors or {})


async def login(request: Request) -> Response:
    form = await checked_form(request)
    web = _web(request)
    name = _user_name(web.config, str(form.get("user", "")))
    password = str(form.get("password", ""))[:MAX_PASSWORD]
    user = await auth.checked_password(request, web, "user:" + name, check_password, web,
                                       name, password)
    if user is None:
        return await page(request, errors={"login": "login_failed"}, form={"user": name},
                          status=401)
    auth.start_session(request, user=user.name,
                       user_fp=web.fingerprint("user", user.name, user.password_hash))
    log.info("web login page=personal user=%s ip=%s", user.name, client_ip(request))
    return RedirectResponse("/personal/", status_code=303)


async def logout(request: Request) -> Response:
    await checked_form(request)
    auth.end_session(request)
    return RedirectResponse("/personal/", status_code=303)


async def _require_user(request: Request) -> mailboxes.User:
    user = await current_user(request)
    if user is None:
        raise HTTPException(403, "not logged in")
    return user


async def change_password(request: Request) -> Response:
    form = await checked_form(request)
    user = await _require_user(request)
    web = _web(request)
    old = str(form.get("old", ""))[:MAX_PASSWORD + 1]
    new = str(form.get("new", ""))
    again = str(form.get("again", ""))
    error = None
    if len(new) < 8 or len(new) > MAX_PASSWORD or new.strip() != new:
        error = "password_rules"
    elif new != again:
        error = "password_mismatch"
    if error:
        return await page(request, errors={"password": error}, status=400)
    if await auth.checked_password(request, web, "user:" + user.name, check_password, web,
                                   user.name, old) is None:
        return await page(request, errors={"password": "old_password_wrong"}, status=400)

    def store(s) -> str:
        mailboxes.set_password(s, user.name, new)
        row = mailboxes.get_user(s, user.name)
        assert row is not None  # set_password raises for an unknown user
        return row.password_hash
    new_hash = await web.db(store)
    request.session["user_fp"] = web.fingerprint("user", user.name, new_hash)
    log.info("web password changed user=%s ip=%s", user.name, client_ip(request))
    pages.flash(request, "password_changed")
    return RedirectResponse("/personal/", status_code=303)


def _date(text: str) -> dt.date | None:
    text = text.strip()
    if not text:
        return None
    return dt.date.fromisoformat(text)


def parse_autoreply(form) -> tuple[dict, dict[str, str]]:
    """Form fields -> (values for set_autoreply, errors by field)."""
    errors: dict[str, str] = {}
    subject = " ".join(str(form.get("subject", "")).split())
    body = str(form.get("body", "")).replace("\r\n", "\n")
    if len(subject) > MAX_SUBJECT:
        errors["subject"] = "subject_too_long"
    if len(body) > MAX_BODY:
        errors["body"] = "body_too_long"
    dates: dict[str, dt.date | None] = {}
    for key in ("start", "end"):
        try:
            dates[key] = _date(str(form.get(key, ""))[:20])
        except ValueError:
            errors[key] = "bad_date"
    if not errors.get("start") and not errors.get("end") and dates["start"] \
            and dates["end"] and dates["end"] < dates["start"]:
        errors["end"] = "end_before_start"
    interval_text = str(form.get("interval", "1")).strip()
    interval = int(interval_text) if interval_text.isdigit() and len(interval_text) < 4 else 0
    if not 1 <= interval <= mailboxes.MAX_INTERVAL_DAYS:
        errors["interval"] = "bad_interval"
    enabled = form.get("enabled") == "on"
    if enabled and not body.strip():
        errors["body"] = "body_needed"
    values = dict(enabled=enabled, subject=subject, body=body, start=dates.get("start"),
                  end=dates.get("end"), interval_days=interval)
    return values, errors


async def autoreply(request: Request) -> Response:
    form = await checked_form(request)
    user = await _require_user(request)
    values, errors = parse_autoreply(form)
    if errors:
        shown = {k: str(form.get(k, "")) for k in ("subject", "body", "start", "end",
                                                      "interval")}
        shown["enabled"] = form.get("enabled") == "on"  # type: ignore[assignment]
        return await page(request, errors=errors, form=shown, status=400)
    web = _web(request)
    await web.db(lambda s: mailboxes.set_autoreply(s, user.name, **values))
    log.info("web autoreply user=%s enabled=%s", user.name, values["enabled"])
    pages.flash(request, "autoreply_saved")
    return RedirectResponse("/personal/", status_code=303)
