"""The Starlette application: routes of every page family, sessions, the request guard."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listmgr import site_secret
from listmgr.app import App
from listmgr.config import Config
from listmgr.web import admin, owner, pages, personal, public, unsubscribe
from listmgr.web.security import Guard, LoginThrottle, checked_form, fingerprint

log = logging.getLogger("listmgr.web")


@dataclass
class WebState:
    """What the pages share: the app, the site secret, the login throttle."""
    app: App
    secret: bytes
    throttle: LoginThrottle
    dummy_hash: list[str] = field(default_factory=list)

    @property
    def config(self) -> Config:
        return self.app.config

    async def db(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(session, *args) in one store transaction, off the event loop."""
        def run() -> Any:
            with self.app.store.session() as s:
                return fn(s, *args)
        return await asyncio.to_thread(run)

    def fingerprint(self, *parts: str) -> str:
        return fingerprint(self.secret, *parts)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "?"


def safe_next(value: Any) -> str:
    """A local path to go back to (never another site)."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") \
            and "\\" not in value and len(value) < 500:
        return value
    return "/"


async def home(request: Request) -> Response:
    return pages.render(request, "home.html")


async def style(request: Request) -> Response:
    css = resources.files("listmgr.web").joinpath("style.css").read_bytes()
    return Response(css, media_type="text/css",
                    headers={"cache-control": "public, max-age=3600"})


async def set_language(request: Request) -> Response:
    form = await checked_form(request)
    lang = form.get("lang")
    if lang in pages.LANGUAGES:
        request.session["lang"] = lang
    return RedirectResponse(safe_next(form.get("next")), status_code=303)


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    key = {400: "error_400", 403: "error_403", 404: "error_404", 405: "error_405",
           413: "error_413"}.get(status, "error_500")
    # An error page starts no session (a browser's /favicon.ico request gets no cookie).
    return pages.render(request, "error.html", status=status, message_key=key,
                        session="csrf" in request.session)


def build_app(app: App) -> Starlette:
    cfg = app.config
    state = WebState(app=app, secret=site_secret.load(cfg.data_dir),
                     throttle=LoginThrottle(cfg.pop3.login_failure_delay))
    routes = [
        Route("/", home),
        Route("/static/style.css", style),
        Route("/lang", set_language, methods=["POST"]),
        *personal.routes(),
        *unsubscribe.routes(),
        *owner.routes(),
        *public.routes(),
        *admin.routes(),
    ]
    middleware = [
        Middleware(Guard, max_body=cfg.web.max_upload),
        Middleware(SessionMiddleware, secret_key=state.fingerprint("cookie-key"),
                   session_cookie="listmgr_session", max_age=int(cfg.web.session_lifetime),
                   same_site="lax", https_only=cfg.web.base_url.startswith("https://")),
    ]
    web = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: http_error})
    web.state.web = state
    return web
