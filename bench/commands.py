#!/usr/bin/env python3
"""Command-mail benchmark: N command mails through the command handler, in-process.

    python bench/commands.py [--n 500] [--database sqlite|postgres] [--pg-url URL]

Each mail comes from its own address and holds `subscribe bench`, `which` and `lists` (an
`open` list, so each one adds a member, queues a welcome, an owner notice and the reply).
Timed: parsing, the commands in the store, rendering and queueing; one store transaction
per mail, as the pipeline runs it. Prints mails/s and the median per mail.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--database", default="sqlite", choices=["sqlite", "postgres"])
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    from listmgr.commands import worker
    from listmgr.store import lists as repo
    from tests.commands_helpers import make_app
    tmp = Path(tempfile.mkdtemp(prefix="bench-commands-"))
    app, close = make_app(tmp, args.database, args.pg_url,
                          commands__replies_per_hour=10**6)
    try:
        with app.store.session() as s:
            mlist = repo.create_list(s, "bench", ["owner@example.com"], password="pw",
                                     description="Benchmark list")
            mlist.subscribe_policy = "open"
        times = []
        start = time.perf_counter()
        for i in range(args.n):
            frm = f"user{i}-{secrets.token_hex(3)}@example.net"
            data = (f"From: {frm}\r\nTo: majordomo@example.org\r\nSubject: bench\r\n"
                    f"Message-ID: <{i}@example.net>\r\n\r\nsubscribe bench\r\nwhich\r\n"
                    f"lists\r\nend\r\n").encode()
            t0 = time.perf_counter()
            with app.store.session() as s:
                worker.process(app, s, data=data, mail_from=frm)
            times.append(time.perf_counter() - t0)
        total = time.perf_counter() - start
        print(f"{args.database}: {args.n} command mails in {total:.2f} s = "
              f"{args.n / total:.0f} mails/s; median {statistics.median(times) * 1000:.1f} ms,"
              f" p95 {sorted(times)[int(len(times) * 0.95)] * 1000:.1f} ms")
    finally:
        close()


if __name__ == "__main__":
    main()
