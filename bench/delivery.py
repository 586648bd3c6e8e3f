#!/usr/bin/env python3
"""How many recipients per second the delivery worker hands to a local sink.

    python bench/delivery.py [--n 10000] [--per-tx 50] [--runs 3] [--connections 5]
                             [--databases sqlite,postgres] [--sink smtp-sink|aiosmtpd]

One message to N recipients is queued (body stored once); a DeliveryWorker (the same one
`listmgr serve` runs) drains it to the sink, `--per-tx` recipients per SMTP transaction,
with every outcome committed before the next transaction on its connection. The clock runs
from the worker's start to the last recipient recorded as sent. Prints the median
recipients/s per database. The sink is Postfix's `smtp-sink` (C, advertises PIPELINING) or
an aiosmtpd server in a subprocess (PIPELINING added to its EHLO).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scratch import scratch_database  # noqa: E402

BODY = (b"From: list@example.org\r\nTo: bench@example.org\r\nSubject: benchmark\r\n"
        b"Message-ID: <bench@example.org>\r\n\r\n" + b"A line of a list post.\r\n" * 40)

AIOSMTPD_SINK = textwrap.dedent("""
    import sys, time
    from aiosmtpd.controller import Controller
    class H:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            return responses[:-1] + ["250-PIPELINING", responses[-1]]
        async def handle_DATA(self, server, session, envelope):
            return "250 2.0.0 OK"
    c = Controller(H(), hostname="127.0.0.1", port=int(sys.argv[1]))
    c.start()
    print("ready", flush=True)
    sys.stdin.read()
    c.stop()
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(kind: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    if kind == "smtp-sink":
        exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        args = [exe]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        proc = subprocess.Popen(args + [f"127.0.0.1:{port}", "256"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        proc = subprocess.Popen([sys.executable, "-c", AIOSMTPD_SINK, str(port)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        proc.stdout.readline()
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("sink did not start")


def one(db: str, n: int, per_tx: int, sink_port: int, lanes: int = 5) -> float:
    from sqlalchemy import select

    from listmgr import config as config_mod
    from listmgr.app import App
    from listmgr.delivery.worker import DeliveryWorker
    from listmgr.store import migrate
    from listmgr.store.models import OutboundRecipient
    from listmgr.store.outbound import enqueue
    from listmgr.store.outbound_claims import IS_PENDING

    with tempfile.TemporaryDirectory() as d, scratch_database(db, d) as url:
        cfg = config_mod.from_mapping({
            "domain": "example.org", "data_dir": f"{d}/var", "database_url": url,
            "log_level": "WARNING",
            "delivery": {"smarthost": f"127.0.0.1:{sink_port}",
                         "max_recipients_per_transaction": per_tx,
                         "per_host_concurrency": lanes}})
        app = App.from_config(cfg)
        try:
            migrate.upgrade(app.store.engine)
            with app.store.session() as s:
                enqueue(s, app.spool, mail_from="list-owner@example.org",
                        recipients=(f"member{i}@remote{i % 100}.example" for i in range(n)),
                        data=BODY)

            def left() -> bool:
                # An index probe, not a count: the poll must not cost more as n grows.
                with app.store.session() as s:
                    return s.scalar(select(OutboundRecipient.id).where(IS_PENDING).limit(1)) \
                        is not None

            async def run() -> float:
                app.loop = asyncio.get_running_loop()
                worker = DeliveryWorker(app)
                t0 = time.perf_counter()
                await worker.start()
                try:
                    while await asyncio.to_thread(left):
                        await asyncio.sleep(0.05)
                    return time.perf_counter() - t0
                finally:
                    await worker.stop()

            return asyncio.run(run())
        finally:
            app.store.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--per-tx", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=5,
                    help="[delivery] per_host_concurrency: connections to the sink")
    ap.add_argument("--databases", default="sqlite,postgres")
    ap.add_argument("--sink", default="smtp-sink", choices=["smtp-sink", "aiosmtpd"])
    args = ap.parse_args()
    proc, port = start_sink(args.sink)
    try:
        for db in args.databases.split(","):
            times = [one(db, args.n, args.per_tx, port, args.connections) for _ in range(args.runs)]
            med = statistics.median(times)
            print(f"{db:<10} {args.n} recipients, {args.per_tx}/transaction, "
                  f"{args.connections} connections, sink {args.sink}: "
                  f"median {med:.2f} s = {args.n / med:,.0f} recipients/s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in times)})", flush=True)
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
