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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parent.parent


PG_URL = os.environ.get("LISTMGR_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def scratch_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A database URL of its own: a SQLite file in tmp_path, or a fresh PostgreSQL schema
    (dropped afterwards). Empty: `migrated(url)` gives it the schema."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    with scratch_schema(PG_URL) as url:
        yield url


@contextlib.contextmanager
def scratch_schema(server_url: str, prefix: str = "t") -> Iterator[str]:
    """A fresh schema on the PostgreSQL database at `server_url`, dropped afterwards: the URL
    with that schema as its search_path."""
    from sqlalchemy import create_engine, text
    schema = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in server_url else "?"
    try:
        yield f"{server_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --------------------------------------------------------------------------- ports

_PORTS_BELOW = 32768  # Linux hands out ephemeral ports (a bind to port 0) from 32768 up
_PORTS_PER_WORKER = 400
_port_range: list[int] = []  # this process's [first port, next port to try]


def free_port() -> int:
    """A loopback TCP port free now, for a listener that another process binds later (a
    `serve` child, Postfix) where port 0 cannot be read back. Taken from a range of this
    test process's own below the ephemeral ports, so that neither a bind to port 0 nor
    another pytest-xdist worker can take it in between."""
    import socket
    if not _port_range:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
        first = _PORTS_BELOW - _PORTS_PER_WORKER * ((int(worker) if worker.isdigit() else 0) + 1)
        _port_range.extend([first, first])
    first = _port_range[0]
    for _ in range(_PORTS_PER_WORKER):
        port = _port_range[1]
        _port_range[1] = first + (port + 1 - first) % _PORTS_PER_WORKER
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in this test process's range")


# --------------------------------------------------------------------------- schema

class SchemaTemplate:
    """The schema at alembic's head, made once per test process by the real migration chain
    and given to each fresh test database as a copy: running the chain (a few dozen
    migration scripts) for every test costs about a second each on this suite's scale.

    SQLite: the migrated file is copied. PostgreSQL: the statements the chain ran in a
    scratch schema are run again, in one transaction, in the test's schema. Both give the
    same tables, indexes, rows and alembic revision as `migrate.upgrade`.
    tests/test_migrations.py runs the chain itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dir: Path | None = None
        self._sqlite: Path | None = None
        self._statements: dict[str, list[tuple[str, Any]]] = {}

    def install(self, url: str) -> bool:
        """Give the database at `url` the head schema if it has no tables yet; False when it
        already had some (the caller may still want `migrate.status` / `upgrade`)."""
        from sqlalchemy.engine import make_url
        u = make_url(url)
        if u.get_backend_name() == "sqlite":
            return self._install_sqlite(Path(u.database or ""))
        return self._install_postgres(url)

    # SQLite: copy the file
    def _install_sqlite(self, target: Path) -> bool:
        if not target.name or (target.exists() and target.stat().st_size > 0):
            return False
        import shutil
        with self._lock:
            if self._sqlite is None:
                from listmgr.store import migrate
                from listmgr.store.db import make_engine
                self._sqlite = self._workdir() / "head.sqlite3"
                engine = make_engine(f"sqlite:///{self._sqlite}")
                migrate.upgrade(engine)
                engine.dispose()  # the last connection checkpoints the WAL into the file
                assert not Path(f"{self._sqlite}-wal").exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._sqlite, target)
        return True

    def _workdir(self) -> Path:
        if self._dir is None:
            import atexit
            import shutil
            import tempfile
            self._dir = Path(tempfile.mkdtemp(prefix="listmgr-schema-"))
            atexit.register(shutil.rmtree, self._dir, True)
        return self._dir

    # PostgreSQL: run the chain's statements again
    def _install_postgres(self, url: str) -> bool:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                if conn.scalar(text("SELECT count(*) FROM pg_tables "
                                    "WHERE schemaname = current_schema()")):
                    return False
                for statement, parameters in self._postgres_statements(url):
                    conn.exec_driver_sql(statement, parameters)
            return True
        finally:
            engine.dispose()

    def _postgres_statements(self, url: str) -> list[tuple[str, Any]]:
        from sqlalchemy import create_engine, event
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool
        from listmgr.store import migrate
        u = make_url(url)
        server = u.set(query={k: v for k, v in u.query.items() if k != "options"})
        key = server.render_as_string(hide_password=False)
        with self._lock:
            if key not in self._statements:
                ran: list[tuple[str, Any]] = []
                with scratch_schema(key, "tmpl") as scratch:
                    engine = create_engine(scratch, poolclass=NullPool)

                    @event.listens_for(engine, "before_cursor_execute")
                    def record(conn, cursor, statement, parameters, context, executemany):
                        assert not executemany, statement
                        ran.append((statement, parameters))
                    migrate.upgrade(engine)
                    engine.dispose()
                self._statements[key] = ran
            return self._statements[key]


SCHEMA = SchemaTemplate()


def migrated(url: str) -> None:
    """Bring the test database at `url` to the head schema before anything opens it: from
    the template when it has no tables, otherwise by alembic when it is behind."""
    if SCHEMA.install(url):
        return
    from listmgr.store import migrate
    from listmgr.store.db import make_engine
    engine = make_engine(url)
    try:
        if migrate.status(engine) != "current":
            migrate.upgrade(engine)
    finally:
        engine.dispose()


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
        # one process, as the connection caps the tests count are per process ("auto" is
        # one per CPU core; tests/test_smtp_acceptors.py starts more)
        "smtp__processes": 1,
        "delivery__processes": 1,  # likewise: tests/test_delivery_processes.py starts more
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
            responses = responses[:-1] + ["250-PIPELINING", responses[-1]]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.sink.mail_delay:
            await asyncio.sleep(self.sink.mail_delay)
        if self.sink.mail_rule is not None:
            return self.sink.mail_rule  # envelope left without a sender: RCPTs get 503
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.sink.rcpt_delay:
            await asyncio.sleep(self.sink.rcpt_delay)
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
    `mail_rule`, when set, is the reply to every MAIL (a refusal: the RCPTs that follow get
    aiosmtpd's 503). `pipelining` offers PIPELINING (RFC 2920) in the EHLO reply;
    `mail_delay` / `rcpt_delay` make the sink take that many seconds to answer each.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, pipelining: bool = False):
        self.received: list[Received] = []
        self.refused: list[tuple[str, str, str]] = []
        self.rules: dict[str, str] = {}
        self.prefix_rules: dict[str, str] = {}
        self.default_rule: str | None = None
        self.mail_rule: str | None = None
        self.pipelining = pipelining
        self.mail_delay = 0.0
        self.rcpt_delay = 0.0
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
        self.config_path = config_path
        self.config = config_mod.load(config_path)
        migrated(config_mod.database_url(self.config))
        self.app = App.from_config(self.config)
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

    def wait_settled(self, timeout: float = 20.0) -> None:
        """Wait until no inbound task is pending and no outbound recipient is in the middle
        of an attempt (leased). Before a test moves listmgr's clock by hours or days: a
        lease taken at the old time would run out at once at the new one, and the mail
        just received would be sent again."""
        from sqlalchemy import func, select
        from listmgr.store.models import InboundTask, OutboundRecipient
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.app.store.session() as s:
                pending = s.scalar(select(func.count()).select_from(InboundTask).where(
                    InboundTask.state == "new"))
                leased = s.scalar(select(func.count()).select_from(OutboundRecipient).where(
                    OutboundRecipient.lease_owner != ""))
            if not pending and not leased:
                return
            time.sleep(0.05)
        raise AssertionError(f"not settled: {pending} inbound task(s) pending, "
                             f"{leased} outbound recipient(s) leased")


def missing_tool(why: str) -> None:
    """A test needing a system tool that is not installed: skipped on a developer's machine,
    a failure where LISTMGR_TEST_REQUIRE_TOOLS is set (`.ci/run` installs every tool)."""
    import pytest
    if os.environ.get("LISTMGR_TEST_REQUIRE_TOOLS"):
        pytest.fail(f"{why} (required: LISTMGR_TEST_REQUIRE_TOOLS is set)")
    pytest.skip(why)
