#!/usr/bin/env python3
"""SMTP ingress throughput: Postfix's `smtp-source` against listmgr's SMTP listener alone.

    python bench/smtp_ingress.py [--messages 2000] [--sessions 20] [--size 1024]
                                 [--databases sqlite,postgres]

Each accepted message is fsynced to the spool and committed (one inbound row and one task)
before its 250, exactly as in `listmgr serve`; the pipeline is not running, so what is
measured is the front door alone. Prints messages/s (and MB/s) per database.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from listmgr import config as config_mod  # noqa: E402
from listmgr.app import App  # noqa: E402
from listmgr.store import migrate  # noqa: E402
from listmgr.store.models import InboundMessage  # noqa: E402

from scratch import scratch_database  # noqa: E402



class Ingress:
    def __init__(self, cfg_path: Path):
        self.config = config_mod.load(cfg_path)
        self.app = App.from_config(self.config)
        migrate.upgrade(self.app.store.engine)
        self.ports: dict[str, int] = {}
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    async def _run(self) -> None:
        from listmgr.smtp import server
        self.app.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        parts = server.components(self)
        for p in parts:
            await p.start()
        self.ready.set()
        await self.stop_event.wait()
        for p in reversed(parts):
            await p.stop()

    def _main(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._run())

    def __enter__(self) -> "Ingress":
        self.thread.start()
        self.ready.wait(30)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)
        self.app.store.dispose()


def one(db: str, messages: int, sessions: int, size: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d, scratch_database(db, d) as url:
        cfg = Path(d) / "listmgr.toml"
        cfg.write_text(f'domain = "example.org"\ndata_dir = "{d}/var"\n'
                       f'database_url = "{url}"\nlog_level = "WARNING"\n'
                       f'[smtp]\nlisten = "127.0.0.1:0"\nmax_connections = 200\n'
                       # one client address opens every session: no per-address caps
                       f'max_connections_per_ip = 0\nmax_data_sessions_per_ip = 0\n')
        with Ingress(cfg) as srv:
            port = srv.ports["smtp"]
            t0 = time.perf_counter()
            subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(messages),
                            "-l", str(size), "-f", "a@outside.example",
                            "-t", "postmaster@example.org", f"127.0.0.1:{port}"],
                           check=True, capture_output=True)
            elapsed = time.perf_counter() - t0
            with srv.app.store.session() as s:
                stored = s.scalar(select(func.count()).select_from(InboundMessage))
        return elapsed, stored

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--databases", default="sqlite,postgres")
    a = ap.parse_args()
    for db in a.databases.split(","):
        elapsed, stored = one(db, a.messages, a.sessions, a.size)
        rate = a.messages / elapsed
        print(f"{db}: {a.messages} x {a.size} B over {a.sessions} sessions: {elapsed:.1f} s, "
              f"{rate:.0f} msg/s, {rate * a.size / 1e6:.1f} MB/s, stored {stored}")


if __name__ == "__main__":
    main()
