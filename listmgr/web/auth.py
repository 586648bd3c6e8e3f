"""Who a session is: a mailbox user (/personal/), the owner of one list, or a site admin.

The session cookie is signed; besides the name it keeps a keyed fingerprint of the password
hash that let it in, so changing that password ends every session made with the old one.
Each login starts a fresh session (nothing from before survives but the language).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from starlette.requests import Request

from listmgr.commands.context import SITE_PASSWORD_KEY
from listmgr.passwords import hash_password, verify_password
from listmgr.store import mailboxes
from listmgr.store.models import MailingList, SiteSetting
from listmgr.web import pages

log = logging.getLogger("listmgr.web")


def start_session(request: Request, **values: str) -> None:
    lang = request.session.get("lang")
    request.session.clear()
    if lang in pages.LANGUAGES:
        request.session["lang"] = lang
    request.session.update(values)


def end_session(request: Request) -> None:
    start_session(request)


def dummy_check(web, password: str) -> None:
    """The argon2 work of a real check, for names that do not exist."""
    if not web.dummy_hash:
        web.dummy_hash.append(hash_password("no such account"))
    verify_password(web.dummy_hash[0], password)


def site_hash(s) -> str:
    row = s.get(SiteSetting, SITE_PASSWORD_KEY)
    return row.value if row else ""


def site_admin_ok(s, web, session: dict) -> bool:
    """Is this session a site admin's (site password, or a mailbox user in admin_users)?"""
    who = session.get("site")
    fp = session.get("site_fp")
    if not isinstance(who, str) or not isinstance(fp, str):
        return False
    if who == "password":
        stored = site_hash(s)
        return bool(stored) and fp == web.fingerprint("site", stored)
    if who.startswith("user:"):
        name = who[5:]
        if name not in web.config.web.admin_users:
            return False
        user = mailboxes.get_user(s, name)
        return user is not None and fp == web.fingerprint("site", name, user.password_hash)
    return False


def list_owner_ok(s, web, session: dict, mlist: MailingList) -> bool:
    """May this session run list `mlist` (its admin password, or a site admin)?"""
    if session.get("list") == mlist.name and mlist.admin_passwd_hash \
            and session.get("list_fp") == web.fingerprint("list", mlist.name,
                                                          mlist.admin_passwd_hash):
        return True
    return site_admin_ok(s, web, session)


async def checked_password(request: Request, web, account: str,
                           check: Callable[..., Any], *args: Any) -> Any:
    """`check(session, *args)` (an argon2 check, off the event loop), one at a time per
    client IP and per account; a failure (None) costs the doubling delay and is logged
    without the password. Returns what `check` returned."""
    ip = request.client.host if request.client else "?"
    async with web.throttle.attempt(ip, account):
        result = await web.db(check, *args)
        if result is None:
            delay = await web.throttle.failed(ip, account)
            log.warning("web password check failed account=%s ip=%s delay=%.1fs",
                        account[:80].encode("ascii", "backslashreplace").decode(), ip, delay)
            return None
    web.throttle.succeeded(ip, account)
    return result
