"""Engine and session setup for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import PoolProxiedConnection

from listmgr.store import writerlock
from listmgr.store.checkpoints import Checkpoints
from listmgr.store.writergate import WriterGate

# Raised when the database cannot be opened or reached; `.orig` is the driver's error.
CannotOpen = OperationalError

READ_ONLY = "listmgr_read_only"  # execution option: a session that only reads
# With READ_ONLY, on SQLite: no BEGIN, each statement reads on its own (autocommit), for
# lookups of one statement (RCPT); PostgreSQL's driver begins as ever.
SINGLE_READS = "listmgr_single_reads"
_GATE = "listmgr_writer_gate"  # connection info: this connection holds the writer gate


def make_engine(url: str, *, synchronous: str = "NORMAL",
                gate: WriterGate | None = None, priority: bool = False,
                checkpoints: Checkpoints | None = None) -> Engine:
    """The engine for `url`. SQLite: WAL; `synchronous` NORMAL (a commit survives a crash of
    the process) or FULL (it also survives a power loss: the WAL is fsynced at commit).
    With a `gate`, its writers take it for their whole transaction (as priority writers
    with `priority`), and checkpoint the WAL after it (`checkpoints`: store.checkpoints)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        # Writers of other processes on this file queue on an flock (store.writerlock).
        xlock = writerlock.for_database(u.database) \
            if u.database and u.database != ":memory:" else None

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            # Let SQLAlchemy's BEGIN be the transaction start (pysqlite default is odd).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if gate is not None:  # checkpoints come after the gate (_release_after_end)
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # pragma: no cover - trivial
            # IMMEDIATE: take the write lock at BEGIN, so two writers queue instead of
            # failing with "database is locked" on upgrade from a read lock. A read-only
            # session begins deferred: WAL readers never wait for the writer.
            options = conn.get_execution_options()
            if options.get(READ_ONLY):
                if not options.get(SINGLE_READS):
                    conn.exec_driver_sql("BEGIN")
                return
            if gate is not None:
                # Taken when the transaction really begins (its first statement), so a
                # session opened but not yet used blocks nobody.
                gate.acquire(priority)
                conn.info[_GATE] = True
            if xlock is not None:
                try:
                    xlock.hold(conn.info)
                except BaseException:
                    _release(conn.info)
                    raise
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                if xlock is not None:
                    xlock.let_go(conn.info)
                _release(conn.info)
                raise

        def _release(info: dict) -> None:  # pragma: no cover - trivial
            if gate is not None and info.pop(_GATE, False):
                gate.release()

        # The cross-process lock is let go first (wrapped innermost), then the gate: a writer
        # of this process woken by the gate finds the flock free.
        if xlock is not None:
            writerlock.release_after_end(engine, xlock)
        if gate is not None:
            ckpt = checkpoints or Checkpoints(sqlite_file(url))
            _release_after_end(engine, _release, lambda: ckpt.after_commit(priority))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _release_after_end(engine: Engine, release: Callable[[dict], None],
                       committed: Callable[[], None]) -> None:
    """Call `release(info)` with a connection's info once its transaction's COMMIT or
    ROLLBACK has run (not before: the next writer would find SQLite's lock still taken and
    poll for it), or once the connection is invalidated (its transaction ends with it);
    then, after a COMMIT, `committed()`."""
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def ended(dbapi_conn) -> bool:
        if isinstance(dbapi_conn, PoolProxiedConnection):
            try:
                info = dbapi_conn.info
            except NotImplementedError:  # a connection outside the pool (dialect setup)
                return False
            if info.get(_GATE):
                release(info)
                return True
        return False

    def do_commit(dbapi_conn) -> None:
        try:
            commit(dbapi_conn)
        finally:
            held = ended(dbapi_conn)
        if held:
            committed()

    def do_rollback(dbapi_conn) -> None:
        try:
            rollback(dbapi_conn)
        finally:
            ended(dbapi_conn)

    # The dialect is this engine's own instance: only its connections are concerned.
    setattr(dialect, "do_commit", do_commit)
    setattr(dialect, "do_rollback", do_rollback)
    event.listen(engine.pool, "invalidate", lambda _dbapi, record, _exc: release(record.info))


def redacted(url: str) -> str:
    """A database URL without its password; ValueError if it does not parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception as exc:
        raise ValueError(str(exc)) from None


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return Path(u.database)
    return None


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _transaction(factory: sessionmaker) -> Iterator[Session]:
    """One session from `factory`: committed on success, rolled back on any error, closed."""
    s = factory()
    try:
        yield s
        s.commit()
    except BaseException:
        s.rollback()
        raise
    finally:
        s.close()


class Store:
    """Owns the engine and hands out sessions: `with store.session() as s: ...` commits."""

    def __init__(self, url: str):
        self.url = url
        self.writers = WriterGate()
        self.checkpoints = Checkpoints(sqlite_file(url))
        self.engine = make_engine(url, gate=self.writers, checkpoints=self.checkpoints)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        # The engine of read-only transactions (made once: execution_options copies).
        self.read_engine = self.engine.execution_options(**{READ_ONLY: True})
        self._read_factory = sessionmaker(self.read_engine, expire_on_commit=False)
        # Connections for lookups whose statements need no common snapshot (SINGLE_READS).
        self.lookup_engine = self.engine.execution_options(
            **{READ_ONLY: True, SINGLE_READS: True})
        self._durable_engine: Engine | None = None
        self._durable_factory: sessionmaker | None = None
        self._durable_lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error. On SQLite its
        first statement waits its turn at the writer gate."""
        yield from _transaction(self._factory)

    @contextlib.contextmanager
    def read_session(self) -> Iterator[Session]:
        """A transaction that only reads: on SQLite it takes no write lock, so lookups
        (SMTP RCPT, POP3) never queue behind writers. Writing in it is a bug."""
        yield from _transaction(self._read_factory)

    @contextlib.contextmanager
    def durable_session(self) -> Iterator[Session]:
        """Like session(), but the commit is on stable storage when it returns, power loss
        included (SQLite: synchronous=FULL, the WAL fsynced at commit; PostgreSQL's commit
        already is). For what is acknowledged to a client: ingress group commits; on SQLite
        they go before the bulk writers queued at the writer gate."""
        if not self.is_sqlite:
            with self.session() as s:
                yield s
            return
        with self._durable_lock:
            if self._durable_factory is None:
                # Its writers are clients waiting for 250s: priority writers at the gate.
                self._durable_engine = make_engine(self.url, synchronous="FULL",
                                                   gate=self.writers, priority=True,
                                                   checkpoints=self.checkpoints)
                self._durable_factory = sessionmaker(self._durable_engine,
                                                     expire_on_commit=False)
        yield from _transaction(self._durable_factory)

    def dispose(self) -> None:
        self.checkpoints.close()
        self.engine.dispose()
        if self._durable_engine is not None:
            self._durable_engine.dispose()
