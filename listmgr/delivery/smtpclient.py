"""A small SMTP client on an asyncio protocol, with PIPELINING (RFC 2920).

Why not aiosmtplib: it reads one reply per command written (its `read_response` says so), so
a 50-recipient transaction costs 50 round trips; pipelining MAIL and every RCPT in one write
costs one. This client does only what delivery needs: greeting, EHLO (HELO fallback),
STARTTLS, MAIL/RCPT/DATA/RSET/QUIT, and replies as data (a refused recipient is a value, not
an exception). Addresses are checked before they reach a command line (no CR, LF, NUL).

Replies are parsed straight from what the protocol received (`_Wire`), without a stream
reader; one timer per connection guards every wait for a reply. Transactions of one
payload with their own envelopes (VERP: one per member) run from the replies as they
arrive (`_GroupRun`): no task switch per transaction.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from listmgr.delivery.queue import Reply, validate_address


class SMTPClientError(Exception):
    """The connection is unusable: dropped, timed out, or the server spoke nonsense."""


# One reply's limits (Postfix reads at most `smtp_line_length_limit` per line, and a real
# EHLO reply is a few hundred octets): past either, the remote is hostile or broken and
# the recipients are deferred, instead of buffering whatever it keeps sending.
MAX_REPLY_LINES = 1000
MAX_REPLY_BYTES = 64 * 1024
KNOWN_REPLIES = 64  # distinct one-line replies a connection keeps parsed


MAX_LINE = 998  # octets of text per line, without CRLF (RFC 5322 2.1.1)
_LONG_LINE = re.compile(rb"[^\n]{%d,}" % (MAX_LINE + 1))


def _fold(m: re.Match[bytes]) -> bytes:
    line = m.group(0)
    return b"\n ".join(line[i:i + MAX_LINE - 1] if i else line[:MAX_LINE]
                       for i in _cuts(len(line)))


def _cuts(n: int) -> list[int]:
    """Where pieces start: the first holds MAX_LINE octets, each later one MAX_LINE - 1
    (its line starts with the inserted space)."""
    out, i = [0], MAX_LINE
    while i < n:
        out.append(i)
        i += MAX_LINE - 1
    return out


def prepare_payload(data: bytes) -> bytes:
    """Message bytes as they go after DATA: canonical CRLF, dot-stuffed, with the final
    `.` line (RFC 5321 4.5.2). Done once per message, however many transactions.

    A line longer than 998 octets is broken by inserting CRLF and a space (Postfix's
    smtp_line_length_limit): in a header that is a fold, and no remote refuses the mail."""
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if data and not data.endswith(b"\n"):
        data += b"\n"
    data = _LONG_LINE.sub(_fold, data)
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\n.", b"\n..")
    return data.replace(b"\n", b"\r\n") + b".\r\n"


def _tls_context() -> ssl.SSLContext:
    # Opportunistic TLS (RFC 7435), as Postfix's `may` level: encrypt when offered, without
    # verifying the certificate (most MX certificates would not verify anyway).
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(slots=True)
class TxResult:
    """Replies of one transaction: to MAIL, to each RCPT (in order), to the data."""

    mail: Reply
    rcpts: list[Reply]
    data: Reply | None  # None when no recipient was accepted (or MAIL was refused)


class _Wire(asyncio.Protocol):
    """The receiving side of a connection: what arrived, end of stream, write flow control.
    The client parses replies straight from `buf` (no stream reader, no future per read
    unless it has to wait)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closed = False          # EOF or connection lost
        self.error: Exception | None = None
        self.paused = False          # the transport's write buffer is over its high mark
        self.waiter: asyncio.Future | None = None   # the client waiting for data
        self.drained: asyncio.Future | None = None  # the client waiting for write room
        self.reading = True
        self.on_data: Callable[[], None] | None = None  # set while a pipelined group runs: it reads replies as they come

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > 4 * MAX_REPLY_BYTES and self.reading and self.transport:
            # Replies nobody has asked for yet pile up: stop reading until they are parsed.
            self.transport.pause_reading()
            self.reading = False
        if self.on_data is not None:
            self.on_data()
        else:
            self._wake(self.waiter)

    def eof_received(self) -> bool:
        self.closed = True
        self._wake(self.waiter)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake(self.waiter)
        self._wake(self.drained)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake(self.drained)

    def consumed(self) -> None:
        """The client took replies off `buf`: read again if reading was paused."""
        if not self.reading and len(self.buf) <= MAX_REPLY_BYTES and self.transport \
                and not self.closed:
            self.reading = True
            self.transport.resume_reading()

    @staticmethod
    def _wake(fut: asyncio.Future | None) -> None:
        if fut is not None and not fut.done():
            fut.set_result(None)


class SMTPClient:
    def __init__(self, wire: _Wire, *, timeout: float, host: str):
        self._wire = wire
        assert wire.transport is not None
        self.transport: asyncio.Transport = wire.transport
        self._loop = asyncio.get_running_loop()
        self.timeout = timeout
        self.host = host  # the name we talk to (Remote-MTA)
        self.extensions: dict[str, str] = {}
        self.tls = False
        self.dirty = False  # a transaction was begun and not finished: RSET before the next
        self._rbuf = wire.buf  # received, not yet parsed
        # One timer per connection guards every wait for a reply: each wait (and each
        # arrival of data during one) moves `_deadline`; the timer, when it fires early,
        # re-arms itself for the current deadline instead of being re-armed per read.
        self._deadline = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._plines: list[str] = []  # lines of a multi-line reply not yet complete
        self._known: dict[bytes, Reply] = {}  # one-line replies as received -> parsed
        self._psize = 0               # and their octets

    # ----------------------------------------------------------------- connection

    @classmethod
    async def connect(cls, address: str, port: int, *, host: str, helo: str,
                      timeout: float, connect_timeout: float, starttls: bool = True
                      ) -> tuple["SMTPClient", Reply]:
        """Connect, read the greeting, EHLO, STARTTLS when offered. Returns (client, greeting);
        the caller closes the client when the greeting is not 2xx."""
        loop = asyncio.get_running_loop()
        try:
            _, wire = await asyncio.wait_for(
                loop.create_connection(_Wire, address, port), connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise SMTPClientError(_describe(exc, "connect to", host)) from None
        client = cls(wire, timeout=timeout, host=host)
        try:
            greeting = await client.read_reply()
            if greeting.code != 220:
                return client, greeting
            await client.hello(helo)
            if starttls and "STARTTLS" in client.extensions:
                reply = await client.command("STARTTLS")
                if reply.code == 220:
                    # Anything sent with the 220 in plaintext is dropped, never read as a
                    # reply inside TLS (RFC 3207 section 6; response injection).
                    client._rbuf.clear()
                    try:
                        tls = await asyncio.wait_for(loop.start_tls(
                            client.transport, wire, _tls_context(),
                            server_hostname=host or None), connect_timeout)
                    except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
                        raise SMTPClientError(f"TLS handshake with {host} failed: {exc}") from None
                    if tls is None:
                        raise SMTPClientError(f"TLS handshake with {host} failed: closed")
                    client.transport = tls
                    wire.transport = tls
                    client.tls = True
                    client.extensions = {}
                    await client.hello(helo)
            return client, greeting
        except BaseException:
            client.close()
            raise

    async def hello(self, name: str) -> Reply:
        reply = await self.command(f"EHLO {name}")
        if reply.code == 250:
            exts = {}
            for line in reply.text.split("\n")[1:]:
                key, _, value = line.strip().partition(" ")
                exts[key.upper()] = value
            self.extensions = exts
            return reply
        reply = await self.command(f"HELO {name}")
        if reply.code != 250:
            raise SMTPClientError(f"{self.host} refused HELO: {reply.line()}")
        self.extensions = {}
        return reply

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        try:
            self.transport.close()
        except Exception:  # already gone
            pass

    async def quit(self) -> None:
        try:
            if not self.transport.is_closing():
                self.transport.write(b"QUIT\r\n")
                await asyncio.wait_for(self.read_reply(), min(self.timeout, 5.0))
        except Exception:
            pass
        finally:
            self.close()

    @property
    def usable(self) -> bool:
        return not self.transport.is_closing() and not self._wire.closed

    # ----------------------------------------------------------------- wire

    async def read_reply(self) -> Reply:
        """One (possibly multi-line) reply; text lines joined with newlines."""
        return (await self.read_replies(1))[0]

    async def read_replies(self, n: int) -> list[Reply]:
        """`n` replies in order (pipelined commands). Each wait for data has `timeout`
        seconds of its own: a server that answers a long pipelined batch steadily is waited
        for, one that stalls is given up on after one timeout, however long the batch.
        Replies are parsed from what has arrived: a pipelined group's replies usually come
        in one piece, and then nothing waits at all."""
        try:
            return await self._replies(n)
        except OSError as exc:
            raise SMTPClientError(_describe(exc, "read from", self.host)) from None

    async def _more(self) -> None:
        """Wait for more data: at most `timeout` seconds without any arriving."""
        wire = self._wire
        if wire.closed:
            if wire.error is not None:
                raise wire.error
            raise SMTPClientError(f"connection to {self.host} lost")
        await self._wait(self._loop.create_future())

    async def _wait(self, fut: asyncio.Future) -> None:
        """Wait on `fut`, the wire's waiter until it is done: at most `timeout` seconds
        without data (the watchdog's deadline moves, its timer is armed once)."""
        wire = self._wire
        wire.waiter = fut
        self._deadline = self._loop.time() + self.timeout
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(self._deadline, self._watch)
        try:
            await fut
        finally:
            wire.waiter = None
        if fut.result() is not None:  # the watchdog's verdict
            raise SMTPClientError(f"timeout waiting for a reply from {self.host}")

    def _watch(self) -> None:
        self._watchdog = None
        fut = self._wire.waiter
        if fut is None or fut.done():
            return  # nobody waits: the next wait arms the timer again
        now = self._loop.time()
        if now >= self._deadline:
            fut.set_result("timeout")
        else:
            self._watchdog = self._loop.call_at(self._deadline, self._watch)

    async def _replies(self, n: int) -> list[Reply]:
        out: list[Reply] = []
        while True:
            self._parse(out, n)
            if len(out) >= n:
                return out
            await self._more()

    def _parse(self, out: list[Reply], n: int) -> None:
        """Move complete replies from what has arrived to `out`, until it holds `n`. A
        reply's lines may arrive in pieces: the lines so far are kept between calls.

        A one-line reply seen before is the same Reply object again (`_known`): a server
        says `250 2.1.5 Ok` to every RCPT, and a VERP post sends one transaction per member."""
        buf = self._rbuf
        lines = self._plines
        known = self._known
        try:
            while len(out) < n:
                nl = buf.find(b"\n")
                if nl < 0:
                    if self._psize + len(buf) > MAX_REPLY_BYTES:
                        raise SMTPClientError(self._overlong())
                    return
                if not lines:
                    raw = bytes(buf[:nl + 1])
                    reply = known.get(raw)
                    if reply is not None:
                        del buf[:nl + 1]
                        out.append(reply)
                        continue
                self._psize += nl + 1
                if self._psize > MAX_REPLY_BYTES or len(lines) >= MAX_REPLY_LINES:
                    raise SMTPClientError(self._overlong())
                raw = bytes(buf[:nl + 1])
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                del buf[:nl + 1]
                code = line[:3]
                if len(line) < 3 or not code.isdigit() or not code.isascii():
                    raise SMTPClientError(f"{self.host} sent a malformed reply: {line[:80]!r}")
                if line[3:4] == "-":
                    lines.append(line[4:])
                    continue
                if lines:
                    lines.append(line[4:])
                    out.append(Reply(int(code), "\n".join(lines)))
                    lines.clear()
                else:
                    reply = Reply(int(code), line[4:])
                    if len(known) < KNOWN_REPLIES:
                        known[raw] = reply
                    out.append(reply)
                self._psize = 0
        finally:
            self._wire.consumed()

    def _overlong(self) -> str:
        return (f"{self.host} sent an overlong reply (more than {MAX_REPLY_LINES} lines or "
                f"{MAX_REPLY_BYTES} bytes)")

    async def _send(self, data: bytes) -> None:
        wire = self._wire
        if wire.closed or self.transport.is_closing():
            raise SMTPClientError(f"connection to {self.host} lost")
        try:
            self.transport.write(data)
        except OSError as exc:
            raise SMTPClientError(_describe(exc, "write to", self.host)) from None
        if wire.paused:
            fut = wire.drained = self._loop.create_future()
            try:
                await asyncio.wait_for(fut, self.timeout)
            except asyncio.TimeoutError:
                raise SMTPClientError(f"timeout writing to {self.host}") from None
            finally:
                wire.drained = None
            if wire.closed:
                raise SMTPClientError(f"connection to {self.host} lost")

    async def command(self, line: str) -> Reply:
        if any(c in line for c in "\r\n\0"):
            raise ValueError("refusing a command with CR, LF or NUL")
        await self._send(line.encode("utf-8") + b"\r\n")
        return await self.read_reply()

    # ----------------------------------------------------------------- transactions

    async def rset(self) -> None:
        reply = await self.command("RSET")
        if reply.code != 250:
            raise SMTPClientError(f"{self.host} refused RSET: {reply.line()}")
        self.dirty = False

    async def transaction(self, mail_from: str, rcpts: list[str], payload: bytes, *,
                          head: bytes = b"") -> TxResult:
        """MAIL, RCPT for each, DATA and the prepared payload. Per-recipient replies are data.

        `payload` comes from prepare_payload; `head` (CRLF header lines, none starting with
        a dot) goes before it. With PIPELINING, MAIL and all RCPTs go in one
        write and their replies are read in order (RFC 2920 3.1).
        """
        if mail_from and not validate_address(mail_from):
            raise ValueError(f"unsafe sender {mail_from!r}")
        for r in rcpts:
            if not validate_address(r):
                raise ValueError(f"unsafe recipient {r!r}")
        if self.dirty:
            await self.rset()
        self.dirty = True
        mail_cmd, rcpt_cmds = self._envelope(mail_from, rcpts)
        if "PIPELINING" in self.extensions:
            await self._send(mail_cmd + b"".join(rcpt_cmds))
            mail, *replies = await self.read_replies(1 + len(rcpts))
        else:
            await self._send(mail_cmd)
            mail = await self.read_reply()
            replies = []
            if 200 <= mail.code < 300:
                for cmd in rcpt_cmds:
                    await self._send(cmd)
                    replies.append(await self.read_reply())
        if not 200 <= mail.code < 300:
            # Pipelined RCPTs after a refused MAIL get 503s; what counts is MAIL's reply.
            return TxResult(mail, [mail] * len(rcpts), None)
        if not any(200 <= r.code < 300 for r in replies):
            return TxResult(mail, replies, None)
        await self._send(b"DATA\r\n")
        go = await self.read_reply()
        if go.code != 354:
            return TxResult(mail, replies, go)
        await self._send(head + payload if head else payload)
        done = await self.read_reply()
        self.dirty = False
        return TxResult(mail, replies, done)


    def _envelope(self, mail_from: str, rcpts: list[str]) -> tuple[bytes, list[bytes]]:
        params = " BODY=8BITMIME" if "8BITMIME" in self.extensions else ""
        if "SMTPUTF8" in self.extensions and not (mail_from + "".join(rcpts)).isascii():
            params += " SMTPUTF8"  # RFC 6531: internationalised addresses
        return (f"MAIL FROM:<{mail_from}>{params}\r\n".encode("utf-8"),
                [f"RCPT TO:<{r}>\r\n".encode("utf-8") for r in rcpts])

    async def transactions(self, envelopes: list[tuple[str, list[str], bytes]], payload: bytes
                           ) -> tuple[list[TxResult | ValueError | None], SMTPClientError | None]:
        """Several transactions of one payload, each with its own (sender, recipients, head).

        With PIPELINING they go back to back: MAIL, RCPTs and DATA in one write (RFC 2920
        3.1 lets DATA end a group), the payload only after its 354, and the payload followed
        in the same write by the next transaction's commands (or RSET after a refused one):
        one round trip per transaction. Returns (one result per envelope: a TxResult, a
        ValueError for an unsafe address, None when not finished), and the error that ended
        the connection, if one did: the results before it stand.
        """
        results: list[TxResult | ValueError | None] = [None] * len(envelopes)
        todo = []
        for i, (mail_from, rcpts, head) in enumerate(envelopes):
            if (mail_from and not validate_address(mail_from)) or \
                    not all(map(validate_address, rcpts)):
                results[i] = ValueError(f"unsafe address in <{mail_from}> -> {rcpts!r}")
            else:
                todo.append(i)
        try:
            if "PIPELINING" not in self.extensions or len(todo) == 1:
                for i in todo:
                    mail_from, rcpts, head = envelopes[i]
                    results[i] = await self.transaction(mail_from, rcpts, payload, head=head)
                return results, None
            await self._pipelined(envelopes, todo, payload, results)
            return results, None
        except SMTPClientError as exc:
            return results, exc

    async def _pipelined(self, envelopes, todo: list[int], payload: bytes,
                         results: list) -> None:
        if self.dirty:
            await self.rset()
        self.dirty = True
        run = _GroupRun(self, envelopes, todo, payload, results)
        wire = self._wire
        wire.on_data = run.on_data
        try:
            run.step()
            while run.error is None and not run.finished:
                if wire.closed and not run.finished:
                    run.on_data()  # what arrived before the end
                    if run.error is None and not run.finished:
                        if wire.error is not None:
                            raise SMTPClientError(_describe(wire.error, "read from", self.host))
                        raise SMTPClientError(f"connection to {self.host} lost")
                    break
                run.wake = self._loop.create_future()
                try:
                    await self._wait(run.wake)
                finally:
                    run.wake = None
        finally:
            wire.on_data = None
        if run.error is not None:
            raise run.error
        self.dirty = False


class _GroupRun:
    """Transactions of one payload back to back on one connection, driven by the replies as
    they arrive (no task switch per transaction): each group of replies completes the
    previous transaction and opens the next one, whose commands go in the same write as the
    previous payload. RFC 2920: DATA ends a group, the payload waits for its 354."""

    __slots__ = ("client", "envelopes", "todo", "payload", "results", "pos", "expect",
                 "open_tx", "need", "got", "error", "finished", "wake")

    def __init__(self, client: SMTPClient, envelopes, todo: list[int], payload: bytes,
                 results: list) -> None:
        self.client = client
        self.envelopes = envelopes
        self.todo = todo
        self.payload = payload
        self.results = results
        self.pos = 0              # next entry of `todo` to open
        self.expect = ""          # "data": the final reply of `open_tx`'s payload; "rset"
        self.open_tx: tuple[int, Reply, list[Reply]] | None = None
        self.need = 0             # replies the last write asked for
        self.got: list[Reply] = []
        self.error: SMTPClientError | None = None
        self.finished = False
        self.wake: asyncio.Future | None = None  # the coroutine waiting for news

    def step(self, *pending: bytes) -> None:
        """Write what goes before the next commands (a copy's own lines and the payload, or
        RSET) and the next transaction's MAIL, RCPTs and DATA, in one write (the payload
        copied once); or, after the last one, only `pending`."""
        c = self.client
        if self.pos < len(self.todo):
            mail_from, rcpts, _ = self.envelopes[self.todo[self.pos]]
            mail_cmd, rcpt_cmds = c._envelope(mail_from, rcpts)
            c.transport.write(b"".join((*pending, mail_cmd, *rcpt_cmds, b"DATA\r\n")))
            self.need = len(rcpts) + 2 + (1 if self.expect else 0)
        else:
            c.transport.write(b"".join(pending))
            self.need = 1
        self.got = []

    def on_data(self) -> None:
        if self.finished or self.error is not None:
            return
        c = self.client
        try:
            c._deadline = c._loop.time() + c.timeout  # data arrived: a fresh timeout
            while True:
                c._parse(self.got, self.need)
                if len(self.got) < self.need:
                    return
                if not self._advance(self.got):
                    self.finished = True
                    break
                if not c._rbuf:
                    return  # the replies to what was just written are still to come
        except SMTPClientError as exc:
            self.error = exc
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    def _advance(self, replies: list[Reply]) -> bool:
        """Take one write's replies; write the next step. False when the group is over."""
        results = self.results
        if self.expect == "data":
            j, mail, rr = self.open_tx  # type: ignore[misc]
            results[j] = TxResult(mail, rr, replies[0])
        elif self.expect == "rset" and replies[0].code != 250:
            raise SMTPClientError(f"{self.client.host} refused RSET: {replies[0].line()}")
        if self.pos >= len(self.todo):
            return False
        if self.expect:
            replies = replies[1:]
        i = self.todo[self.pos]
        self.pos += 1
        rcpts = self.envelopes[i][1]
        mail, rr, go = replies[0], replies[1:-1], replies[-1]
        if not 200 <= mail.code < 300:
            results[i] = TxResult(mail, [mail] * len(rcpts), None)
        elif go.code != 354:
            any_ok = any(200 <= r.code < 300 for r in rr)
            results[i] = TxResult(mail, rr, go if any_ok else None)
        else:
            self.open_tx = (i, mail, rr)
            head = self.envelopes[i][2]
            self.expect = "data"
            self.step(head, self.payload)
            return True
        self.expect = "rset"
        self.step(b"RSET\r\n")
        return True


def _describe(exc: BaseException, what: str, host: str) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"timeout: cannot {what} {host}"
    if isinstance(exc, ConnectionRefusedError):
        return f"Connection refused by {host}"
    return f"cannot {what} {host}: {exc.strerror or exc}" if isinstance(exc, OSError) \
        else f"cannot {what} {host}: {exc}"
