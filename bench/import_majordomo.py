#!/usr/bin/env python3
"""Time `listmgr import-majordomo` on a Majordomo directory of 100 lists and 1,000,000
members in all (each with a LIST.config, .info and a resend alias), on a fresh database.

    python bench/import_majordomo.py [--lists 100] [--members 1000000] [--runs 1]
                                     [--databases sqlite]

Prints the median wall-clock seconds per database (the target: under 60 s on SQLite) and
the CPU seconds the import process used (user + system), which a loaded machine inflates
less than the wall clock.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratch import scratch_database


def build(root: Path, n_lists: int, n_members: int) -> tuple[Path, Path]:
    lists = root / "lists"
    lists.mkdir(parents=True)
    aliases = []
    per = n_members // n_lists
    for k in range(n_lists):
        name = f"list{k:03d}"
        with (lists / name).open("w") as f:
            f.write("".join(f"member{k}x{i}@host{i % 997}.example.com\n" for i in range(per)))
        (lists / f"{name}.config").write_text(
            f"admin_passwd = pw{k}\napprove_passwd = pw{k}\ndescription = List {k}\n"
            f"subject_prefix = [$LIST]\nrestrict_post = {name}\nmaxlength = 60000\n")
        (lists / f"{name}.info").write_text(f"About list {k}.\n")
        aliases.append(f'{name}: "|/usr/local/majordomo/wrapper resend -l {name} '
                       f'{name}-outgoing"\nowner-{name}: owner{k}@example.org\n')
    (root / "aliases").write_text("".join(aliases))
    return lists, root / "aliases"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def one(db: str, lists: Path, aliases: Path) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d, scratch_database(db, d) as url:
        cfg = Path(d) / "listmgr.toml"
        cfg.write_text(f'data_dir = "{d}/var"\ndatabase_url = "{url}"\n')
        cmd = [sys.executable, "-m", "listmgr", "--config", str(cfg)]
        subprocess.run([*cmd, "init"], check=True, capture_output=True)
        t0, c0 = time.perf_counter(), _cpu()
        subprocess.run([*cmd, "import-majordomo", "--listdir", str(lists), "--aliases",
                        str(aliases)], check=True, capture_output=True)
        return time.perf_counter() - t0, _cpu() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lists", type=int, default=100)
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--databases", default="sqlite")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as src:
        lists, aliases = build(Path(src), a.lists, a.members)
        for db in a.databases.split(","):
            runs = [one(db, lists, aliases) for _ in range(a.runs)]
            times = [w for w, _ in runs]
            med = statistics.median(times)
            cpu = statistics.median(c for _, c in runs)
            print(f"{db:9} lists={a.lists} members={a.members} runs={a.runs} "
                  f"median={med:.1f}s min={min(times):.1f}s max={max(times):.1f}s "
                  f"cpu={cpu:.1f}s ({a.members / med:,.0f} members/s)")


if __name__ == "__main__":
    main()
