"""Fixtures shared by the whole suite.

Every store-backed test runs on SQLite and on PostgreSQL (a fresh schema per test, so runs
cannot collide). LISTMGR_TEST_DATABASES=sqlite (or postgres) narrows that for a quick local
run; CI runs both. LISTMGR_TEST_PG_URL points at the PostgreSQL server
(default postgresql+psycopg://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import (  # noqa: F401  (fixtures re-exported for pytest)
    PG_URL,
    RecordingSink,
    ServerThread,
    migrated,
    scratch_database,
    write_config,
)

DATABASES = [d.strip() for d in os.environ.get("LISTMGR_TEST_DATABASES",
                                                "sqlite,postgres").split(",") if d.strip()]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests (marked slow) first, in their files' order: run in parallel
    (pyproject's `-n 4`), they start at once instead of finishing last on one worker."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(params=DATABASES)
def db_url(request, tmp_path: Path):
    with scratch_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def config_file(tmp_path: Path, db_url: str):
    """A function writing listmgr.toml for this test: config_file(**overrides) -> Path."""
    def make(**overrides) -> Path:
        return write_config(tmp_path, db_url, **overrides)
    return make


@pytest.fixture
def app(tmp_path: Path, db_url: str):
    """A migrated App on this test's database and data dir."""
    from listmgr import config as config_mod
    from listmgr.app import App
    cfg = config_mod.load(write_config(tmp_path, db_url))
    migrated(db_url)
    a = App.from_config(cfg)
    yield a
    a.store.dispose()


@pytest.fixture
def manual_clock():
    """listmgr's clock (listmgr.clock) stopped at now: the test moves it with advance().
    Ask for it before `server` so that the server stops before the clock is given back."""
    from listmgr import clock
    with clock.use(clock.ManualClock()) as c:
        yield c


@pytest.fixture
def sink():
    """A recording SMTP server on 127.0.0.1:<port>: the remote MTA / smarthost in tests."""
    s = RecordingSink()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def server(tmp_path: Path, db_url: str, sink):
    """A function starting a real `listmgr serve` in-process: server(**overrides) -> thread.

    Defaults: domain example.org, every listener on 127.0.0.1:0, the recording sink as
    smarthost. Stopped at the end of the test.
    """
    started: list[ServerThread] = []

    def start(**overrides) -> ServerThread:
        overrides.setdefault("delivery__smarthost", f"127.0.0.1:{sink.port}")
        path = write_config(tmp_path, db_url, **overrides)
        t = ServerThread(path)
        t.start()
        started.append(t)
        return t

    yield start
    for t in started:
        t.stop()
