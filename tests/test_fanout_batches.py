"""Batched fan-out: a big post is queued one batch of members per transaction with a
per-post cursor; kill -9 in the middle and a restart queue every member exactly once."""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from listmgr.posting.fanout import FanoutWorker
from listmgr.spool import new_queue_id
from listmgr.store import lists as repo
from listmgr.store.models import (BULK, Fanout, InboundMessage, InboundTask, OutboundMessage,
                                  OutboundRecipient)
from tests.support import free_port, write_config

N = 40_000
BATCH = 100


def _make_list(app, n: int) -> list[str]:
    members = [f"m{i:06d}@d{i % 13}.example.net" for i in range(n)]
    with app.store.session() as s:
        ml = repo.create_list(s, "big", ["owner@example.org"], password="pw")
        repo.set_setting(s, ml, "post_policy", "open")
        repo.add_members(s, ml, members)
    return members


def _queue_post(app) -> None:
    data = (b"From: someone@outside.example\r\nTo: big@example.org\r\nSubject: hello\r\n"
            b"Message-ID: <" + new_queue_id().encode() + b"@outside.example>\r\n\r\nHi.\r\n")
    qid = new_queue_id()
    path = app.spool.write("in", data, qid)
    with app.store.session() as s:
        m = InboundMessage(queue_id=qid, spool_path=path, mail_from="someone@outside.example",
                           size=len(data))
        s.add(m)
        s.flush()
        s.add(InboundTask(message_id=m.id, kind="post", target="big", rcpt="big@example.org"))


def _counts(app) -> collections.Counter:
    with app.store.session() as s:
        return collections.Counter(s.scalars(select(OutboundRecipient.rcpt)))


def _fanout_state(app) -> tuple[int, int] | None:
    with app.store.session() as s:
        row = s.execute(select(Fanout.cursor, Fanout.queued)).first()
    return None if row is None else (row[0], row[1])


def test_a_big_post_is_queued_in_batches_each_member_once(app):
    from listmgr.pipeline import InboundWorker
    from listmgr.service import INBOUND_HANDLERS
    app.config = dataclasses.replace(
        app.config, posting=dataclasses.replace(app.config.posting, fanout_batch=1000))
    members = _make_list(app, 3_500)
    _queue_post(app)
    assert InboundWorker(app, "all", INBOUND_HANDLERS).run_once() == 1
    # The post's own transaction queued the first batch and left the cursor after it.
    assert sum(_counts(app).values()) == 1000
    cursor, queued = _fanout_state(app)
    assert queued == 1000 and cursor > 0
    worker = FanoutWorker(app)
    with app.store.session() as s:  # the message is not finished while members are queued
        (mid,) = s.scalars(select(OutboundMessage.id))
    fid = worker._claim()
    assert worker.step(fid) and _fanout_state(app)[1] == 2000
    while worker.step(fid):  # batches of at most fanout_batch (fewer if they take long)
        cursor, queued = _fanout_state(app)
        assert sum(_counts(app).values()) == queued
    assert _fanout_state(app) is None
    counts = _counts(app)
    assert set(counts) == set(members) and set(counts.values()) == {1}
    with app.store.session() as s:
        prios = set(s.scalars(select(OutboundRecipient.priority)))
        assert prios == {BULK}
        assert s.get(OutboundMessage, mid).spool_path  # still to be delivered


def test_batches_whose_transaction_takes_too_long_get_smaller(app):
    """A batch holds SQLite's write lock while it is queued, and ingress waits meanwhile:
    batches are sized so their transaction fits in the worker's time bound."""
    from listmgr.pipeline import InboundWorker
    from listmgr.posting.fanout import MIN_BATCH
    from listmgr.service import INBOUND_HANDLERS
    app.config = dataclasses.replace(
        app.config, posting=dataclasses.replace(app.config.posting, fanout_batch=1000))
    members = _make_list(app, 3_500)
    _queue_post(app)
    assert InboundWorker(app, "all", INBOUND_HANDLERS).run_once() == 1
    worker = FanoutWorker(app)
    worker.tx_seconds = 1e-9  # no transaction fits: each batch as small as allowed
    fid = worker._claim()
    steps = []
    while True:
        before = _fanout_state(app)[1]
        more = worker.step(fid)
        after = _fanout_state(app)
        steps.append((after[1] if after else len(members)) - before)
        if not more:
            break
    queued = [n for n in steps if n]
    # The first at full size, then each half the one before, down to the smallest.
    assert queued[:5] == [1000, 500, 250, 125, MIN_BATCH]
    assert set(queued[5:-1]) == {MIN_BATCH} and queued[-1] <= MIN_BATCH
    counts = _counts(app)
    assert set(counts) == set(members) and set(counts.values()) == {1}



def _serve(cfg) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("LISTMGR_CONFIG", None)
    env.pop("LISTMGR_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "listmgr", "--config", str(cfg), "serve"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=cfg.parent)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill_9_during_a_batched_fan_out_neither_repeats_nor_skips(app, tmp_path, db_url):
    members = _make_list(app, N)
    cfg = write_config(tmp_path, db_url, smtp__listen=f"127.0.0.1:{free_port()}",
                       posting__fanout_batch=BATCH, delivery__workers=False)
    _queue_post(app)
    proc = _serve(cfg)
    try:
        deadline = time.monotonic() + 240
        while True:  # until the fan-out worker is a few batches in
            state = _fanout_state(app)
            if state is not None and state[1] >= 5 * BATCH:
                break
            assert time.monotonic() < deadline, "the fan-out did not start"
            assert sum(_counts(app).values()) < N, "the fan-out ended before the kill"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        cursor, queued = _fanout_state(app)
        assert 0 < queued < N
        assert sum(_counts(app).values()) == queued  # the cursor and the rows agree

        proc = _serve(cfg)  # takes the dead process's fan-out back at once
        deadline = time.monotonic() + 300
        while _fanout_state(app) is not None:
            assert time.monotonic() < deadline, "the fan-out was not resumed"
            assert proc.poll() is None
            time.sleep(0.2)
    finally:
        _stop(proc)
    counts = _counts(app)
    assert set(counts) == set(members)     # no gap
    assert set(counts.values()) == {1}     # no duplicate
    with app.store.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboundMessage)) == 1
