"""`[delivery] processes = N`: the server's delivery worker and N-1 delivery processes take
recipients from one outbound queue: every recipient is delivered once, both take part, the
connection limits are shared out, a killed process is replaced and loses nothing, and the
processes stop with the server."""

from __future__ import annotations

import os
import signal
import time
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from listmgr.delivery import worker as delivery
from listmgr.delivery.processes import DeliveryProcesses
from listmgr.delivery.worker import DeliveryWorker, share
from listmgr.store.models import BULK, OutboundRecipient
from listmgr.store.outbound import enqueue
from tests.test_smtp_acceptors import _gone, wait_for

BODY = b"From: owner-l@example.org\r\nSubject: news\r\n\r\nHello.\r\n"
# Small claims and a slow sink: the server's worker cannot take the whole queue at once.
SHARED = {"delivery__processes": 2, "delivery__per_host_concurrency": 4,
          "delivery__batch_size": 10, "delivery__max_recipients_per_transaction": 5,
          "delivery__poll_interval": "0.2s"}


def parts(srv) -> tuple[DeliveryWorker, DeliveryProcesses]:
    worker = next(c for c in srv.service.components if isinstance(c, DeliveryWorker))
    procs = next(c for c in srv.service.components if isinstance(c, DeliveryProcesses))
    return worker, procs


def queue(srv, rcpts: list[str]) -> None:
    with srv.app.store.session() as s:
        enqueue(s, srv.app.spool, mail_from="owner-l@example.org", recipients=rcpts,
                data=BODY, priority=BULK)


def delivered(sink) -> list[str]:
    with sink.lock:
        return [r for m in sink.received for r in m.rcpt_tos]


def claimers(srv) -> set[int]:
    """The pids of the processes holding claims now."""
    with srv.app.store.session() as s:
        owners = s.scalars(select(OutboundRecipient.lease_owner).where(
            OutboundRecipient.lease_owner != "").distinct()).all()
    return {int(o.split(":")[1]) for o in owners}


def test_two_processes_deliver_each_recipient_once_and_both_take_part(server, sink):
    sink.rcpt_delay = 0.02
    srv = server(**SHARED)
    worker, procs = parts(srv)
    assert len(procs.pids) == 1
    child = procs.pids[0]
    assert worker.per_host == 2  # 4 connections to a host, shared by two processes
    rcpts = [f"m{i}@remote{i % 3}.example" for i in range(300)]
    queue(srv, rcpts)
    seen: set[int] = set()
    deadline = time.monotonic() + 90
    while len(delivered(sink)) < len(rcpts) and time.monotonic() < deadline:
        seen |= claimers(srv)
        time.sleep(0.05)
    assert sorted(delivered(sink)) == sorted(rcpts)  # each once
    # The server (this test process) and the delivery process both claimed recipients.
    assert {os.getpid(), child} <= seen, seen
    peers = {m.peer for m in sink.received}
    assert len(peers) >= 2  # more than one connection


def test_a_killed_delivery_process_is_replaced_and_loses_nothing(server, sink):
    sink.rcpt_delay = 0.02
    srv = server(**SHARED)
    _, procs = parts(srv)
    child = procs.pids[0]
    rcpts = [f"k{i}@remote.example" for i in range(300)]
    queue(srv, rcpts)
    wait_for(lambda: child in claimers(srv), 60, "the delivery process to claim")
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: procs.pids and procs.pids[0] != child, 60, "another delivery process")
    # What the killed one had claimed is taken back at once by its successor (its lease
    # names a dead process), not after the lease runs out.
    wait_for(lambda: set(delivered(sink)) >= set(rcpts), 60, "every recipient")
    assert child not in claimers(srv)
    more = [f"after{i}@remote.example" for i in range(20)]
    queue(srv, more)
    wait_for(lambda: set(delivered(sink)) >= set(more), 30, "mail queued afterwards")


def test_delivery_processes_stop_with_the_server(server, sink):
    srv = server(delivery__processes=3)
    _, procs = parts(srv)
    pids = procs.pids
    assert len(pids) == 2 and not any(_gone(p) for p in pids)
    srv.stop()
    wait_for(lambda: all(_gone(p) for p in pids), 30, "the delivery processes to stop")


def test_processes_auto_limits_and_shares(monkeypatch):
    from listmgr import config as config_mod
    auto = config_mod.from_mapping({"domain": "example.org"}).delivery
    assert auto.processes == 0  # "auto"
    for cores, expected in ((1, 1), (2, 2), (4, 4), (64, 4)):
        monkeypatch.setattr(config_mod, "cpu_cores", lambda n=cores: n)
        assert auto.process_count == expected
    assert config_mod.from_mapping(
        {"domain": "example.org", "delivery": {"processes": 3}}).delivery.process_count == 3
    for bad in (0, 65, 1000, "many", True, 2.5):
        with pytest.raises(config_mod.ConfigError, match="processes"):
            config_mod.from_mapping({"domain": "example.org", "delivery": {"processes": bad}})
    # The limits are shared out: 5 connections to a host among 2 processes are 3 and 2.
    assert [share(5, i, 2) for i in range(2)] == [3, 2]
    assert [share(20, i, 3) for i in range(3)] == [7, 7, 6]

    def built(**delivery_cfg) -> list:
        cfg = config_mod.from_mapping({"domain": "example.org", "delivery": delivery_cfg})
        return delivery.components(SimpleNamespace(config=cfg, app=SimpleNamespace(config=cfg),
                                                   ports={}))

    one, more = built(processes=3), built(processes=3, per_host_concurrency=1)
    assert [type(c) for c in one] == [DeliveryWorker, DeliveryProcesses]
    assert one[1].count == 3 and one[0].per_host == 2  # 5 among 3: 2, 2, 1
    assert one[0].concurrency == 7  # 20 among 3: 7, 7, 6
    # Never more processes than connections allowed to one host: each needs one.
    assert [type(c) for c in more] == [DeliveryWorker] and more[0].per_host == 1
    assert built(processes=1, workers=False) == []
