"""What every request passes through: security headers, the body cap, an access log without
tokens, CSRF checks, and the login throttle (the POP3 doubling delay, per IP and per account).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from listmgr.pop3.throttle import FailureTracker

log = logging.getLogger("listmgr.web")

# Pages use no script, no frames and no outside resources: the policy says so.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),  # /u/TOKEN must not leak to other sites
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# Path prefixes whose rest is a secret: logged as the prefix only.
SECRET_PATHS = ("/u/",)
MAX_FORM_FIELDS = 300


class BodyTooLarge(Exception):
    pass


def loggable_path(path: str) -> str:
    for prefix in SECRET_PATHS:
        if path.startswith(prefix):
            return prefix + "..."
    return path[:200].encode("ascii", "backslashreplace").decode()


# A refused body still arriving is read and dropped up to this size (for at most
# DRAIN_SECONDS) before the 413, so the client reads the 413 instead of a connection reset
# (unread data at close makes the kernel send RST); a larger one is cut off.
DRAIN_LIMIT = 64 * 1024
DRAIN_SECONDS = 2.0


async def _drain(receive: Receive, received: int) -> None:
    """Read and drop the rest of a refused request body, within the limits above."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while received <= DRAIN_LIMIT:
                message = await receive()
                if message["type"] != "http.request":
                    return
                received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        pass


class Guard:
    """ASGI middleware: caps the request body (413), adds the security headers and
    `Cache-Control: no-store` to every answer, and logs one line per request."""

    def __init__(self, app: ASGIApp, *, max_body: int):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        state: dict[str, Any] = {"status": 0, "received": 0}
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            if length.isdigit() and int(length) <= DRAIN_LIMIT:
                await _drain(receive, 0)
            await self._too_large(send, state)
            self._log(scope, state, started)
            return

        async def capped_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body:
                    raise BodyTooLarge()
            return message

        async def secured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                headers = [h for h in message.get("headers", [])
                           if h[0].lower() not in (b"server",)]
                headers.extend(HEADERS)
                if not any(h[0].lower() == b"cache-control" for h in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, capped_receive, secured_send)
        except BodyTooLarge:
            if not state["status"]:
                await _drain(receive, state["received"])
                await self._too_large(send, state)
        finally:
            self._log(scope, state, started)

    async def _too_large(self, send: Send, state: dict[str, Any]) -> None:
        state["status"] = 413
        body = b"Request body too large.\n"
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close"), *HEADERS]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _log(scope: Scope, state: dict[str, Any], started: float) -> None:
        client = scope.get("client") or ("?", 0)
        log.info("web %s %s status=%s ip=%s time=%.3fs", scope.get("method", "?"),
                 loggable_path(scope.get("path", "")), state["status"] or "-", client[0],
                 time.monotonic() - started)


# --------------------------------------------------------------------------- CSRF

def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use); every form carries it."""
    tok = request.session.get("csrf")
    if not isinstance(tok, str) or len(tok) < 32:
        tok = secrets.token_urlsafe(32)
        request.session["csrf"] = tok
    return tok


async def checked_form(request: Request, *, max_files: int = 0,
                       max_part_size: int = 1024 * 1024) -> FormData:
    """The posted form, after its CSRF token was checked against the session (else 403)."""
    try:
        form = await request.form(max_files=max_files, max_fields=MAX_FORM_FIELDS,
                                  max_part_size=max_part_size)
    except (HTTPException, BodyTooLarge):
        raise
    except Exception:
        raise HTTPException(400, "bad form") from None
    sent = form.get("csrf")
    expected = request.session.get("csrf")
    if not isinstance(sent, str) or not isinstance(expected, str) or not expected \
            or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(403, "csrf")
    return form


def fingerprint(secret: bytes, *parts: str) -> str:
    """A short keyed digest of a password hash, kept in the session: when the password
    changes, sessions made with the old one stop working."""
    msg = b"\0".join(p.encode("utf-8") for p in ("web-session",) + parts)
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()[:32]


# --------------------------------------------------------------------------- login throttle

class LoginThrottle:
    """Failed logins cost a delay that doubles per recent failure (as POP3), counted per
    client IP and per account; one password check at a time per IP and per account, so
    parallel requests do not skip the queue. Unknown accounts are counted like real ones."""

    def __init__(self, base_delay: float):
        self.by_ip = FailureTracker(base_delay)
        self.by_account = FailureTracker(base_delay)
        self._gates: dict[str, list[Any]] = {}

    @contextlib.asynccontextmanager
    async def _gate(self, key: str):
        gate = self._gates.setdefault(key, [asyncio.Lock(), 0])
        gate[1] += 1
        try:
            async with gate[0]:
                yield
        finally:
            gate[1] -= 1
            if gate[1] == 0:
                self._gates.pop(key, None)

    @contextlib.asynccontextmanager
    async def attempt(self, ip: str, account: str):
        async with self._gate("ip:" + ip), self._gate("acct:" + account):
            yield

    async def failed(self, ip: str, account: str) -> float:
        """Record a failure and sleep for what it costs; returns the delay."""
        now = time.monotonic()
        delay = max(self.by_ip.delay(ip, now), self.by_account.delay(account, now))
        self.by_ip.failed(ip, now)
        self.by_account.failed(account, now)
        await asyncio.sleep(delay)
        return delay

    def succeeded(self, ip: str, account: str) -> None:
        self.by_ip.succeeded(ip)
        self.by_account.succeeded(account)
