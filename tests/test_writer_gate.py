"""The SQLite writer gate: a client's commit (the ingress group commit) goes before the bulk
writers already queued (fan-out batches, delivery claims and outcomes), and bulk writers
still get their turn while clients keep committing. Real SQLite, real threads."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from listmgr.store.db import Store
from listmgr.store.models import SiteSetting
from tests.support import migrated


@pytest.fixture
def store(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'gate.db'}"
    migrated(url)
    st = Store(url)
    yield st
    st.dispose()


class Writers:
    """Threads each committing one row; `order` is the order in which they held the gate."""

    def __init__(self, store: Store):
        self.store = store
        self.order: list[str] = []
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def start(self, name: str, *, client: bool = False, hold: threading.Event | None = None,
              repeat: int = 1) -> None:
        def run() -> None:
            try:
                for i in range(repeat):
                    session = self.store.durable_session if client else self.store.session
                    with session() as s:
                        s.add(SiteSetting(key=f"{name}-{i}", value=name))
                        s.flush()  # the transaction begins: the gate is held from here
                        self.order.append(name)
                        if hold is not None:
                            assert hold.wait(30)
            except BaseException as exc:  # pragma: no cover - reported by the test
                self.errors.append(exc)
        t = threading.Thread(target=run, name=name)
        self.threads.append(t)
        t.start()

    def wait_queued(self, client: int, bulk: int) -> None:
        deadline = time.monotonic() + 20
        while self.store.writers.waiting != (client, bulk):
            assert time.monotonic() < deadline, self.store.writers.waiting
            time.sleep(0.01)

    def join(self) -> None:
        for t in self.threads:
            t.join(60)
        assert not self.errors, self.errors

    def stored(self) -> int:
        with self.store.read_session() as s:
            return len(list(s.scalars(select(SiteSetting.key).where(
                SiteSetting.value != ""))))


def test_a_client_commit_goes_before_bulk_writers_already_waiting(store):
    w = Writers(store)
    before = w.stored()
    go = threading.Event()
    w.start("fanout-batch", hold=go)  # a long bulk transaction in progress
    w.wait_queued(0, 0)
    for i in range(3):
        w.start(f"delivery-{i}")
        w.wait_queued(0, i + 1)
    w.start("group-commit", client=True)
    w.wait_queued(1, 3)
    go.set()
    w.join()
    assert w.order == ["fanout-batch", "group-commit", "delivery-0", "delivery-1",
                       "delivery-2"]
    assert w.stored() == before + 5


def test_bulk_writers_progress_while_clients_keep_committing(store):
    w = Writers(store)
    before = w.stored()
    go = threading.Event()
    w.start("fanout-batch", hold=go)
    w.wait_queued(0, 0)
    w.start("delivery")
    w.wait_queued(0, 1)
    for i in range(3):  # clients committing again and again, always one waiting
        w.start(f"client-{i}", client=True, repeat=20)
        w.wait_queued(i + 1, 1)
    go.set()
    w.join()
    clients = [n for n in w.order if n.startswith("client-")]
    assert len(clients) == 60
    # The bulk writer went after at most a few client transactions, not after all 60.
    assert 1 < w.order.index("delivery") <= 1 + store.writers.bulk_every
    assert w.stored() == before + 62


def _in_database_file(store: Store, tmp_path: Path, key: str) -> bool:
    """Whether the row is in the database file itself, i.e. checkpointed out of the WAL."""
    copy = tmp_path / "file-only.db"
    shutil.copy(tmp_path / "gate.db", copy)
    with sqlite3.connect(copy) as db:
        return db.execute("SELECT 1 FROM site_settings WHERE key = ?", (key,)).fetchone() \
            is not None


def test_bulk_writers_checkpoint_the_wal_client_commits_do_not(store, tmp_path):
    """A checkpoint copies every page written since the last one into the database file
    and fsyncs it: the bulk writers take that on, after their commit, not a client's."""
    store.checkpoints.every = 0  # a bulk writer's commit starts one each time
    with store.durable_session() as s:
        s.add(SiteSetting(key="client", value="x"))
    assert not _in_database_file(store, tmp_path, "client")  # still only in the WAL
    with store.session() as s:
        s.add(SiteSetting(key="bulk", value="x"))
    deadline = time.monotonic() + 20  # the checkpointer's thread runs it
    while not store.checkpoints.taken:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert _in_database_file(store, tmp_path, "client")
    assert _in_database_file(store, tmp_path, "bulk")
