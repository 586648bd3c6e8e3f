#!/usr/bin/env python3
"""POP3 throughput: log in, download and delete N messages of SIZE bytes with poplib, and
the cost of a login (argon2id check + relay grant) on SQLite and PostgreSQL.

    python bench/pop3_download.py [--n 1000] [--size 10000] [--logins 50]
                                  [--databases sqlite,postgres]

Runs a real `listmgr` POP3 server (the service, in a thread) on 127.0.0.1 port 0.
"""

from __future__ import annotations

import argparse
import asyncio
import poplib
import statistics
import tempfile
import threading
import time
from pathlib import Path

from scratch import scratch_database


def one(db: str, n: int, size: int, logins: int) -> tuple[float, float]:
    from listmgr import config
    from listmgr.app import App
    from listmgr.mailbox.maildir import Maildir
    from listmgr.service import Service
    from listmgr.store import mailboxes, migrate

    with tempfile.TemporaryDirectory() as d, scratch_database(db, d) as url:
        cfg_path = Path(d) / "listmgr.toml"
        cfg_path.write_text(f'domain = "example.org"\ndata_dir = "{d}/var"\n'
                            f'database_url = "{url}"\n[smtp]\nlisten = "127.0.0.1:0"\n'
                            f'[pop3]\nlisten = "127.0.0.1:0"\n[delivery]\nworkers = false\n')
        cfg = config.load(cfg_path)
        app = App.from_config(cfg)
        migrate.upgrade(app.store.engine)
        with app.store.session() as s:
            mailboxes.add_user(s, "bench", "bench password")
        md = Maildir.for_user(cfg.data_dir, "bench")
        line = b"x" * 76 + b"\r\n"
        body = b"Subject: bench\r\n\r\n" + line * (size // len(line))
        for _ in range(n):
            md.deliver(body)
        svc = Service(cfg, app)
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        t = threading.Thread(target=lambda: loop.run_until_complete(svc.run(ready=ready.set)),
                             daemon=True)
        t.start()
        ready.wait(30)
        try:
            port = svc.ports["pop3"]
            t0 = time.perf_counter()
            for _ in range(logins):
                p = poplib.POP3("127.0.0.1", port)
                p.user("bench")
                p.pass_("bench password")
                p.quit()
            per_login = (time.perf_counter() - t0) / logins
            t0 = time.perf_counter()
            p = poplib.POP3("127.0.0.1", port)
            p.user("bench")
            p.pass_("bench password")
            count, _ = p.stat()
            for i in range(1, count + 1):
                p.retr(i)
                p.dele(i)
            p.quit()
            download = time.perf_counter() - t0
            assert count == n and md.entries() == []
        finally:
            loop.call_soon_threadsafe(svc.request_stop)
            t.join(30)
            app.store.dispose()
        return per_login, download


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=10000)
    ap.add_argument("--logins", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--databases", default="sqlite,postgres")
    a = ap.parse_args()
    print(f"{a.n} messages of ~{a.size} bytes; {a.logins} logins; median of {a.runs} runs")
    for db in a.databases.split(","):
        results = [one(db, a.n, a.size, a.logins) for _ in range(a.runs)]
        login = statistics.median(r[0] for r in results)
        dl = statistics.median(r[1] for r in results)
        print(f"{db:<10} login {login * 1000:.0f} ms   download+delete {dl:.2f} s "
              f"({a.n / dl:.0f} msg/s, {a.n * a.size / dl / 1e6:.1f} MB/s)")


if __name__ == "__main__":
    main()
