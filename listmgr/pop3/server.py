"""The POP3 listener: asyncio streams around the pure state machine in protocol.py.

Listens on `[pop3] listen` (port in service.ports["pop3"]); with `tls_cert`/`tls_key` it also
offers STLS there and listens with implicit TLS on `tls_listen` (service.ports["pop3s"]).
A successful login records a relay grant for the client IP (POP-before-SMTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import cast

from listmgr import metrics
from listmgr.app import App
from listmgr.config import Config, split_hostport
from listmgr.passwords import hash_password, verify_password
from listmgr.pop3 import protocol
from listmgr.mailbox.maildir import Maildir, MailboxBusy, MailboxLock
from listmgr.pop3.throttle import FailureTracker
from listmgr.store import mailboxes

log = logging.getLogger(__name__)


def components(service) -> list:
    return [POP3Server(service.app, service.ports)]


def tls_context(cfg: Config) -> ssl.SSLContext | None:
    if not cfg.pop3.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cfg.pop3.tls_cert, cfg.pop3.tls_key)
    return ctx


@dataclass(eq=False)
class _Conn:
    ip: str
    lock: MailboxLock | None = None
    user: str = ""
    task: asyncio.Task | None = field(default=None, repr=False)


class POP3Server:
    """`async start()` binds the listeners; `async stop()` closes them and every session."""

    def __init__(self, app: App, ports: dict[str, int]):
        self.app = app
        self.cfg = app.config
        self.ports = ports
        self.ssl = tls_context(self.cfg)
        self.tracker = FailureTracker(self.cfg.pop3.login_failure_delay)
        self._servers: list[asyncio.base_events.Server] = []
        self._conns: set[_Conn] = set()
        self._ip_gates: dict[str, list] = {}  # ip -> [asyncio.Lock, users]
        self._dummy_hash: str | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        host, port = split_hostport(self.cfg.pop3.listen)
        srv = await asyncio.start_server(lambda r, w: self._client(r, w, False), host, port,
                                         limit=protocol.MAX_PASS_LINE + 2)
        self._servers.append(srv)
        self.ports["pop3"] = srv.sockets[0].getsockname()[1]
        if self.ssl is not None and self.cfg.pop3.tls_listen:
            host, port = split_hostport(self.cfg.pop3.tls_listen)
            srv = await asyncio.start_server(lambda r, w: self._client(r, w, True), host, port,
                                             ssl=self.ssl, ssl_handshake_timeout=30,
                                             limit=protocol.MAX_PASS_LINE + 2)
            self._servers.append(srv)
            self.ports["pop3s"] = srv.sockets[0].getsockname()[1]
        log.info("pop3 listening %s", " ".join(f"{k}={v}" for k, v in self.ports.items()
                                               if k.startswith("pop3")))

    async def stop(self) -> None:
        for srv in self._servers:
            srv.close()
        tasks = [c.task for c in self._conns if c.task is not None]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for srv in self._servers:
            await srv.wait_closed()
        self._servers = []

    # ------------------------------------------------------------------ one client

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      implicit_tls: bool) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        conn = _Conn(ip=mailboxes.normalise_ip(str(peer[0])), task=asyncio.current_task())
        if len(self._conns) >= self.cfg.pop3.max_connections:
            try:
                writer.write(b"-ERR [SYS/TEMP] too many connections, try again later\r\n")
                await asyncio.wait_for(writer.drain(), 5)
            except Exception:
                pass
            finally:
                writer.close()
            return
        self._conns.add(conn)
        try:
            await self._session(conn, reader, writer, implicit_tls)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away: nothing is deleted (no UPDATE state)
        except Exception:
            log.exception("pop3 session error ip=%s user=%s", conn.ip, conn.user)
        finally:
            self._conns.discard(conn)
            if conn.lock is not None:
                conn.lock.release()
            with contextlib.suppress(Exception):
                writer.close()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), self.cfg.pop3.timeout)

    async def _readline(self, reader: asyncio.StreamReader) -> bytes | None:
        """One line; b"" at EOF; None when the line was too long (it is discarded)."""
        try:
            return await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return b""
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)
            while True:
                try:
                    await reader.readuntil(b"\n")
                    return None
                except asyncio.LimitOverrunError as more:
                    await reader.readexactly(more.consumed)

    async def _session(self, conn: _Conn, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, implicit_tls: bool) -> None:
        session = protocol.Session(hostname=self.cfg.hostname,
                                   tls_available=self.ssl is not None,
                                   tls_active=implicit_tls,
                                   require_tls=self.cfg.pop3.require_tls)
        await self._send(writer, session.greeting().encode())
        while True:
            try:
                line = await asyncio.wait_for(self._readline(reader), self.cfg.pop3.timeout)
            except TimeoutError:
                log.info("pop3 autologout ip=%s user=%s", conn.ip, conn.user)
                await self._send(writer, session.timed_out().encode())
                return
            if line == b"":
                return  # EOF: the client dropped the connection; nothing is deleted
            if line is None:
                await self._send(writer, protocol.err("command line too long").encode())
                continue
            result = session.handle(line)
            if isinstance(result, protocol.Reply):
                await self._send(writer, result.encode())
            elif isinstance(result, protocol.Retrieve):
                await self._retrieve(conn, writer, result)
                continue
            elif isinstance(result, protocol.StartTLS):
                # RFC 2595 section 4: whatever the client sent after STLS in clear text is
                # discarded, not read as commands inside TLS (command injection). Reading
                # stops before the reply goes out, so the ClientHello that answers it stays
                # in the socket for the TLS layer.
                cast(asyncio.Transport, writer.transport).pause_reading()
                reader._buffer.clear()  # type: ignore[attr-defined]
                await self._send(writer, result.reply.encode())
                assert self.ssl is not None  # STLS is offered only with a certificate
                await writer.start_tls(self.ssl, ssl_handshake_timeout=30)
                session.tls_started()
                continue
            else:
                reply = await (self._login(conn, session, result)
                               if isinstance(result, protocol.Login)
                               else self._update(conn, session, result))
                await self._send(writer, reply.encode())
                result = reply
            if result.close:
                return

    # ------------------------------------------------------------------ effects

    @contextlib.asynccontextmanager
    async def _ip_gate(self, ip: str):
        """One password check at a time per client IP, so parallel connections do not
        bypass the growing delay."""
        gate = self._ip_gates.setdefault(ip, [asyncio.Lock(), 0])
        gate[1] += 1
        try:
            async with gate[0]:
                yield
        finally:
            gate[1] -= 1
            if gate[1] == 0:
                self._ip_gates.pop(ip, None)

    def _check_password(self, user: str, password: str) -> bool:
        with self.app.store.session() as s:
            u = mailboxes.get_user(s, user)
        if u is None:
            # Spend the same time as for a real user: no telling names apart by timing.
            if self._dummy_hash is None:
                self._dummy_hash = hash_password("no such user")
            verify_password(self._dummy_hash, password)
            return False
        return verify_password(u.password_hash, password)

    def _user_name(self, given: str) -> str:
        """'alice' or 'alice@<a local domain>' -> 'alice'."""
        name = given.strip().lower()
        local, at, domain = name.rpartition("@")
        if at and domain in self.cfg.local_domains:
            name = local
        return name

    async def _login(self, conn: _Conn, session: protocol.Session,
                     login: protocol.Login) -> protocol.Reply:
        user = self._user_name(login.user)
        shown = user[:64].encode("ascii", "backslashreplace").decode()
        async with self._ip_gate(conn.ip):
            try:
                good = await asyncio.to_thread(self._check_password, user, login.password)
            except Exception:
                log.exception("pop3 login check failed ip=%s", conn.ip)
                return session.login_failed("sys")
            metrics.POP3_LOGINS.labels("ok" if good else "failed").inc()
            if not good:
                now = time.monotonic()
                delay = self.tracker.delay(conn.ip, now)
                self.tracker.failed(conn.ip, now)
                log.warning("pop3 login failed user=%s ip=%s recent_failures=%d delay=%.1fs",
                            shown, conn.ip, self.tracker.count(conn.ip, now), delay)
                await asyncio.sleep(delay)
                return session.login_failed("auth")
        self.tracker.succeeded(conn.ip)
        maildir = Maildir.for_user(self.cfg.data_dir, user)
        try:
            conn.lock = await asyncio.to_thread(maildir.lock)
        except MailboxBusy:
            log.info("pop3 login refused user=%s ip=%s reason=in-use", shown, conn.ip)
            return session.login_failed("in-use")
        try:
            entries = await asyncio.to_thread(maildir.entries)
            await asyncio.to_thread(self._grant, conn.ip, user)
        except Exception:
            log.exception("pop3 login failed user=%s ip=%s", shown, conn.ip)
            conn.lock.release()
            conn.lock = None
            return session.login_failed("sys")
        conn.user = user
        log.info("pop3 login user=%s ip=%s messages=%d relay_until=+%ds", user, conn.ip,
                 len(entries), self.cfg.pop3.relay_window)
        return session.login_ok(entries)

    def _grant(self, ip: str, user: str) -> None:
        with self.app.store.session() as s:
            mailboxes.purge_expired_grants(s)
            mailboxes.grant_relay(s, ip, user, self.cfg.pop3.relay_window)

    async def _retrieve(self, conn: _Conn, writer: asyncio.StreamWriter,
                        r: protocol.Retrieve) -> None:
        try:
            data = await asyncio.to_thread(Maildir.read, r.entry)
        except FileNotFoundError:
            await self._send(writer, protocol.err(
                f"[SYS/PERM] message {r.number} is no longer in the mailbox").encode())
            return
        head = protocol.ok(f"{len(data)} octets" if r.top is None else "top of message follows")
        await self._send(writer, head.encode() + protocol.payload(data, r.top))

    async def _update(self, conn: _Conn, session: protocol.Session,
                      update: protocol.Update) -> protocol.Reply:
        maildir = Maildir.for_user(self.cfg.data_dir, conn.user)
        failed = await asyncio.to_thread(maildir.delete_many, update.deleted)
        log.info("pop3 logout user=%s ip=%s deleted=%d failed=%d", conn.user, conn.ip,
                 len(update.deleted) - failed, failed)
        return session.update_done(failed)
