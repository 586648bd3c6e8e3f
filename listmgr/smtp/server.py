"""aiosmtpd wiring: the SMTP (and optional LMTP) listeners of `listmgr serve`.

What aiosmtpd 1.4 leaves to us, done here in a subclass of its protocol (the handler,
handler.py, is policy only): the EHLO/LHLO lines (PIPELINING, ENHANCEDSTATUSCODES, no HELP),
enhanced status codes on its built-in replies (RFC 2034), the 552 5.3.4 wording for oversize mail, an idle
timer that any arriving byte restarts (so a slow 5 MB DATA is not cut off), a cap on
concurrent connections, a trailing dot on a domain tolerated, per-recipient LMTP replies
for errors found while reading DATA.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import ssl
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, syntax

from listmgr.config import split_hostport
from listmgr.smtp.handler import SIZE_EXCEEDED, IngressHandler

log = logging.getLogger("listmgr.smtp")

# aiosmtpd logs every command line (AUTH data included) at INFO: keep it to warnings.
logging.getLogger("mail.log").setLevel(logging.WARNING)

IDENT = "ESMTP listmgr"

# aiosmtpd's own replies -> ours (RFC 2034 enhanced codes, clearer words).
_REWRITE = {
    "552 Error: message size exceeds fixed maximum message size": SIZE_EXCEEDED,
    "552 Error: Too much mail data": SIZE_EXCEEDED,
    "500 Command line too long":
        "500 5.5.2 Command line too long (RFC 5321 4.5.3.1.4: 512 octets)",
    "500 Line too long (see RFC5321 4.5.3.1.6)":
        "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6: 1000 octets)",
    "500 Error: strict ASCII mode":
        "500 5.6.7 Non-ASCII in a command is not accepted (SMTPUTF8 is not offered)",
}
# Replies to DATA that LMTP must give once per recipient (RFC 2033 4.2).
_DATA_ERRORS = {SIZE_EXCEEDED, _REWRITE["500 Line too long (see RFC5321 4.5.3.1.6)"]}
_DEFAULT_DETAIL = {"221": "2.0.0", "235": "2.7.0", "250": "2.0.0", "252": "2.0.0",
                   "421": "4.7.0", "451": "4.3.0", "454": "4.7.0", "500": "5.5.2",
                   "501": "5.5.4", "502": "5.5.1", "503": "5.5.1", "504": "5.5.4",
                   "530": "5.7.0", "535": "5.7.8", "538": "5.7.11", "553": "5.1.3",
                   "554": "5.7.0", "555": "5.5.4"}
_HAS_DETAIL = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3}(?: |$)")


def ehlo_lines(hostname: str, offered: list[str]) -> list[str]:
    """Our EHLO/LHLO reply from aiosmtpd's: its extensions but HELP, plus PIPELINING
    (RFC 2920: aiosmtpd reads pipelined commands in order) and ENHANCEDSTATUSCODES."""
    keep = [line[4:] for line in offered[1:] if line[4:] != "HELP"]
    extensions = keep + ["PIPELINING", "ENHANCEDSTATUSCODES"]
    return [f"250-{hostname}"] + [f"250-{e}" for e in extensions[:-1]] + \
        [f"250 {extensions[-1]}"]


def enhance(reply: str) -> str:
    """Give an aiosmtpd built-in reply our wording and an enhanced status code."""
    if reply in _REWRITE:
        return _REWRITE[reply]
    code = reply[:3]
    if len(reply) < 4 or reply[3] != " " or not code.isdigit() or _HAS_DETAIL.match(reply):
        return reply
    if code in ("220", "334", "354"):  # greeting, AUTH challenge, DATA go-ahead
        return "220 2.0.0 Ready to start TLS" if reply == "220 Ready to start TLS" else reply
    detail = _DEFAULT_DETAIL.get(code, f"{code[0]}.0.0")
    text = reply[4:]
    if text.startswith("Error: "):
        text = text[len("Error: "):]
    return f"{code} {detail} {text}"


class ConnectionLimit:
    """How many connections a listener has open, and how many are receiving a message."""

    def __init__(self, cap: int, max_data: int = 0):
        self.cap = cap
        self.active: set[Any] = set()
        self.max_data = max_data
        self.receiving = 0  # connections inside DATA

    def acquire(self, proto: Any) -> bool:
        if self.cap and len(self.active) >= self.cap:
            return False
        self.active.add(proto)
        return True

    def release(self, proto: Any) -> None:
        self.active.discard(proto)


class _Protocol:
    """Mixin over aiosmtpd's SMTP/LMTP protocol classes (see the module docstring)."""

    local_part_limit = 64  # RFC 5321 4.5.3.1.1

    def __init__(self, handler: IngressHandler, *, limit: ConnectionLimit, **kwargs: Any):
        super().__init__(handler, **kwargs)
        # aiosmtpd keeps this dict on the class, shared by every connection: make it ours.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self._greeting: list[str] | None = None  # HELO/EHLO/LHLO lines being collected
        self._limit = limit
        self._counted = False
        self._refused = False

    # -- connections
    def connection_made(self, transport) -> None:
        if self.transport is None:  # not the second call made by STARTTLS
            self._counted = self._limit.acquire(self)
            self._refused = not self._counted
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self._counted:
            self._limit.release(self)
            self._counted = False
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        if self._refused:
            log.warning("NOQUEUE client=[%s] result=refused (too many connections)",
                        self.session.peer[0] if self.session.peer else "?")
            await self.push(f"421 4.7.0 {self.hostname} Too many connections, try later")
            self.transport.close()
            return
        await super()._handle_client()

    def data_received(self, data: bytes) -> None:
        # Any byte from the client restarts the idle timer, DATA included (aiosmtpd resets
        # it only per command, which would cut off a slow upload in mid-message).
        self._reset_timeout()
        super().data_received(data)

    # -- DATA: bounded, since aiosmtpd holds a message (twice) in memory while receiving it
    async def smtp_DATA(self, arg: str) -> None:
        gauge = self._limit
        if gauge.max_data and gauge.receiving >= gauge.max_data:
            await self.push("451 4.3.2 Too many messages arriving at once, try again later")
            return
        gauge.receiving += 1
        try:
            await super().smtp_DATA(arg)
        finally:
            gauge.receiving -= 1

    # -- greetings: aiosmtpd's lines are collected, then ours are sent (no status codes on
    # greeting lines, RFC 2034)
    async def _greet(self, command, hostname: str, extended: bool) -> None:
        self._greeting = []
        try:
            await command(hostname)
            lines = self._greeting
        finally:
            self._greeting = None
        if lines and lines[0].startswith("250"):
            if extended:
                # aiosmtpd adds SIZE's 26 octets to MAIL's limit on every EHLO; once is right.
                self.command_size_limits["MAIL"] = self.command_size_limit + 26
                lines = ehlo_lines(self.hostname, lines)
            for line in lines:
                await super().push(line)
            return
        for line in lines or []:  # a syntax error: an ordinary reply
            await self.push(line)

    # -- replies
    async def push(self, status) -> None:
        if isinstance(status, bytes):
            return await super().push(status)
        if self._greeting is not None:
            self._greeting.append(status)
            return
        reply = enhance(status)
        if reply in _DATA_ERRORS and self.envelope is not None and self.envelope.rcpt_tos:
            from listmgr.smtp.handler import log_transaction
            log_transaction("NOQUEUE", self.session, self.envelope, "?",
                            f"rejected ({reply})")
            if isinstance(self, LMTP):
                reply = "\r\n".join(reply for _ in self.envelope.rcpt_tos)
        return await super().push(reply)

    # -- SMTP AUTH (PLAIN, LOGIN; aiosmtpd offers it only after STARTTLS)
    AUTH_FAIL_DELAY = 1.0  # seconds before "535": slows down password guessing

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        # aiosmtpd calls this synchronously; the check (store, argon2) runs in
        # _finish_auth, off the event loop.
        return _PendingAuth(success=False, auth_data=auth_data)

    async def _finish_auth(self, result: AuthResult) -> AuthResult:
        if not isinstance(result, _PendingAuth):
            return result
        creds: LoginPassword = result.auth_data
        login = creds.login.decode("utf-8", "replace")
        password = creds.password.decode("utf-8", "replace")
        user = await self.event_handler.run(self.event_handler.check_login, login, password)
        if user is None:
            log.warning("AUTH failed client=[%s] login=%r", self.session.peer[0], login[:64])
            await asyncio.sleep(self.AUTH_FAIL_DELAY)
            return AuthResult(success=False, handled=False)
        log.info("AUTH ok client=[%s] user=%s", self.session.peer[0], user)
        return AuthResult(success=True, handled=False, auth_data=LoginPassword(
            user.encode(), b""))

    async def auth_PLAIN(self, _, args):
        return await self._finish_auth(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _, args):
        return await self._finish_auth(await super().auth_LOGIN(_, args))

    # -- addresses
    def _getaddr(self, arg: str):
        address, rest = super()._getaddr(arg)
        if address is None and arg:
            # A trailing dot on the domain (`<a@example.org.>`) is an absolute name: take it.
            m = re.match(r"^\s*<([^<>@]+@[^<>@]*[^<>@.])\.>(.*)$", arg)
            if m:
                address, rest = super()._getaddr(f"<{m.group(1)}>{m.group(2)}")
        return address, rest


class _PendingAuth(AuthResult):
    """Credentials parsed by aiosmtpd, not yet checked."""


class ListmgrSMTP(_Protocol, SMTP):
    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        await self._greet(super().smtp_HELO, hostname, extended=False)

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        await self._greet(super().smtp_EHLO, hostname, extended=True)


class ListmgrLMTP(_Protocol, LMTP):
    @syntax("LHLO hostname")
    async def smtp_LHLO(self, hostname: str) -> None:
        await self._greet(super().smtp_LHLO, hostname, extended=True)


def tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


class Listener:
    """One listening socket (SMTP or LMTP) as a service component."""

    def __init__(self, service: Any, name: str, listen: str, lmtp: bool = False):
        self.service = service
        self.name = name
        self.listen = listen
        self.lmtp = lmtp
        cfg = service.config
        self.handler = IngressHandler(service.app, lmtp=lmtp)
        self.limit = ConnectionLimit(cfg.smtp.max_connections, cfg.smtp.max_data_sessions)
        self.tls = None if lmtp else tls_context(cfg.smtp.tls_cert, cfg.smtp.tls_key)
        self.server: asyncio.base_events.Server | None = None

    def _factory(self) -> SMTP:
        cfg = self.service.config
        cls = ListmgrLMTP if self.lmtp else ListmgrSMTP
        return cls(self.handler, limit=self.limit, data_size_limit=cfg.smtp.max_message_size,
                   hostname=cfg.hostname, ident=IDENT, tls_context=self.tls,
                   timeout=cfg.smtp.timeout, enable_SMTPUTF8=False, decode_data=False,
                   loop=asyncio.get_running_loop())

    async def start(self) -> None:
        host, port = split_hostport(self.listen)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._factory, host, port)
        self.service.ports[self.name] = self.server.sockets[0].getsockname()[1]
        log.info("%s listening on %s:%d", self.name.upper(), host, self.service.ports[self.name])

    async def stop(self) -> None:
        if self.server is None:
            return
        self.server.close()
        for proto in list(self.limit.active):
            if proto.transport is not None:
                proto.transport.close()
        await self.server.wait_closed()
        self.server = None
        await self.handler.group.drain()
        await asyncio.to_thread(self.handler.close)  # let in-flight store work finish


def components(service: Any) -> list:
    cfg = service.config
    parts: list = [Listener(service, "smtp", cfg.smtp.listen)]
    if cfg.lmtp.listen:
        parts.append(Listener(service, "lmtp", cfg.lmtp.listen, lmtp=True))
    return parts
