"""Test helpers: config files, a recording SMTP sink, a server in a thread, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parent.parent


PG_URL = os.environ.get("LISTMGR_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def scratch_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A database URL of its own: a SQLite file in tmp_path, or a fresh PostgreSQL schema
    (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    from sqlalchemy import create_engine, text
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --------------------------------------------------------------------------- config

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


_QUIET_DNS: list[Any] = []


def quiet_dns_address() -> str:
    """A loopback DNS server that knows no names (NXDOMAIN for all), shared by the session:
    the default `[delivery] nameservers` of test servers, so that no test asks the
    machine's resolver (DMARC policies, SPF) and results do not depend on it."""
    if not _QUIET_DNS:
        from tests.dns_support import DNSServer
        srv = DNSServer({})
        srv.start()
        _QUIET_DNS.append(srv)
    return _QUIET_DNS[0].address


def write_config(tmp_path: Path, db_url: str, **overrides: Any) -> Path:
    """Write tmp_path/listmgr.toml. Keys: top-level names or `section__key`."""
    values: dict[str, Any] = {
        "delivery__nameservers": [quiet_dns_address()],
        "domain": "example.org",
        "data_dir": str(tmp_path / "var"),
        "database_url": db_url,
        "site_admins": ["admin@example.org"],
        "smtp__listen": "127.0.0.1:0",
        "pop3__listen": "127.0.0.1:0",
        "web__listen": "127.0.0.1:0",
        "delivery__min_backoff": "1s",
        "delivery__max_backoff": "2s",
    }
    values.update(overrides)
    top: list[str] = []
    sections: dict[str, list[str]] = {}
    for k, v in values.items():
        if v is None:
            continue
        if "__" in k:
            sec, key = k.split("__", 1)
            sections.setdefault(sec, []).append(f"{key} = {_toml_value(v)}")
        else:
            top.append(f"{k} = {_toml_value(v)}")
    text = "\n".join(top) + "\n"
    for sec, lines in sections.items():
        text += f"\n[{sec}]\n" + "\n".join(lines) + "\n"
    path = tmp_path / "listmgr.toml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- CLI

@dataclass
class CLIResult:
    status: int
    out: str
    err: str


def run_cli(config: Path | None, *args: str, stdin: str | None = None,
            env: dict[str, str] | None = None, timeout: float = 120,
            isolated: bool = False) -> CLIResult:
    """Run the real `listmgr` entry point.

    In-process by default (fast: no interpreter start-up per call); in a subprocess when
    `isolated` or for `serve` / `deliver`, which run event loops and install signal handlers.
    """
    if isolated or (args and args[0] in ("serve", "deliver")):
        return _run_cli_subprocess(config, *args, stdin=stdin, env=env, timeout=timeout)
    import contextlib
    import io
    from listmgr.cli import main
    argv = (["--config", str(config)] if config is not None else []) + list(args)
    out, err = io.StringIO(), io.StringIO()
    saved_env = dict(os.environ)
    saved_stdin = sys.stdin
    saved_cwd = os.getcwd()
    try:
        os.environ.pop("LISTMGR_CONFIG", None)
        os.environ.pop("LISTMGR_DATABASE_URL", None)
        os.environ.update(env or {})
        sys.stdin = io.StringIO(stdin or "")
        if config is not None:
            os.chdir(config.parent)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse usage errors
                status = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(saved_cwd)
        sys.stdin = saved_stdin
        os.environ.clear()
        os.environ.update(saved_env)
    return CLIResult(status, out.getvalue(), err.getvalue())


def _run_cli_subprocess(config: Path | None, *args: str, stdin: str | None = None,
                        env: dict[str, str] | None = None, timeout: float = 120) -> CLIResult:
    cmd = [sys.executable, "-m", "listmgr"]
    if config is not None:
        cmd += ["--config", str(config)]
    e = dict(os.environ)
    e.pop("LISTMGR_CONFIG", None)
    e.pop("LISTMGR_DATABASE_URL", None)
    if env:
        e.update(env)
    p = subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=True,
                       timeout=timeout, env=e, cwd=config.parent if config else None)
    return CLIResult(p.returncode, p.stdout, p.stderr)


def serve_process(config: Path) -> subprocess.Popen:
    """`listmgr --config CONFIG serve` as a child process (signals, log files, exit status),
    run from the config file's directory."""
    env = dict(os.environ)
    env.pop("LISTMGR_CONFIG", None)
    env.pop("LISTMGR_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "listmgr", "--config", str(config), "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=config.parent)


# --------------------------------------------------------------------------- SMTP sink

@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: Any = None

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


class _SinkHandler:
    def __init__(self, sink: "RecordingSink"):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.sink.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rule = self.sink.rcpt_rule(address)
        if rule is not None:
            with self.sink.lock:
                self.sink.refused.append((envelope.mail_from, address, rule))
            return rule
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.sink.lock:
            self.sink.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                               envelope.original_content or envelope.content,
                                               session.peer))
            self.sink.transactions += 1
        self.sink.arrived.set()
        return "250 2.0.0 OK queued"


class _PortZeroController(Controller):
    """aiosmtpd's Controller pokes its own port to start: with port 0 it must use the one
    the OS picked, not 0."""

    def _trigger_server(self):
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class RecordingSink:
    """An aiosmtpd server on 127.0.0.1 that records what it receives.

    `rules` maps a recipient address (lower case) to a reply, e.g. "450 4.2.0 try later" or
    "550 5.1.1 <x>... User unknown"; `prefix_rules` maps the start of a local part to one
    (e.g. {"unknown": "550 ...", "defer": "451 ..."}); `default_rule` applies to everyone
    else when set. Refused recipients are recorded in `refused` as (mail_from, rcpt, reply).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.received: list[Received] = []
        self.refused: list[tuple[str, str, str]] = []
        self.rules: dict[str, str] = {}
        self.prefix_rules: dict[str, str] = {}
        self.pipelining = False  # advertise PIPELINING (RFC 2920) in the EHLO reply
        self.default_rule: str | None = None
        self.transactions = 0
        self.lock = threading.Lock()
        self.arrived = threading.Event()
        self.controller = _PortZeroController(_SinkHandler(self), hostname=host, port=port,
                                     data_size_limit=0, enable_SMTPUTF8=True)

    def rcpt_rule(self, address: str) -> str | None:
        rule = self.rules.get(address.lower())
        if rule is not None:
            return rule
        local = address.lower().rpartition("@")[0]
        for prefix, reply in self.prefix_rules.items():
            if local.startswith(prefix):
                return reply
        return self.default_rule

    @property
    def port(self) -> int:
        return self.controller.server.sockets[0].getsockname()[1]

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def clear(self) -> None:
        with self.lock:
            self.received.clear()
            self.refused.clear()
            self.transactions = 0

    def recipients(self) -> list[str]:
        with self.lock:
            return [r for m in self.received for r in m.rcpt_tos]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0
                 ) -> list[Received]:
        """Wait until predicate(received) holds; returns a copy of what was received."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                snapshot = list(self.received)
            if predicate(snapshot):
                return snapshot
            if time.monotonic() > deadline:
                raise AssertionError(f"sink: condition not met in {timeout}s; "
                                     f"received {len(snapshot)} message(s): "
                                     f"{[(m.mail_from, m.rcpt_tos) for m in snapshot]}")
            self.arrived.wait(0.05)
            self.arrived.clear()

    def wait_count(self, n: int, timeout: float = 20.0) -> list[Received]:
        return self.wait_for(lambda got: len(got) >= n, timeout)

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.received if address.lower() in
                    (r.lower() for r in m.rcpt_tos)]


# --------------------------------------------------------------------------- server

class ServerThread:
    """A real listmgr server (listmgr.service.Service) on its own event loop thread."""

    def __init__(self, config_path: Path):
        from listmgr import config as config_mod
        from listmgr.app import App
        from listmgr.store import migrate
        self.config_path = config_path
        self.config = config_mod.load(config_path)
        self.app = App.from_config(self.config)
        if migrate.status(self.app.store.engine) != "current":
            migrate.upgrade(self.app.store.engine)
        from listmgr.service import Service
        self.service = Service(self.config, self.app)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, daemon=True, name="listmgr-server")
        self.loop: asyncio.AbstractEventLoop | None = None

    def _main(self) -> None:
        try:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.service.run(ready=self._ready.set))
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    def start(self, timeout: float = 30) -> None:
        self.thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("listmgr server did not start")
        if self._error:
            raise self._error

    def stop(self, timeout: float = 30) -> None:
        if self.loop and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.service.request_stop)
            self.thread.join(timeout)

    @property
    def ports(self) -> dict[str, int]:
        return self.service.ports

    @property
    def smtp_port(self) -> int:
        return self.ports["smtp"]

    @property
    def pop3_port(self) -> int:
        return self.ports["pop3"]

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(session, *args) in a store transaction (for assertions on stored state)."""
        with self.app.store.session() as s:
            return fn(s, *args)

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Wait until no inbound task is pending and finished messages are cleaned up."""
        from sqlalchemy import exists, func, select
        from listmgr.store.models import InboundMessage, InboundTask
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.app.store.session() as s:
                pending = s.scalar(select(func.count()).select_from(InboundTask).where(
                    InboundTask.state == "new"))
                finished = s.scalar(select(func.count()).select_from(InboundMessage).where(
                    ~exists().where(InboundTask.message_id == InboundMessage.id,
                                    InboundTask.state != "done")))
            if not pending and not finished:
                return
            time.sleep(0.05)
        raise AssertionError("inbound tasks still pending")
