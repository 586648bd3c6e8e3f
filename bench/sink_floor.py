#!/usr/bin/env python3
"""What the fan-out benchmark's sink costs by itself: Postfix's own `smtp-source` sends the
same post, one recipient per transaction (as VERP does), to `smtp-sink` started exactly as
bench/fanout.py starts it.

    python bench/sink_floor.py [--n 20000] [--sessions 5,20]

smtp-sink is one process: the CPU it spends per transaction, times the transactions, is a
floor for any sender's wall time on this machine (no client can finish before the sink has
read its mail). Prints, per session count: wall seconds, transactions/s, the sink's CPU per
transaction and the floor that gives for 100,000 transactions, and smtp-source's own CPU.
smtp-source keeps its connections (`-d`) but waits for each reply (no PIPELINING), so it is
a C client's figure, not the fastest possible one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import SINK, free_port, make_post, wait_port  # noqa: E402

SOURCE = "/usr/sbin/smtp-source"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_sink(port: int, capture: str) -> subprocess.Popen:
    """smtp-sink as bench/fanout.py runs it: one capture file per transaction on /dev/shm."""
    cmd = [SINK, "-c", "-m", "1024", "-d", f"{capture}/%H%M%S.", f"127.0.0.1:{port}", "1024"]
    if os.geteuid() == 0:
        cmd[1:1] = ["-u", "nobody"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_port(port, 10):
        proc.kill()
        raise SystemExit("smtp-sink did not listen")
    return proc


def one(n: int, sessions: int, post: Path) -> dict[str, float]:
    capture = tempfile.mkdtemp(prefix="listmgr-sink-floor-", dir="/dev/shm")
    os.chmod(capture, 0o777)
    port = free_port()
    sink = start_sink(port, capture)
    try:
        t0 = time.monotonic()
        client = subprocess.run(
            ["/usr/bin/time", "-f", "%U %S", SOURCE, "-d", "-s", str(sessions), "-m", str(n),
             "-F", str(post), "-f", "owner-bench+member=example.net@example.org",
             "-t", "member@example.net", f"127.0.0.1:{port}"],
            check=True, capture_output=True, text=True)
        wall = time.monotonic() - t0
        time.sleep(0.2)
        sink_cpu = cpu_seconds(sink.pid)
        files = len(os.listdir(capture))
    finally:
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(capture, ignore_errors=True)
    if files != n:
        raise SystemExit(f"the sink captured {files} transactions, not {n}")
    user, sys_ = (float(x) for x in client.stderr.split()[-2:])
    return {"wall": wall, "sink_cpu": sink_cpu, "client_cpu": user + sys_}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--sessions", default="5,20")
    args = ap.parse_args()
    for tool in (SINK, SOURCE, "/usr/bin/time"):
        if not os.path.exists(tool):
            raise SystemExit(f"{tool} not found (apt-get install postfix time)")
    with tempfile.TemporaryDirectory() as tmp:
        post = Path(tmp) / "post.txt"
        post.write_bytes(make_post().replace(b"\r\n", b"\n"))
        print("| sessions | transactions | seconds | per s | sink CPU per transaction | "
              "sink floor for 100,000 | smtp-source CPU s | load |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for sessions in (int(s) for s in args.sessions.split(",")):
            r = one(args.n, sessions, post)
            per = r["sink_cpu"] / args.n
            print(f"| {sessions} | {args.n:,} | {r['wall']:.1f} | {args.n / r['wall']:,.0f} | "
                  f"{per * 1e6:.0f} us | {per * 100_000:.1f} s | {r['client_cpu']:.1f} | "
                  f"{os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
