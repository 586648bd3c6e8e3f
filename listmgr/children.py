"""The server's child processes (SMTP acceptors, delivery processes): the configuration
handed over their stdin, their supervision (started again when they die, stopped with the
server), their exit status in words, and the removal of what a dead one left half-written
in the spool."""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import pickle
import signal
import struct
import time
from pathlib import Path
from typing import Any

from listmgr.config import Config
from listmgr.diskspace import remove_quietly


def send_config(config: Config) -> bytes:
    """The configuration as the server writes it to a child's stdin."""
    payload = pickle.dumps(config)
    return struct.pack("!I", len(payload)) + payload


def read_config(stream: Any) -> Config:
    """The server's configuration, as it wrote it to our stdin."""
    head = stream.read(4)
    if len(head) != 4:
        raise SystemExit("no configuration on stdin (started by `listmgr serve` only)")
    (size,) = struct.unpack("!I", head)
    config = pickle.loads(stream.read(size))
    if not isinstance(config, Config):
        raise SystemExit("not a configuration on stdin (started by `listmgr serve` only)")
    return config


def status_text(code: int) -> str:
    """An exit status as the log says it: `status 1`, `SIGKILL`."""
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def remove_tmp_of(data_dir: Path, pid: int) -> int:
    """Remove the half-written spool files of process `pid` (spool.Spool.write names them
    `<name>.<pid>.<random>`); returns how many."""
    n = 0
    try:
        names = os.listdir(data_dir / "spool" / "tmp")
    except FileNotFoundError:
        return 0
    for name in names:
        parts = name.split(".")
        if len(parts) >= 3 and parts[-2] == str(pid):
            remove_quietly(data_dir / "spool" / "tmp" / name)
            n += 1
    return n


START_TIMEOUT = 60.0  # seconds for a child to say it is ready
STEADY = 10.0  # a child that ran this long is started again at once when it dies
MAX_BACKOFF = 30.0


class Child:
    """One child process slot as the server sees it (a process that dies is replaced by
    another in the same slot)."""

    def __init__(self, index: int):
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.started = 0.0
        self.quick_deaths = 0
        self.served = 0  # processes started in this slot
        self.ready = False  # said "ready" and still running

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class Supervisor(abc.ABC):
    """Starts child processes (`spawn`, given by each kind of child), starts one again when it
    dies (at once, then backing off if it keeps dying; its half-written spool files
    removed), forwards signals to them and stops them (SIGTERM, then SIGKILL after
    `stop_timeout`)."""

    def __init__(self, what: str, data_path: Path, children: list[Any], *,
                 logger: logging.Logger, stop_timeout: float):
        self.what = what  # in the log: "SMTP acceptor", "delivery process"
        self.data_path = data_path
        self.children = children
        self.log = logger
        self.stop_timeout = stop_timeout
        self._watchers: list[asyncio.Task] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """The children running now (started and ready)."""
        return [c.proc.pid for c in self.children if c.proc is not None and c.ready]

    @abc.abstractmethod
    async def spawn(self, c: Any) -> None:
        """Start a process in slot `c` and wait until it is ready (`ready`)."""

    def forget(self, c: Any) -> None:
        """What the server holds for a child that has exited (nothing, unless a kind of
        child says otherwise)."""

    async def start_children(self) -> None:
        self._stopping = False
        await asyncio.gather(*(self.spawn(c) for c in self.children))
        self._watchers = [asyncio.create_task(self._watch(c), name=f"{self.what} {c.index}")
                          for c in self.children]

    async def ready(self, c: Any, proc: asyncio.subprocess.Process, config: Config) -> None:
        """Hand `proc` (just started in slot `c`) the configuration and wait for its
        "ready" line; a child that does not say it in time is killed (and replaced)."""
        c.proc, c.started, c.ready = proc, time.monotonic(), False
        c.served += 1
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(send_config(config))
        await proc.stdin.drain()  # stdin stays open: its end tells the child we are gone
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except asyncio.TimeoutError:
            line = b""
        if line.strip() == b"ready":
            c.ready = proc.returncode is None
        else:
            self.log.error("%s %d (pid %d) did not start", self.what, c.index, proc.pid)
            if proc.returncode is None:
                proc.kill()

    async def _watch(self, c: Any) -> None:
        while True:
            proc = c.proc
            assert proc is not None
            code = await proc.wait()
            c.ready = False
            self.forget(c)
            if self._stopping:
                return
            # what it was writing to the spool when it died (names carry the writer's pid)
            await asyncio.to_thread(remove_tmp_of, self.data_path, proc.pid)
            ran = time.monotonic() - c.started
            c.quick_deaths = 0 if ran >= STEADY else c.quick_deaths + 1
            delay = 0.0 if c.quick_deaths <= 1 else min(MAX_BACKOFF, 2.0 ** c.quick_deaths)
            self.log.warning("%s %d (pid %d) exited with %s after %.1fs; starting another%s",
                             self.what, c.index, proc.pid, status_text(code), ran,
                             f" in {delay:.0f}s" if delay else "")
            if delay:
                await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self.spawn(c)
            except Exception:
                self.log.exception("%s %d could not be started", self.what, c.index)
                c.started = time.monotonic()
                await asyncio.sleep(MAX_BACKOFF)

    def forward_signal(self, sig: int) -> None:
        for c in self.children:
            if c.proc is not None and c.proc.returncode is None:
                c.proc.send_signal(sig)

    async def stop(self) -> None:
        self._stopping = True
        self.forward_signal(signal.SIGTERM)
        for c in self.children:
            if c.proc is None:
                continue
            try:
                await asyncio.wait_for(c.proc.wait(), self.stop_timeout)
            except asyncio.TimeoutError:
                self.log.warning("%s %d (pid %d) did not stop; killed", self.what, c.index,
                                 c.proc.pid)
                c.proc.kill()
                await c.proc.wait()
        for t in self._watchers:
            t.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []
        for c in self.children:
            self.forget(c)


# ---------------------------------------------------------------- in a child process

def stop_event(what: str, index: int, *, on_hup: Any = None,
               logger: logging.Logger) -> asyncio.Event:
    """Set on SIGTERM, or when the server's end of our stdin closes (the server is gone,
    even killed with SIGKILL). SIGHUP calls `on_hup` (the server forwards its own); SIGINT
    is ignored (the server decides: a terminal's ^C reaches the whole group)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if on_hup is not None:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def parent_gone() -> None:
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            logger.warning("%s %d: the server is gone; stopping", what, index)
            stop.set()

    loop.add_reader(0, parent_gone)
    return stop
