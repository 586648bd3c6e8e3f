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
import inspect
import ipaddress
import logging
import re
import socket
import ssl
from typing import Any, cast

import aiosmtpd.smtp
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, syntax

from listmgr import metrics
from listmgr.config import split_hostport
from listmgr.pop3.throttle import FailureTracker
from listmgr.smtp.handler import SIZE_EXCEEDED, IngressHandler
from listmgr.store.mailboxes import normalise_ip

log = logging.getLogger("listmgr.smtp")

# aiosmtpd logs every command line (AUTH data included) at INFO: keep it to warnings.
logging.getLogger("mail.log").setLevel(logging.WARNING)
# ... and warns about its own deprecated attribute on every successful AUTH: not ours to fix.
logging.getLogger("mail.log").addFilter(
    lambda record: "login_data is deprecated" not in record.getMessage())

IDENT = "ESMTP listmgr"


class _AuthMembers:
    """Stands in for the `inspect` module inside aiosmtpd.smtp.

    aiosmtpd's protocol finds its AUTH mechanisms with inspect.getmembers(self) and
    getmembers(handler), which reads every attribute of both, on every connection: the
    largest part of the CPU a connection cost. It keeps only the members named `auth_*`, and
    those names are the same for every instance of a class, so they are found once per
    class and read from each instance. (tests/test_aiosmtpd_pin.py pins the version this
    was checked against.)"""

    def __init__(self) -> None:
        self._names: dict[type, list[str]] = {}

    def getmembers(self, obj: Any) -> list[tuple[str, Any]]:
        names = self._names.get(type(obj))
        if names is None:
            names = [n for n, _ in inspect.getmembers(obj) if n.startswith("auth_")]
            self._names[type(obj)] = names
        return [(n, getattr(obj, n)) for n in names]

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)


aiosmtpd.smtp.inspect = _AuthMembers()  # type: ignore[assignment]


_NAMES: dict[type, list[str]] = {}


def _command_names(obj: Any) -> list[str]:
    """Stands in for `dir` inside aiosmtpd.smtp, which lists every attribute of the
    protocol and of the handler on every connection to find their `smtp_*` commands and
    `handle_*` hooks: those are methods, the same for every instance of a class, so they
    are listed once per class."""
    names = _NAMES.get(type(obj))
    if names is None:
        names = _NAMES[type(obj)] = [n for n in dir(obj)
                                     if n.startswith(("smtp_", "handle_"))]
    return names


aiosmtpd.smtp.dir = _command_names  # type: ignore[attr-defined]

# MAIL FROM:<a@b> / RCPT TO:<a@b> as nearly every client writes them: a dot-atom local part
# and a domain name. Anything else (quoted local parts, address literals, comments) goes to
# aiosmtpd's full RFC 5322 parser, which costs ~100 times more.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"[ \t]*<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")

# aiosmtpd's own replies -> ours (RFC 2034 enhanced codes, clearer words).
_REWRITE = {
    "552 Error: message size exceeds fixed maximum message size": SIZE_EXCEEDED,
    "552 Error: Too much mail data": SIZE_EXCEEDED,
    "500 Command line too long":
        "500 5.5.2 Command line too long (RFC 5321 4.5.3.1.4: 512 octets)",
    "500 Line too long (see RFC5321 4.5.3.1.6)":
        "500 5.5.2 Line too long (more than 131072 octets)",
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
    """How many connections a listener has open, and how many are receiving a message, in
    all and per client IP (Postfix's anvil): one address can take at most `per_ip` of the
    connections and `data_per_ip` of the DATA slots, so the rest stay for other clients.
    Clients in `trusted` networks (relay_networks: a front-end MTA) have no per-IP cap."""

    def __init__(self, cap: int, max_data: int = 0, *, per_ip: int = 0, data_per_ip: int = 0,
                 trusted: tuple[str, ...] = ()):
        self.cap = cap
        self.active: set[Any] = set()
        self.max_data = max_data
        self.receiving = 0  # connections inside DATA
        self.per_ip = per_ip
        self.data_per_ip = data_per_ip
        self.by_ip: collections.Counter[str] = collections.Counter()
        self.data_by_ip: collections.Counter[str] = collections.Counter()
        self.trusted = tuple(ipaddress.ip_network(n, strict=False) for n in trusted)

    def is_trusted(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.trusted if net.version == addr.version)

    def acquire(self, proto: Any, ip: str = "") -> str | None:
        """None when `proto` may stay; else the 421 reply that refuses it."""
        if self.cap and len(self.active) >= self.cap:
            return "421 4.7.0 {host} Too many connections, try later"
        if self.per_ip and ip and self.by_ip[ip] >= self.per_ip and not self.is_trusted(ip):
            return "421 4.7.0 {host} Too many connections from your address, try later"
        self.active.add(proto)
        self.by_ip[ip] += 1
        return None

    def release(self, proto: Any, ip: str = "") -> None:
        if proto in self.active:
            self.active.discard(proto)
            self.by_ip[ip] -= 1
            if self.by_ip[ip] <= 0:
                del self.by_ip[ip]

    def start_data(self, ip: str) -> str | None:
        """None when a DATA slot is free for `ip` (and takes it); else the 451 reply."""
        if self.max_data and self.receiving >= self.max_data:
            return "451 4.3.2 Too many messages arriving at once, try again later"
        if self.data_per_ip and self.data_by_ip[ip] >= self.data_per_ip \
                and not self.is_trusted(ip):
            return "451 4.3.2 Too many messages arriving from your address, try again later"
        self.receiving += 1
        self.data_by_ip[ip] += 1
        return None

    def end_data(self, ip: str) -> None:
        self.receiving -= 1
        self.data_by_ip[ip] -= 1
        if self.data_by_ip[ip] <= 0:
            del self.data_by_ip[ip]


class _Protocol(SMTP):
    """aiosmtpd's protocol with our changes (see the module docstring); ListmgrLMTP puts
    LMTP between this and SMTP."""

    local_part_limit = 64  # RFC 5321 4.5.3.1.1
    # The read buffer per connection. Text lines in DATA may be longer than RFC 5321's
    # 1,000 octets, as Postfix, Exim and Sendmail accept (MUAs and web forms send them);
    # delivery breaks them for remotes (delivery/smtpclient.py). A command line is still
    # held to 512 octets.
    line_length_limit = 64 * 1024

    def __init__(self, handler: IngressHandler, *, limit: ConnectionLimit,
                 implicit_tls: bool = False, min_data_rate: int = 0, **kwargs: Any):
        super().__init__(handler, **kwargs)
        if implicit_tls:
            # The whole connection is TLS (port 465): aiosmtpd only knows STARTTLS and would
            # otherwise refuse AUTH as "encryption required".
            self._auth_require_tls = False
        # aiosmtpd keeps this dict on the class, shared by every connection: make it ours.
        self.command_size_limits: dict[str, int] = collections.defaultdict(
            lambda: SMTP.command_size_limit)
        self._greeting: list[str] | None = None  # HELO/EHLO/LHLO lines being collected
        self._limit = limit
        self._counted = False
        self._refused: str | None = None
        self._ip = ""
        self.min_data_rate = min_data_rate
        self._data_started: float | None = None  # loop time DATA began receiving
        self._data_bytes = 0
        self._idle_deadline = 0.0  # loop time the idle timeout falls due (_reset_timeout)

    # -- connections
    def connection_made(self, transport) -> None:
        if self.transport is None:  # not the second call made by STARTTLS
            peer = transport.get_extra_info("peername")
            self._ip = normalise_ip(str(peer[0])) if isinstance(peer, (tuple, list)) \
                and peer else ""
            self._refused = self._limit.acquire(self, self._ip)
            self._counted = self._refused is None
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self._counted:
            self._limit.release(self, self._ip)
            self._counted = False
        super().connection_lost(error)

    def _reset_timeout(self, duration: float | None = None) -> None:
        # aiosmtpd cancels its idle timer and makes a new one on every command, and we on
        # every chunk received: instead one timer moves a deadline, and when it fires
        # early (the client was active meanwhile) it waits again for the rest.
        deadline = self.loop.time() + (duration or self._timeout_duration)
        self._idle_deadline = deadline
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(deadline, self._idle_check)

    def _idle_check(self) -> None:
        if self.loop.time() < self._idle_deadline:
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_check)
            return
        if self.transport is not None:
            self._timeout_cb()

    def _peer_ip(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "?"

    async def _handle_client(self) -> None:
        if self._refused:
            log.warning("NOQUEUE client=[%s] result=refused (%s)", self._ip or "?",
                        self._refused[10:].format(host="").strip())
            await self.push(self._refused.format(host=self.hostname))
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    def data_received(self, data: bytes) -> None:
        # Any byte from the client restarts the idle timer, DATA included (aiosmtpd resets
        # it only per command, which would cut off a slow upload in mid-message).
        self._reset_timeout()
        if self._data_started is not None and self.min_data_rate:
            # Postfix's smtpd_min_data_rate: the message must arrive within `timeout` plus
            # the time its bytes so far take at the minimum rate; a trickle (slowloris)
            # cannot keep a DATA slot for ever by sending a byte before each idle timeout.
            self._data_bytes += len(data)
            allowed = self._timeout_duration + self._data_bytes / self.min_data_rate
            if self.loop.time() - self._data_started > allowed:
                log.warning("NOQUEUE client=[%s] result=dropped (DATA slower than %d bytes/s)",
                            self._ip or "?", self.min_data_rate)
                self._data_started = None
                transport = cast(asyncio.Transport, self.transport)
                transport.write(f"421 4.4.2 {self.hostname} Data arrives too slowly "
                                f"(less than {self.min_data_rate} bytes/s), closing "
                                f"connection\r\n".encode("ascii"))
                transport.close()
                return
        super().data_received(data)

    async def smtp_STARTTLS(self, arg: str) -> None:
        # RFC 3207 4.2: STARTTLS inside TLS is a bad sequence (aiosmtpd would nest TLS).
        if self._tls_protocol is not None:
            await self.push("503 5.5.1 TLS already active")
            return
        await super().smtp_STARTTLS(arg)

    # -- DATA: bounded, since aiosmtpd holds a message (twice) in memory while receiving it
    async def smtp_DATA(self, arg: str) -> None:
        gauge = self._limit
        refusal = gauge.start_data(self._ip)
        if refusal:
            await self.push(refusal)
            return
        self._data_started = self.loop.time()
        self._data_bytes = 0
        try:
            await self._receive_data(arg)
        finally:
            self._data_started = None
            gauge.end_data(self._ip)

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
            # one write for the whole reply, not a send per line
            await super().push("\r\n".join(lines))
            return
        for line in lines or []:  # a syntax error: an ordinary reply
            await self.push(line)

    async def _receive_data(self, arg: str) -> None:
        """aiosmtpd's DATA, reading the message in chunks instead of line by line.

        aiosmtpd runs a Python loop step per line without yielding while lines are
        buffered: a 3 MB message of 430,000 empty lines held the event loop for seconds
        and every other client waited. Here the end (CRLF.CRLF, and nothing else: SMTP
        smuggling) is found by bytes.find over chunks, dot-unstuffing is one replace, and
        what follows the end stays in the reader for the next command (pipelining).
        """
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content = await self._read_until_end()
        if content is None:
            return  # the connection is gone
        if isinstance(content, str):
            await self.push(content)  # too much data, or a line too long
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_until_end(self) -> bytes | str | None:
        """The message (unstuffed), the error reply when it was over data_size_limit, or
        None when the client went away. Lines may be of any length (Postfix accepts them
        too; delivery breaks them for remotes): the size limit bounds the memory."""
        reader, limit = self._reader, self.data_size_limit
        buf = bytearray(b"\r\n")  # a virtual CRLF: a first line "." ends an empty message
        scanned = 0
        discarding = False  # past the limit: keep reading to the end, keep nothing
        while True:
            end = buf.find(b"\r\n.\r\n", scanned)
            if end >= 0:
                break
            if limit and len(buf) - 2 > limit:
                discarding = True
            if discarding and len(buf) > 8:
                del buf[:-4]  # only what may hold the start of the end mark
            scanned = max(0, len(buf) - 4)
            chunk = await reader.read(65536)
            if not chunk:
                return None
            buf += chunk
        rest = bytes(buf[end + 5:])
        if rest:
            # pipelined commands after the end: read them next (StreamReader's private buffer)
            reader._buffer[0:0] = rest  # type: ignore[attr-defined]
        if discarding or (limit and end > limit):
            return "552 Error: Too much mail data"
        with memoryview(buf) as view:  # one copy of the message, not two
            data = view[3 if buf.startswith(b"\r\n.") else 2:end + 2].tobytes()
        # dot-unstuffing: most messages have no line starting with "." (no copy then)
        return data.replace(b"\r\n.", b"\r\n") if b"\r\n." in data else data

    # -- replies
    async def push(self, status) -> None:
        if isinstance(status, bytes):
            return await super().push(status)
        if self._greeting is not None:
            self._greeting.append(status)
            return
        reply = enhance(status)
        if reply == SIZE_EXCEEDED:
            metrics.REFUSED.labels(self.event_handler.name, "size").inc()
        if reply in _DATA_ERRORS and self.envelope is not None and self.envelope.rcpt_tos:
            from listmgr.smtp.handler import log_transaction
            log_transaction("NOQUEUE", self.session, self.envelope, "?",
                            f"rejected ({reply})")
            if isinstance(self, LMTP):
                reply = "\r\n".join(reply for _ in self.envelope.rcpt_tos)
        return await super().push(reply)

    # -- SMTP AUTH (PLAIN, LOGIN; aiosmtpd offers it only after STARTTLS or on implicit TLS)
    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        # aiosmtpd calls this synchronously; the check (store, argon2) runs in
        # _finish_auth, off the event loop.
        return _PendingAuth(success=False, auth_data=auth_data)

    async def _finish_auth(self, result: AuthResult) -> AuthResult:
        if not isinstance(result, _PendingAuth):
            return result
        creds = result.auth_data
        if not isinstance(creds, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = creds.login.decode("utf-8", "replace")
        password = creds.password.decode("utf-8", "replace")
        assert self.session is not None and self.session.peer is not None  # set on connect
        user = await self.event_handler.authenticate(self.session.peer[0], login, password)
        if user is None:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, handled=False, auth_data=LoginPassword(
            user.encode(), b""))

    async def auth_PLAIN(self, _, args):
        return await self._finish_auth(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _, args):
        return await self._finish_auth(await super().auth_LOGIN(_, args))

    # -- addresses
    def _getaddr(self, arg: str):
        m = _PLAIN_PATH.match(arg)
        if m:
            after = arg[m.end():]
            if not after or (after[0] in " \t" and "(" not in after):
                if len(m.group(1).rpartition("@")[0]) > self.local_part_limit:
                    return None, None
                return m.group(1), after.lstrip(" \t")
        address, rest = super()._getaddr(arg)
        if address is None and arg:
            # A trailing dot on the domain (`<a@example.org.>`) is an absolute name: take it.
            m = re.match(r"^\s*<([^<>@]+@[^<>@]*[^<>@.])\.>(.*)$", arg)
            if m:
                address, rest = super()._getaddr(f"<{m.group(1)}>{m.group(2)}")
        return address, rest


class _PendingAuth(AuthResult):
    """Credentials parsed by aiosmtpd, not yet checked."""


class ListmgrSMTP(_Protocol):
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
    """One listening socket (SMTP, LMTP or submission) as a service component.

    `submission`: AUTH required before MAIL (and STARTTLS before AUTH, unless the listener
    is `implicit_tls`, RFC 8314); `tls` is the certificate context for STARTTLS or for the
    implicit-TLS socket.
    """

    def __init__(self, service: Any, name: str, listen: str, lmtp: bool = False, *,
                 handler: IngressHandler | None = None, tls: ssl.SSLContext | None = None,
                 implicit_tls: bool = False, submission: bool = False,
                 sock: socket.socket | None = None):
        self.service = service
        self.sock = sock  # a socket already listening (an acceptor process's, inherited)
        self.name = name
        self.listen = listen
        self.lmtp = lmtp
        self.submission = submission
        self.implicit_tls = implicit_tls
        cfg = service.config
        self.handler = handler or IngressHandler(service.app, lmtp=lmtp)
        self.handler.failures = login_failures(service)
        self.handler.name = name
        self.limit = ConnectionLimit(cfg.smtp.max_connections, cfg.smtp.max_data_sessions,
                                     per_ip=cfg.smtp.max_connections_per_ip,
                                     data_per_ip=cfg.smtp.max_data_sessions_per_ip,
                                     trusted=cfg.smtp.relay_networks)
        if tls is None and not lmtp and not submission:
            tls = tls_context(cfg.smtp.tls_cert, cfg.smtp.tls_key)
        self.tls = tls
        self.server: asyncio.base_events.Server | None = None

    def _factory(self) -> SMTP:
        cfg = self.service.config
        cls = ListmgrLMTP if self.lmtp else ListmgrSMTP
        extra: dict[str, Any] = {}
        if self.submission:
            extra = {"auth_required": True, "require_starttls": not self.implicit_tls}
        return cls(self.handler, limit=self.limit, min_data_rate=cfg.smtp.min_data_rate,
                   data_size_limit=cfg.smtp.max_message_size,
                   hostname=cfg.hostname, ident=IDENT,
                   tls_context=None if self.implicit_tls else self.tls,
                   implicit_tls=self.implicit_tls, timeout=cfg.smtp.timeout,
                   enable_SMTPUTF8=False, decode_data=False, loop=asyncio.get_running_loop(),
                   **extra)

    async def start(self) -> None:
        host, port = split_hostport(self.listen)
        loop = asyncio.get_running_loop()
        if self.sock is not None:
            self.server = await loop.create_server(self._factory, sock=self.sock)
        elif self.implicit_tls:
            self.server = await loop.create_server(self._factory, host, port, ssl=self.tls,
                                                   ssl_handshake_timeout=30)
        else:
            self.server = await loop.create_server(self._factory, host, port)
        self.service.ports[self.name] = self.server.sockets[0].getsockname()[1]
        if self.sock is None:
            log.info("%s listening on %s:%d", self.name.upper(), host,
                     self.service.ports[self.name])

    def fileno(self) -> int:
        """The listening socket's descriptor (for acceptor processes to inherit)."""
        assert self.server is not None
        return self.server.sockets[0].fileno()

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
        await self.handler.aclose()


def login_failures(service: Any) -> FailureTracker:
    """One record of failed SMTP AUTH logins per server, shared by every listener (so that
    guessing on port 587 also slows down guessing on 465 and 25)."""
    tracker = getattr(service, "smtp_login_failures", None)
    if tracker is None:
        tracker = FailureTracker(service.config.pop3.login_failure_delay)
        service.smtp_login_failures = tracker
    return tracker


def components(service: Any) -> list:
    cfg = service.config
    smtp = Listener(service, "smtp", cfg.smtp.listen)
    parts: list = [smtp]
    if cfg.smtp.process_count > 1:
        from listmgr.smtp.acceptors import Acceptors
        parts.append(Acceptors(service, smtp))  # more processes accepting on its socket
    if cfg.lmtp.listen:
        parts.append(Listener(service, "lmtp", cfg.lmtp.listen, lmtp=True))
    return parts
