#!/usr/bin/env python3
"""Time `listmgr subscribe LIST -` with N addresses from stdin on SQLite and PostgreSQL.

    python bench/import_members.py [--n 100000] [--runs 3] [--databases sqlite,postgres]

Prints the median seconds per database (the target: under 10 s for 100,000 on SQLite).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratch import scratch_database



def run(cfg: Path, *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "listmgr", "--config", str(cfg), *args], input=stdin,
                   text=True, check=True, capture_output=True)


def one(db: str, n: int, addresses: str) -> float:
    with tempfile.TemporaryDirectory() as d, scratch_database(db, d) as url:
        cfg = Path(d) / "listmgr.toml"
        cfg.write_text(f'data_dir = "{d}/var"\ndatabase_url = "{url}"\n')
        run(cfg, "init")
        run(cfg, "newlist", "bench", "--owner", "owner@example.org")
        t0 = time.perf_counter()
        run(cfg, "subscribe", "bench", "-", stdin=addresses)
        return time.perf_counter() - t0

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--databases", default="sqlite,postgres")
    a = ap.parse_args()
    addresses = "".join(f"member{i}@host{i % 997}.example.com\n" for i in range(a.n))
    for db in a.databases.split(","):
        times = [one(db, a.n, addresses) for _ in range(a.runs)]
        print(f"{db:9} n={a.n} runs={a.runs} median={statistics.median(times):.2f}s "
              f"min={min(times):.2f}s max={max(times):.2f}s "
              f"({a.n / statistics.median(times):,.0f} addresses/s)")


if __name__ == "__main__":
    main()
