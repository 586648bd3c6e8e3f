"""Two `listmgr serve` processes on one database and one data_dir (several hosts share the
data_dir, e.g. over NFS): posts and command mails through both, kill -9 of the one fanning
out a big post. Every member gets each post exactly once (only recipients the dead process
held at the kill may come twice), every command mail is answered once, and the survivor
takes over the dead one's claims once their short lease runs out (no restart needed).
On PostgreSQL a process whose data_dir is not the database's refuses to start."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from listmgr.store import lists as repo
from listmgr.store.models import Fanout, InboundTask, OutboundRecipient
from tests.conftest import DATABASES
from tests.support import RecordingSink, _SinkHandler, run_cli, write_config

N = 3000
LEASE = 5.0
LANES = 3
COMMANDS = 12  # per round, half through each server
POSTS = ("big news", "more news")


class _SlowHandler(_SinkHandler):
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.005)  # a remote that takes a little time per message
        return await super().handle_DATA(server, session, envelope)


def _sink() -> RecordingSink:
    sink = RecordingSink()
    sink.controller.handler = _SlowHandler(sink)
    return sink


def _config(tmp_path: Path, db_url: str, name: str, sink_port: int, **extra) -> Path:
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    values = dict(data_dir=str(tmp_path / "var"), log__file=str(d / "listmgr.log"),
                  store__lease=f"{LEASE}s", delivery__smarthost=f"127.0.0.1:{sink_port}",
                  delivery__per_host_concurrency=LANES, posting__fanout_batch=10,
                  commands__replies_per_hour=1000)
    values.update(extra)
    return write_config(d, db_url, **values)


def _start(cfg: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("LISTMGR_CONFIG", None)
    env.pop("LISTMGR_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "listmgr", "--config", str(cfg), "serve",
                             *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=cfg.parent)


def _smtp_port(cfg: Path, proc: subprocess.Popen, timeout: float = 60) -> int:
    log = cfg.parent / "listmgr.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            m = re.search(r"listmgr ready: .* smtp=127\.0\.0\.1:(\d+)", log.read_text())
            if m:
                return int(m.group(1))
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {proc.stderr.read()}")
        time.sleep(0.1)
    raise AssertionError("serve did not start")


def _send(port: int, mail_from: str, rcpt: str, subject: str, body: str) -> None:
    msg = (f"From: {mail_from}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '.')}@outside.example>\r\n\r\n{body}\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.sendmail(mail_from, [rcpt], msg.encode())


def _commands(ports: list[int], round_: str) -> list[str]:
    senders = []
    for i in range(COMMANDS):
        sender = f"cmd-{round_}-{i}@asker.example"
        _send(ports[i % 2], sender, "majordomo@example.org", "q", "lists")
        senders.append(sender)
    return senders


def _keys(received) -> list[tuple[str, str]]:
    """(recipient, post subject; "" for a command reply) of each recipient of a message."""
    subject = received.message["Subject"] or ""
    post = next((p for p in POSTS if p in subject), "")
    return [(r, post) for r in received.rcpt_tos]


def _pid(owner: str) -> int:
    parts = owner.split(":")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else 0


def _held_by(app, pid: int) -> tuple[set[str], int, int]:
    """What process `pid` holds: outbound recipients (rcpts), inbound tasks, fan-outs."""
    like = f"%:{pid}:%"
    with app.store.session() as s:
        rcpts = set(s.scalars(select(OutboundRecipient.rcpt).where(
            OutboundRecipient.state == "queued", OutboundRecipient.lease_owner.like(like))))
        tasks = s.scalar(select(func.count()).select_from(InboundTask).where(
            InboundTask.state == "new", InboundTask.lease_owner.like(like))) or 0
        fanouts = s.scalar(select(func.count()).select_from(Fanout).where(
            Fanout.lease_owner.like(like))) or 0
    return rcpts, tasks, fanouts


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
def test_kill_9_of_one_of_two_servers_mid_fanout(app, tmp_path, db_url):
    members = [f"m{i:05d}@d{i % 7}.example.net" for i in range(N)]
    with app.store.session() as s:
        ml = repo.create_list(s, "big", ["owner@example.org"], password="pw")
        repo.set_setting(s, ml, "post_policy", "open")
        repo.add_members(s, ml, members)
    sink = _sink()
    sink.start()
    procs: dict[str, subprocess.Popen] = {}
    try:
        cfgs = {name: _config(tmp_path, db_url, name, sink.port) for name in ("a", "b")}
        procs["a"] = _start(cfgs["a"])
        ports = [_smtp_port(cfgs["a"], procs["a"])]
        procs["b"] = _start(cfgs["b"])
        ports.append(_smtp_port(cfgs["b"], procs["b"]))
        asked = _commands(ports, "1")
        for i, subject in enumerate(POSTS):  # one post through each server
            _send(ports[i], "someone@outside.example", "big@example.org", subject, "Hi all.")
        asked += _commands(ports, "2")  # in flight at the kill, some claimed by the victim

        # Kill the process fanning the post out, once delivery has begun and members are
        # still being queued.
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:
            with app.store.session() as s:
                row = s.execute(select(Fanout.lease_owner, Fanout.queued)).first()
            # well within the fan-out: the kill must land before its end
            if row is not None and row[0] and 100 <= row[1] <= N - 1000 \
                    and sink.transactions >= 5:
                victim = _pid(row[0])
            else:
                time.sleep(0.02)
        assert victim, "the fan-out was never seen in progress"
        os.kill(victim, signal.SIGKILL)
        name = next(n for n, p in procs.items() if p.pid == victim)
        procs[name].wait(10)
        killed_at = time.monotonic()
        time.sleep(0.3)  # transactions complete at the kill are recorded by the sink
        in_flight, tasks, fanouts = _held_by(app, victim)
        assert fanouts >= 1, "killed after the fan-out ended"
        survivor = "b" if name == "a" else "a"
        asked += _commands([ports["ab".index(survivor)]] * 2, "3")

        # The survivor takes the dead one's claims over once their lease has run out.
        taken: dict[str, float] = {}
        while len(taken) < 3:
            rcpts, t, f = _held_by(app, victim)
            now = time.monotonic() - killed_at
            for kind, left in (("recipients", rcpts), ("tasks", t), ("fan-out", f)):
                if not left:
                    taken.setdefault(kind, now)
            # The dead one's recipients are due again when their lease ends and wait their
            # turn behind older due mail: on a busy survivor that is the rest of the posts.
            assert now < LEASE + 40, (len(rcpts), t, f)
            time.sleep(0.1)
        takeover = max(taken.values())
        assert taken["fan-out"] < LEASE + 10 and taken["tasks"] < LEASE + 10, taken

        everyone = set(members) | set(asked)
        wanted = {(m, p) for m in members for p in POSTS} | {(a, "") for a in asked}
        sink.wait_for(lambda got: wanted <= {k for m in got for k in _keys(m)}, timeout=300)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with app.store.session() as s:
                left = s.scalar(select(func.count()).select_from(OutboundRecipient).where(
                    OutboundRecipient.state == "queued")) or 0
                left += s.scalar(select(func.count()).select_from(InboundTask).where(
                    InboundTask.state != "done")) or 0
            if not left:
                break
            time.sleep(0.2)
        assert left == 0
        time.sleep(1.0)  # nothing more arrives
    finally:
        for p in procs.values():
            _stop(p)
        sink.stop()

    counts = collections.Counter(k for m in sink.received for k in _keys(m))
    assert set(counts) == wanted  # every member got both posts, every asker a reply
    twice = {k for k, n in counts.items() if n > 1}
    assert all(n <= 2 for n in counts.values())
    # Only what the dead process held at the kill (its transactions in flight) came twice.
    assert {r for r, _ in twice} <= in_flight, sorted(twice)[:10]
    print(f"\ntwo servers: killed pid {victim} holding {len(in_flight)} recipient(s), "
          f"{tasks} inbound task(s) and the fan-out; survivor took them over in "
          f"{takeover:.1f}s (lease {LEASE:.0f}s: "
          f"{', '.join(f'{k} {v:.1f}s' for k, v in taken.items())}); "
          f"duplicates: {len(twice)}")


# The check is made where several hosts can share the database: PostgreSQL.
@pytest.mark.slow
@pytest.mark.parametrize("db_url", [d for d in DATABASES if d == "postgres"], indirect=True)
def test_a_server_with_a_foreign_data_dir_refuses_to_start(app, tmp_path, db_url):
    from listmgr.store import datadir
    assert datadir.check(app.store, tmp_path / "shared")  # the first start records it
    assert datadir.check(app.store, tmp_path / "shared")  # and accepts it again
    (tmp_path / "b").mkdir()
    other = write_config(tmp_path / "b", db_url, data_dir=str(tmp_path / "b" / "var"))
    r = run_cli(other, "serve", timeout=60)
    assert r.status == 1
    [line] = [ln for ln in r.err.splitlines() if ln.startswith("listmgr:")]
    assert "every host serving one database must mount the same data_dir" in line
    assert "--adopt-data-dir" in line and "Traceback" not in r.err
    r = run_cli(other, "deliver", "--once", "--timeout", "5")  # it reads bodies too
    assert r.status == 1 and "must mount the same data_dir" in r.err
    assert not (tmp_path / "b" / "var" / datadir.MARKER).exists()
    # Adopting it (the data moved here) makes it the database's; the old one is refused.
    new_id = datadir.check(app.store, tmp_path / "b" / "var", adopt=True)
    assert datadir.marker_id(tmp_path / "b" / "var") == new_id
    with pytest.raises(datadir.ForeignDataDir):
        datadir.check(app.store, tmp_path / "shared")
