"""The SMTP/LMTP policy hooks: who may send what to whom, and storing what we accept.

Every hook returns its reply string explicitly. Store and spool work runs off the event
loop, in the handler's own thread pool (so a burst of fsyncs does not starve the
workers' threads, nor they us). A message is in the spool (fsynced) and its inbound rows are
committed before the client sees `250`; the commits of concurrent sessions are grouped
(listmgr.smtp.groupcommit). Mail for local mailboxes only (none with an auto-reply) is put
into the Maildirs instead, fsynced, before the `250` (listmgr.mailbox.at_ingress). Lookups
(RCPT, AUTH) read without taking the store's write lock; on SQLite the RCPT lookup runs on
the event loop itself (store.directory.InlineNames). Any bug answers `451 4.3.0`, never a
traceback.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from listmgr import metrics
from listmgr.app import App
from listmgr.diskspace import INSUFFICIENT_STORAGE, has_room, is_transient
from listmgr.mail import mimelimits, trace
from listmgr.mail.addresses import MAX_ADDRESS
from listmgr.mail.compose import normalise_line_ends
from listmgr.mail.hops import too_many_hops
from listmgr.mailbox import at_ingress
from listmgr.passwords import hash_password, verify_password
from listmgr.pop3.throttle import FailureTracker
from listmgr.smtp.gate import RelayGate
from listmgr.smtp.groupcommit import Accepted, GroupCommit
from listmgr.smtp.routing import Destination, Refusal, questions, relaying_denied, route
from listmgr.spool import new_queue_id
from listmgr.store import directory, inbound
from listmgr.store.db import sqlite_file
from listmgr.store.mailboxes import get_user, normalise_ip
from listmgr.store.models import utcnow

log = logging.getLogger("listmgr.smtp")

INTERNAL_ERROR = "451 4.3.0 Internal error, please try again later"
SIZE_EXCEEDED = "552 5.3.4 Message size exceeds fixed maximum message size"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
THREADS = 16  # store lookups and spool fsyncs in flight at once, per listener
# Mail for mailboxes only is written into them at DATA up to this many octets in all its
# copies (1,000 recipients of a 5 MB message would keep the client waiting for 5 GB of
# writes); above it, the spool and the mailbox worker.
AT_INGRESS_MAX_OCTETS = 64 * 1024 * 1024
# ... and up to this (all copies), by the one batch-writing thread (at_ingress.BatchWriter);
# bigger ones by the pool, so a long write does not hold up the small messages
BATCH_MAX_OCTETS = 256 * 1024


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password("no such user")


class NoRoom(Exception):
    """The disk is too full to store the message now (452 4.3.1)."""


def _size_param(mail_options: list[str]) -> int:
    """MAIL FROM's SIZE= value (RFC 1870), 0 when absent or not a number."""
    for opt in mail_options:
        key, _, value = opt.partition("=")
        if key.upper() == "SIZE" and value.isdigit() and len(value) < 20:
            return int(value)
    return 0


class TooComplex(Exception):
    """The message passes a MIME structure limit (mail/mimelimits.py)."""


class TooManyHops(Exception):
    def __init__(self, hops: int):
        super().__init__(hops)
        self.hops = hops


@dataclass
class Transaction:
    """What we learnt about one MAIL transaction (kept on the aiosmtpd Envelope)."""

    destinations: list[Destination] = field(default_factory=list)
    autoreply: bool = False  # a local recipient has an auto-reply on

    def mailboxes_only(self) -> bool:
        """Every recipient a local mailbox, none with an auto-reply on."""
        return bool(self.destinations) and not self.autoreply and \
            all(d.kind == "local" for d in self.destinations)


def _tx(envelope) -> Transaction:
    tx = getattr(envelope, "listmgr", None)
    if tx is None:
        tx = envelope.listmgr = Transaction()
    return tx


def printable(text: str | None) -> str:
    """Visible ASCII only (a HELO name is client-supplied and goes into headers and logs)."""
    return re.sub(r"[^\x21-\x7e]", "?", text or "")


def client_ip(session) -> str:
    peer = session.peer
    if isinstance(peer, (tuple, list)) and peer:
        return normalise_ip(str(peer[0]))
    return str(peer or "")


def client_desc(session) -> str:
    return f"{printable(session.host_name) or 'unknown'}[{client_ip(session)}]"


def sender_of(envelope) -> str:
    """The envelope sender as stored: "" for the null sender."""
    mail_from = envelope.mail_from or ""
    return "" if mail_from == "<>" else mail_from


def log_transaction(queue_id: str, session, envelope, size: int | str, result: str) -> None:
    """One line per transaction (Postfix style): queue id first, then key=value pairs."""
    to = ",".join(f"<{r}>" for r in envelope.rcpt_tos)
    log.info("%s client=%s from=<%s> to=%s size=%s result=%s", queue_id, client_desc(session),
             sender_of(envelope), to, size, result)


def _autoreplying(dest: Destination | Refusal, names: directory.Prefetched) -> bool:
    return isinstance(dest, Destination) and dest.kind == "local" and \
        dest.target.lower() in names.autoreplying


class IngressHandler:
    """aiosmtpd handler shared by the SMTP and LMTP listeners."""

    def __init__(self, app: App, *, lmtp: bool = False):
        self.app = app
        cfg = app.config
        self.lmtp = lmtp
        self.name = "lmtp" if lmtp else "smtp"  # the listener's name (metrics labels)
        self.local_domains = cfg.local_domains
        self.max_recipients = cfg.smtp.max_recipients
        self.gate = RelayGate(cfg.smtp.relay_networks, cfg.pop3.relay_window)
        self.executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="smtp")
        # Failed AUTH logins per client IP; the listener shares one tracker between its
        # listeners (server.login_failures).
        self.failures = FailureTracker(cfg.pop3.login_failure_delay)
        self._auth_gates: dict[str, list] = {}  # ip -> [asyncio.Lock, waiters]
        self.group = GroupCommit(app, self.run)
        self.writer = at_ingress.BatchWriter(f"{self.name}-mailbox-writer")
        self.mailbox_at_ingress = cfg.smtp.mailbox_at_ingress
        # RCPT's lookup on the event loop itself (SQLite; a file, not :memory:)
        path = sqlite_file(app.store.url) if app.store.is_sqlite else None
        self.inline = directory.InlineNames(str(path)) if path is not None else None
        # ... and on PostgreSQL over an asynchronous connection of the event loop's own
        self.async_names = directory.AsyncNames.for_url(app.store.url) \
            if app.store.engine.dialect.name == "postgresql" else None
        # Wakes the inbound workers of a kind just queued: app.notify in the server's own
        # process; in an acceptor process (smtp/acceptors.py), a datagram to the server.
        self.wake = app.notify

    async def run(self, fn, *args):
        """fn(*args) in the ingress thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def aclose(self) -> None:
        """Close what lives on the event loop (after close())."""
        if self.async_names is not None:
            await self.async_names.close()

    def close(self) -> None:
        self.writer.close()
        self.executor.shutdown(wait=True)
        if self.inline is not None:
            self.inline.close()

    # ------------------------------------------------------------------ greeting
    # HELO/EHLO/LHLO: aiosmtpd records the client's name; the protocol subclass
    # (server.py) builds the greeting lines.

    async def handle_QUIT(self, server, session, envelope):
        return f"221 2.0.0 {server.hostname} closing connection"

    # ------------------------------------------------------------------ envelope

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address != "<>":
            if printable(address) != address or any(c in address for c in "<>\\") \
                    or len(address) > MAX_ADDRESS:
                return "553 5.1.7 Bad sender address syntax"
            if "@" not in address:
                return f"553 5.1.8 <{address}>... Domain name required for sender address"
        size = _size_param(mail_options)
        if not self._has_room(size):  # one statvfs: not worth a trip to the thread pool
            # RFC 1870 6.2 and Postfix's queue_minfree: refuse what cannot be stored now.
            log.warning("NOQUEUE client=%s from=<%s> result=deferred (%s, size=%d)",
                        client_desc(session), address, INSUFFICIENT_STORAGE, size)
            return INSUFFICIENT_STORAGE
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.listmgr = Transaction()
        return "250 2.1.0 Sender ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= self.max_recipients:
            metrics.REFUSED.labels(self.name, "too_many_recipients").inc()
            return TOO_MANY_RECIPIENTS
        ip, authenticated = client_ip(session), bool(getattr(session, "authenticated", False))
        try:
            routed = self._route_inline(address, ip, authenticated)
            if routed is None and self.async_names is not None:
                routed = await self._route_async(address, ip, authenticated)
            if routed is None:
                routed = await self.run(self._route, address, ip, authenticated)
        except Exception:
            log.exception("RCPT <%s> from %s: lookup failed", address, client_desc(session))
            return INTERNAL_ERROR
        dest, autoreply = routed
        if isinstance(dest, Refusal):
            metrics.REFUSED.labels(self.name, metrics.refusal_reason(dest.reply)).inc()
            log.info("NOQUEUE client=%s from=<%s> to=<%s> result=rejected (%s)",
                     client_desc(session), sender_of(envelope), address, dest.reply)
            return dest.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        tx = _tx(envelope)
        tx.destinations.append(dest)
        tx.autoreply = tx.autoreply or autoreply
        return "250 2.1.5 Recipient ok"

    def _has_room(self, size: int) -> bool:
        return has_room(self.app.config.data_dir, size, self.app.config.smtp.min_free_space)

    def _route(self, address: str, ip: str, authenticated: bool
               ) -> tuple[Destination | Refusal, bool]:
        """(where `address` goes or why not, whether it is a mailbox with an auto-reply)"""
        # every list and user name the route may need, read in one statement
        lists, users = questions(address, self.local_domains)
        with directory.lookup(self.app.store, lists, users) as names:
            dest = route(address, self.local_domains, names)
        if isinstance(dest, Destination) and dest.kind == "relay" \
                and not self.gate.allowed_without_store(ip, authenticated):
            with self.app.store.read_session() as s:
                if not self.gate.allowed(s, ip, authenticated):
                    return relaying_denied(address), False
        return dest, _autoreplying(dest, names)

    def _route_inline(self, address: str, ip: str, authenticated: bool
                      ) -> tuple[Destination | Refusal, bool] | None:
        """_route on the event loop, on SQLite; None when the answer needs the thread pool
        (a name the one statement did not read, a relay grant to look up, a database
        that cannot answer at once)."""
        if self.inline is None:
            return None
        lists, users = questions(address, self.local_domains)
        try:
            return self._routed(address, ip, authenticated, self.inline.read(lists, users))
        except (sqlite3.Error, directory.NotRead):
            return None

    async def _route_async(self, address: str, ip: str, authenticated: bool
                           ) -> tuple[Destination | Refusal, bool] | None:
        """_route on the event loop, on PostgreSQL (directory.AsyncNames); None when the
        answer needs the thread pool, as for _route_inline (or the connection failed)."""
        if self.async_names is None:
            return None
        lists, users = questions(address, self.local_domains)
        try:
            names = await self.async_names.read(lists, users)
        except Exception as exc:  # noqa: BLE001 - the thread pool asks instead
            log.debug("RCPT <%s>: inline lookup failed (%r); through the pool", address, exc)
            return None
        try:
            return self._routed(address, ip, authenticated, names)
        except directory.NotRead:
            return None

    def _routed(self, address: str, ip: str, authenticated: bool, names
                ) -> tuple[Destination | Refusal, bool] | None:
        """The route from names read on the event loop; None when a relay grant must be
        looked up (raises NotRead for a name they do not hold)."""
        dest = route(address, self.local_domains, names)
        if isinstance(dest, Destination) and dest.kind == "relay" \
                and not self.gate.allowed_without_store(ip, authenticated):
            return None
        return dest, _autoreplying(dest, names)

    # ------------------------------------------------------------------ message

    async def handle_DATA(self, server, session, envelope):
        queue_id = new_queue_id()
        tx = _tx(envelope)
        octets = len(envelope.original_content or b"") * len(envelope.rcpt_tos)
        at_ingress = self.mailbox_at_ingress and tx.mailboxes_only() and \
            octets <= AT_INGRESS_MAX_OCTETS
        try:
            if at_ingress:
                try:
                    if octets <= BATCH_MAX_OCTETS:  # small: the batch writer's thread
                        size = await self.writer.submit(self._copies, queue_id, session,
                                                        envelope)
                    else:
                        size = await self.run(self._into_mailboxes, queue_id, session,
                                              envelope)
                except OSError as exc:
                    if is_transient(exc):  # a write or a directory fsync, on a full disk
                        raise NoRoom() from exc
                    raise
            else:
                item = await self.run(self._spool, queue_id, session, envelope)
                try:
                    await self.group.commit(item)
                except BaseException as exc:
                    await self.run(self.app.spool.remove, item.spool_path)
                    if is_transient(exc):
                        raise NoRoom() from exc
                    raise
                size = item.size
        except TooManyHops as exc:
            reply = f"554 5.4.6 Too many hops ({exc.hops} Received: headers): mail loop?"
            metrics.REFUSED.labels(self.name, "loop").inc()
            log_transaction("NOQUEUE", session, envelope, "?", f"rejected ({reply})")
            return self._per_recipient(envelope, reply)
        except NoRoom:
            log_transaction("NOQUEUE", session, envelope, "?",
                            f"deferred ({INSUFFICIENT_STORAGE})")
            return self._per_recipient(envelope, INSUFFICIENT_STORAGE)
        except TooComplex as exc:
            reply = f"554 5.6.0 Message refused: {exc}"
            log_transaction("NOQUEUE", session, envelope, "?", f"rejected ({reply})")
            return self._per_recipient(envelope, reply)
        except Exception:
            log.exception("%s client=%s: could not store the message", queue_id,
                          client_desc(session))
            log_transaction(queue_id, session, envelope, "?", "deferred (451 4.3.0)")
            metrics.REFUSED.labels(self.name, "internal_error").inc()
            return self._per_recipient(envelope, INTERNAL_ERROR)
        metrics.ACCEPTED.labels(self.name).inc()
        done = "delivered" if at_ingress else "queued"
        if not at_ingress:
            for kind in {d.kind for d in tx.destinations}:
                self.wake(f"inbound:{kind}")  # only the workers of these kinds wake
        log_transaction(queue_id, session, envelope, size, done)
        if self.lmtp:
            return "\r\n".join(f"250 2.1.5 <{r}> Ok: {done} as {queue_id}"
                               for r in envelope.rcpt_tos)
        return f"250 2.0.0 Ok: {done} as {queue_id}"

    def _per_recipient(self, envelope, reply: str) -> str:
        """LMTP answers DATA once per recipient (RFC 2033 4.2); SMTP once."""
        if self.lmtp:
            return "\r\n".join(reply for _ in envelope.rcpt_tos)
        return reply

    def _checked(self, envelope, copies: int) -> bytes:
        """The message's bytes (CRLF line ends), if we take it: TooManyHops, TooComplex or
        NoRoom (no room for `copies` of it) if not."""
        data = normalise_line_ends(envelope.original_content or b"")
        hops = too_many_hops(data)
        if hops is not None:
            raise TooManyHops(hops)
        # Refused here, before 250, so the sender's MTA tells the sender; nothing later
        # parses a structure that would cost more than the limits allow.
        too_complex = mimelimits.check(data)
        if too_complex:
            raise TooComplex(too_complex)
        if not self._has_room(len(data) * copies):
            raise NoRoom()
        return data

    def _into_mailboxes(self, queue_id: str, session, envelope) -> int:
        """Deliver the message to its recipients' mailboxes (listmgr.mailbox.at_ingress);
        returns the octets written."""
        copies = self._copies(queue_id, session, envelope)
        try:
            copies.sync()
        except BaseException:
            copies.discard()
            raise
        copies.log()
        return copies.size

    def _copies(self, queue_id: str, session, envelope) -> at_ingress.Copies:
        """The message written into its recipients' mailboxes, the names in new/ not yet
        made durable (the caller's part; handle_DATA answers a full disk with 452)."""
        data = self._checked(envelope, len(envelope.rcpt_tos))
        cfg = self.app.config
        recipients = [(rcpt, d.target) for rcpt, d
                      in zip(envelope.rcpt_tos, _tx(envelope).destinations)]
        return at_ingress.write(
            cfg.data_dir, cfg.hostname, cfg.domain, queue_id,
            mail_from=sender_of(envelope), helo=printable(session.host_name),
            ip=client_ip(session), when=utcnow(), protocol="LMTP" if self.lmtp else "ESMTP",
            recipients=recipients, data=data)

    def _spool(self, queue_id: str, session, envelope) -> Accepted:
        """Write the message to the spool (its bytes fsynced); its rows are committed by
        the group commit, which also makes its name in the spool durable."""
        data = self._checked(envelope, 1)
        if self.lmtp:  # the trace of this hop is added on arrival (mail/trace.py)
            rcpt = envelope.rcpt_tos[0] if len(envelope.rcpt_tos) == 1 else None
            data = trace.received(self.app.config.hostname, printable(session.host_name),
                                  client_ip(session), queue_id, utcnow(), "LMTP", rcpt) + data
        item = Accepted(queue_id=queue_id, spool_path="", mail_from=sender_of(envelope),
                        client_ip=client_ip(session),
                        client_helo=printable(session.host_name)[:255], size=len(data),
                        destinations=[inbound.Destination(d.kind, d.target, rcpt) for rcpt, d
                                      in zip(envelope.rcpt_tos, _tx(envelope).destinations)])
        try:
            item.spool_path = self.app.spool.write("in", data, queue_id, sync_dir=False)
        except OSError as exc:
            if is_transient(exc):
                raise NoRoom() from exc
            raise
        return item

    # ------------------------------------------------------------------ AUTH

    async def authenticate(self, peer_ip: str, login: str, password: str) -> str | None:
        """SMTP AUTH: the mailbox user's name, or None after the failure delay.

        The argon2 check runs in the ingress thread pool; one check at a time per client IP,
        and each failure costs a delay that doubles per recent failure from that IP (the
        POP3 login throttle, `[pop3] login_failure_delay`), so parallel connections do not
        speed up guessing.
        """
        ip = normalise_ip(str(peer_ip))
        shown = login[:64].encode("ascii", "backslashreplace").decode()
        gate = self._auth_gates.setdefault(ip, [asyncio.Lock(), 0])
        gate[1] += 1
        try:
            async with gate[0]:
                try:
                    user = await self.run(self.check_login, login, password)
                except Exception:
                    log.exception("AUTH check failed client=[%s]", ip)
                    user = None
                metrics.SMTP_AUTH.labels("ok" if user else "failed").inc()
                if user is None:
                    now = time.monotonic()
                    delay = self.failures.delay(ip, now)
                    self.failures.failed(ip, now)
                    log.warning("AUTH failed client=[%s] login=%s recent_failures=%d "
                                "delay=%.1fs", ip, shown, self.failures.count(ip, now), delay)
                    await asyncio.sleep(delay)
                    return None
        finally:
            gate[1] -= 1
            if gate[1] == 0:
                self._auth_gates.pop(ip, None)
        self.failures.succeeded(ip)
        log.info("AUTH ok client=[%s] user=%s", ip, user)
        return user

    def check_login(self, login: str, password: str) -> str | None:
        """SMTP AUTH (offered over TLS only): the mailbox user's name, or None.

        `alice` and `alice@<local domain>` both name mailbox user alice. An unknown name
        costs the same argon2 work as a wrong password (no telling names apart by timing).
        """
        name, at, domain = login.strip().lower().rpartition("@")
        if not at:
            name = domain
        elif domain.rstrip(".") not in self.local_domains:
            name = ""
        user = None
        if name:
            with self.app.store.read_session() as s:
                user = get_user(s, name)
        if user is None:
            verify_password(_dummy_hash(), password)
            return None
        if not verify_password(user.password_hash, password):
            return None
        return name

    # ------------------------------------------------------------------ errors

    async def handle_exception(self, error):
        log.error("SMTP session error: %r", error, exc_info=error)
        return INTERNAL_ERROR
