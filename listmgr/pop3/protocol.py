"""The POP3 state machine (RFC 1939, CAPA from RFC 2449, STLS from RFC 2595), without I/O.

`Session.handle(line)` takes one command line and returns either a `Reply` to send, or an
*effect* the server must carry out and then report back:

- `Login(user, password)` -> the server checks the password, locks the maildrop, and calls
  `login_ok(entries)` or `login_failed(reason)`, which give the reply.
- `Retrieve(entry, top)` (RETR, TOP) -> the server reads the message and sends `+OK` and
  `payload(data, top)` (CRLF line ends, byte-stuffed, ending with the `.` line).
- `Update(deleted)` (QUIT in TRANSACTION) -> the server removes the messages (RFC 1939
  section 6: only here, never on a dropped connection) and calls `update_done(failed)`.
- `StartTLS(reply)` -> the server sends the reply, discards anything the client sent after
  STLS in plain text (RFC 2595 section 4 / RFC 3207's injection lesson), runs the TLS
  handshake and calls `tls_started()`.

Entries are any objects with `.uid` and `.size` (octets, CRLF line ends).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

AUTHORIZATION, TRANSACTION, UPDATE, CLOSED = "AUTHORIZATION", "TRANSACTION", "UPDATE", "CLOSED"

# RFC 2449 section 4: a command line is at most 255 octets, CRLF included. Passwords may be
# long, so PASS gets more room.
MAX_COMMAND = 255
MAX_PASS_LINE = 1024
MAX_AUTH_FAILURES = 3


@dataclass(frozen=True)
class Reply:
    text: str  # the status line, without CRLF
    lines: tuple[str, ...] | None = None  # a multi-line body (byte-stuffed when sent)
    close: bool = False

    def encode(self) -> bytes:
        out = [self.text.encode("utf-8", "replace") + b"\r\n"]
        if self.lines is not None:
            for line in self.lines:
                b = line.encode("utf-8", "replace")
                out.append((b"." + b if b.startswith(b".") else b) + b"\r\n")
            out.append(b".\r\n")
        return b"".join(out)


@dataclass(frozen=True)
class Login:
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Retrieve:
    number: int
    entry: Any
    top: int | None  # None: RETR (whole message); n: TOP with n body lines


@dataclass(frozen=True)
class Update:
    deleted: tuple[Any, ...]


@dataclass(frozen=True)
class StartTLS:
    reply: Reply


Effect = Login | Retrieve | Update | StartTLS


def ok(text: str = "", lines: Sequence[str] | None = None, close: bool = False) -> Reply:
    return Reply(f"+OK {text}".rstrip(), tuple(lines) if lines is not None else None, close)


def err(text: str, close: bool = False) -> Reply:
    return Reply(f"-ERR {text}", None, close)


class Session:
    """One client's POP3 session. The server owns the socket; this owns the rules."""

    def __init__(self, *, hostname: str = "localhost", tls_available: bool = False,
                 tls_active: bool = False, require_tls: bool = False):
        self.hostname = hostname
        self.tls_available = tls_available
        self.tls_active = tls_active
        self.require_tls = require_tls
        self.state = AUTHORIZATION
        self.user: str | None = None
        self.entries: list[Any] = []
        self.deleted: set[int] = set()  # 0-based indexes marked by DELE
        self.auth_failures = 0

    # ------------------------------------------------------------------ replies to effects

    def greeting(self) -> Reply:
        return ok(f"{self.hostname} POP3 server ready")

    def login_ok(self, entries: Sequence[Any]) -> Reply:
        self.state = TRANSACTION
        self.entries = list(entries)
        self.deleted = set()
        n, size = self._stat()
        return ok(f"maildrop has {n} message{'s' if n != 1 else ''} ({size} octets)")

    def login_failed(self, reason: str = "auth") -> Reply:
        """reason: 'auth' (bad name or password), 'in-use', 'sys' (server trouble)."""
        self.user = None
        if reason == "in-use":
            return err("[IN-USE] Mailbox is locked by another POP3 session")
        if reason == "sys":
            return err("[SYS/TEMP] Temporary failure, try again later")
        self.auth_failures += 1
        if self.auth_failures >= MAX_AUTH_FAILURES:
            self.state = CLOSED
            return err("[AUTH] Invalid user name or password; too many failures, closing",
                       close=True)
        return err("[AUTH] Invalid user name or password")

    def update_done(self, failed: int = 0) -> Reply:
        self.state = CLOSED
        if failed:
            return err("some deleted messages not removed", close=True)
        left = len(self.entries) - len(self.deleted)
        return ok(f"{self.hostname} POP3 server signing off ({left} message"
                  f"{'s' if left != 1 else ''} left)", close=True)

    def tls_started(self) -> None:
        # RFC 2595 section 4: forget anything learned before the handshake.
        self.tls_active = True
        self.user = None

    def timed_out(self) -> Reply:
        # RFC 1939 section 3: the autologout timer closes without entering UPDATE.
        self.state = CLOSED
        return err("autologout; idle for too long", close=True)

    # ------------------------------------------------------------------ commands

    def handle(self, line: bytes) -> Reply | Effect:
        if self.state in (UPDATE, CLOSED):
            return err("session is over", close=True)
        raw = line.rstrip(b"\r\n")
        text = raw.decode("utf-8", "surrogateescape")
        verb, _, rest = text.partition(" ")
        verb = verb.upper()
        limit = MAX_PASS_LINE if verb == "PASS" else MAX_COMMAND
        if len(raw) + 2 > limit:
            return err("command line too long")
        if not verb:
            return err("empty command")
        fn = getattr(self, f"_cmd_{verb.lower()}", None) if verb.isalpha() else None
        if fn is None:
            return err(f"unknown command {verb[:20]!r}" if verb.isprintable()
                       else "unknown command")
        if any(c in rest for c in "\0\r\n"):
            return err("invalid characters in command")
        return fn(rest)

    def _cmd_capa(self, rest: str) -> Reply:
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.state == AUTHORIZATION:
            if self._plaintext_ok():
                caps.append("USER")
            if self.tls_available and not self.tls_active:
                caps.append("STLS")
        caps.append("IMPLEMENTATION listmgr")
        return ok("Capability list follows", caps)

    def _cmd_noop(self, rest: str) -> Reply:
        if self.state != TRANSACTION:
            return err("not logged in")
        return ok()

    def _cmd_quit(self, rest: str) -> Reply | Update:
        if self.state == TRANSACTION:
            self.state = UPDATE
            return Update(tuple(self.entries[i] for i in sorted(self.deleted)))
        self.state = CLOSED
        return ok(f"{self.hostname} POP3 server signing off", close=True)

    # AUTHORIZATION ---------------------------------------------------------

    def _plaintext_ok(self) -> bool:
        return self.tls_active or not self.require_tls

    def _cmd_stls(self, rest: str) -> Reply | StartTLS:
        if self.state != AUTHORIZATION:
            return err("STLS is only valid before login")
        if self.tls_active:
            return err("TLS is already active")
        if not self.tls_available:
            return err("STLS not available")
        return StartTLS(ok("Begin TLS negotiation now"))

    def _cmd_user(self, rest: str) -> Reply:
        if self.state != AUTHORIZATION:
            return err("already logged in")
        if not self._plaintext_ok():
            return err("[AUTH] Plaintext login is refused before STLS")
        name = rest.strip()
        if not name or " " in name:
            return err("usage: USER name")
        self.user = name
        return ok("send your password")

    def _cmd_pass(self, rest: str) -> Reply | Login:
        if self.state != AUTHORIZATION:
            return err("already logged in")
        if not self._plaintext_ok():
            return err("[AUTH] Plaintext login is refused before STLS")
        if self.user is None:
            return err("send USER first")
        user, self.user = self.user, None
        # RFC 1939 section 7: the password is the rest of the line (it may hold spaces).
        return Login(user, rest)

    def _cmd_apop(self, rest: str) -> Reply:
        return err("APOP is not supported; use USER and PASS")

    # TRANSACTION -----------------------------------------------------------

    def _stat(self) -> tuple[int, int]:
        live = [e for i, e in enumerate(self.entries) if i not in self.deleted]
        return len(live), sum(e.size for e in live)

    def _need_login(self) -> Reply | None:
        if self.state != TRANSACTION:
            return err("not logged in")
        return None

    def _message(self, arg: str) -> tuple[int, Any] | Reply:
        """Resolve a message-number argument to (index, entry) or an error reply."""
        arg = arg.strip()
        if not arg.isdigit() or not arg.isascii():
            return err("invalid message number")
        n = int(arg)
        if n < 1 or n > len(self.entries):
            return err("no such message")
        if n - 1 in self.deleted:
            return err(f"message {n} already deleted")
        return n - 1, self.entries[n - 1]

    def _cmd_stat(self, rest: str) -> Reply:
        if (e := self._need_login()) is not None:
            return e
        n, size = self._stat()
        return ok(f"{n} {size}")

    def _listing(self, rest: str, value) -> Reply:
        if (e := self._need_login()) is not None:
            return e
        if rest.strip():
            found = self._message(rest)
            if isinstance(found, Reply):
                return found
            i, entry = found
            return ok(f"{i + 1} {value(entry)}")
        lines = [f"{i + 1} {value(e)}" for i, e in enumerate(self.entries)
                 if i not in self.deleted]
        n, size = self._stat()
        return ok(f"{n} message{'s' if n != 1 else ''} ({size} octets)", lines)

    def _cmd_list(self, rest: str) -> Reply:
        return self._listing(rest, lambda e: e.size)

    def _cmd_uidl(self, rest: str) -> Reply:
        return self._listing(rest, lambda e: e.uid)

    def _cmd_retr(self, rest: str) -> Reply | Retrieve:
        if (e := self._need_login()) is not None:
            return e
        found = self._message(rest)
        if isinstance(found, Reply):
            return found
        return Retrieve(found[0] + 1, found[1], None)

    def _cmd_top(self, rest: str) -> Reply | Retrieve:
        if (e := self._need_login()) is not None:
            return e
        parts = rest.split()
        if len(parts) != 2:
            return err("usage: TOP msg n")
        found = self._message(parts[0])
        if isinstance(found, Reply):
            return found
        if not parts[1].isdigit() or not parts[1].isascii():
            return err("invalid number of lines")
        return Retrieve(found[0] + 1, found[1], int(parts[1]))

    def _cmd_dele(self, rest: str) -> Reply:
        if (e := self._need_login()) is not None:
            return e
        found = self._message(rest)
        if isinstance(found, Reply):
            return found
        self.deleted.add(found[0])
        return ok(f"message {found[0] + 1} deleted")

    def _cmd_rset(self, rest: str) -> Reply:
        if (e := self._need_login()) is not None:
            return e
        self.deleted = set()
        n, size = self._stat()
        return ok(f"maildrop has {n} message{'s' if n != 1 else ''} ({size} octets)")


# --------------------------------------------------------------------------- payloads

def payload(data: bytes, top: int | None = None) -> bytes:
    """A message as sent after `+OK`: CRLF line ends, lines starting with '.' stuffed
    (RFC 1939 section 3), ending with the `.` line. `top`: headers, the blank line, and
    that many body lines (TOP)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final line end, not an empty line
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    if top is not None:
        try:
            blank = lines.index(b"")
        except ValueError:
            blank = len(lines)
        lines = lines[:blank + 1 + top]
    out = bytearray()
    for ln in lines:
        if ln.startswith(b"."):
            out += b"."
        out += ln
        out += b"\r\n"
    out += b".\r\n"
    return bytes(out)
