#!/usr/bin/env python3
"""Abuse benchmark: attacks against a real `listmgr serve` while a normal client sends one
message a second.

    python bench/abuse.py [--phase-seconds 20] [--database sqlite|postgres]
                          [--source DIR]   # run the listmgr found in DIR (e.g. an old checkout)

The server runs as its own process (`listmgr serve`). Its smarthost is a hostile
SMTP server that never ends its EHLO reply, so every delivery attempt meets the
endless-reply attack for the whole run. The attacks connect from 127.0.0.2, the normal
client from 127.0.0.1. Phases, one after the other:

  baseline      no attack
  slowloris     40 connections in DATA, each sending one byte every 2 s
  flood         300 connections held open (refused ones reconnect)
  many-parts    a 3 MB post of 430,000 empty MIME parts, sent again and again
  regex         a list whose taboo_body is a runaway pattern, posted to again and again

For each phase it prints the normal client's p50/p99 SMTP transaction time and failures,
and at the end the server's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scratch import scratch_database  # noqa: E402
from tests.adversarial.hostile import EndlessReplyServer  # noqa: E402
from tests.support import RecordingSink  # noqa: E402

ATTACKER = "127.0.0.2"

# Runs listmgr's CLI from the directory given first, even when another copy is installed
# in editable mode (its import hook would otherwise win over PYTHONPATH). That directory's
# listmgr/ needs `migrations` and `templates` links to the checkout's folders of those
# names (the wheel maps them so).
BOOT = (
    "import sys; src = sys.argv.pop(1); "
    "sys.meta_path[:] = [f for f in sys.meta_path "
    "if '_editable' not in getattr(f, '__module__', '')]; "
    "sys.path.insert(0, src); "
    "from listmgr.cli import main; sys.exit(main(sys.argv[1:]))"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """`python -m listmgr serve` in a subprocess, on fixed loopback ports."""

    def __init__(self, directory: str, url: str, smarthost: int, source: Path):
        self.dir = Path(directory)
        self.port = free_port()
        self.source = source
        cfg = self.dir / "listmgr.toml"
        cfg.write_text(
            f'domain = "example.org"\ndata_dir = "{self.dir}/var"\n'
            f'database_url = "{url}"\nsite_admins = ["admin@example.net"]\n'
            f'log_level = "ERROR"\n'
            f'[smtp]\nlisten = "127.0.0.1:{self.port}"\n'
            f'[pop3]\nlisten = "127.0.0.1:{free_port()}"\n'
            f'[delivery]\nsmarthost = "127.0.0.1:{smarthost}"\nmin_backoff = "5s"\n'
            f'max_backoff = "10s"\n')
        self.cfg = cfg
        self.env = dict(os.environ)
        self.proc: subprocess.Popen | None = None

    def argv(self, *args: str) -> list[str]:
        if self.source.resolve() == ROOT:
            return [sys.executable, "-m", "listmgr", "--config", str(self.cfg), *args]
        return [sys.executable, "-c", BOOT, str(self.source), "--config", str(self.cfg), *args]

    def cli(self, *args: str, stdin: str = "") -> None:
        subprocess.run(self.argv(*args),
                       input=stdin, text=True, check=True, env=self.env, cwd=self.dir,
                       capture_output=True, timeout=120)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv("serve"),
            env=self.env, cwd=self.dir, stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "serve.log", "w"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as c:
                    c.noop()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("listmgr serve did not start; see serve.log")

    def rss(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in kB."""
        got = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                got[key] = int(value.split()[0])
        return got.get("VmRSS", 0), got.get("VmHWM", 0)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# --------------------------------------------------------------------------- the client

def normal_client(port: int, seconds: float) -> tuple[list[float], int]:
    """One message a second for `seconds`: (transaction times, failures)."""
    times, failures = [], 0
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        n += 1
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
                refused = c.sendmail("alice@example.com", ["demo@example.org"],
                                     f"From: alice@example.com\r\nSubject: normal {n}\r\n"
                                     f"\r\nhello\r\n".encode())
                if refused:
                    failures += 1
        except (smtplib.SMTPException, OSError):
            failures += 1
        times.append(time.monotonic() - t0)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
    return times, failures


# --------------------------------------------------------------------------- attacks

def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(ATTACKER, 0))


def _reply(s: socket.socket) -> bytes:
    """One whole (possibly multiline) reply."""
    buf = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return buf
        buf += chunk
        lines = buf.split(b"\r\n")
        if len(lines) >= 2 and lines[-2][3:4] == b" ":
            return buf


def _cmd(s: socket.socket, line: bytes) -> bytes:
    s.sendall(line + b"\r\n")
    return _reply(s)


def slowloris(port: int, stop: threading.Event) -> None:
    def one():
        while not stop.is_set():
            try:
                s = _connect(port)
                _reply(s)
                _cmd(s, b"EHLO slow.example")
                _cmd(s, b"MAIL FROM:<slow@example.net>")
                _cmd(s, b"RCPT TO:<demo@example.org>")
                if not _cmd(s, b"DATA").startswith(b"354"):
                    s.close()
                    stop.wait(2)
                    continue
                while not stop.is_set():
                    s.sendall(b"x")
                    stop.wait(2)
                s.close()
            except OSError:
                stop.wait(1)
    threads = [threading.Thread(target=one, daemon=True) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def flood(port: int, stop: threading.Event) -> None:
    held: list[socket.socket] = []
    while not stop.is_set():
        held = [s for s in held if s.fileno() >= 0]
        while len(held) < 300 and not stop.is_set():
            try:
                s = _connect(port)
                greeting = _reply(s)
                if greeting.startswith(b"421"):
                    s.close()
                    break
                held.append(s)
            except OSError:
                break
        stop.wait(0.5)
    for s in held:
        s.close()


def many_parts_message() -> bytes:
    parts = b"--b\r\n\r\n" * 430_000
    return (b"From: mallory@example.net\r\nTo: demo@example.org\r\nSubject: parts\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            + parts + b"--b--\r\n")


def many_parts(port: int, stop: threading.Event) -> None:
    data = many_parts_message()
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=120,
                              source_address=(ATTACKER, 0)) as c:
                c.sendmail("mallory@example.net", ["demo@example.org"], data)
        except (smtplib.SMTPException, OSError):
            pass
        stop.wait(0.5)


def regex_posts(port: int, stop: threading.Event) -> None:
    data = b"From: mallory@example.net\r\nSubject: slow\r\n\r\n" + b"x" * 999 + b"\r\n"
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60,
                              source_address=(ATTACKER, 0)) as c:
                c.sendmail("mallory@example.net", ["slow@example.org"], data)
        except (smtplib.SMTPException, OSError):
            pass
        stop.wait(1)


PHASES = [("baseline", None), ("slowloris", slowloris), ("flood", flood),
          ("many-parts", many_parts), ("regex", regex_posts)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phase-seconds", type=float, default=20.0)
    ap.add_argument("--database", default="sqlite")
    ap.add_argument("--source", default=str(ROOT), help="directory holding the listmgr package")
    ap.add_argument("--sink", action="store_true",
                    help="a well-behaved smarthost instead of the endless-reply one (for "
                         "code without reply caps, whose memory would grow ~100 MB/s)")
    args = ap.parse_args()
    hostile = RecordingSink() if args.sink else EndlessReplyServer()
    hostile.start()
    try:
        with tempfile.TemporaryDirectory() as d, scratch_database(args.database, d) as url:
            srv = Serve(d, url, hostile.port, Path(args.source))
            srv.cli("init")
            srv.cli("newlist", "demo", "--owner", "owner@example.net", "--password", "pw")
            srv.cli("config", "demo", "post_policy", "open")
            srv.cli("subscribe", "demo", "-",
                    stdin="".join(f"m{i}@example.com\n" for i in range(20)))
            srv.cli("newlist", "slow", "--owner", "owner@example.net", "--password", "pw")
            srv.cli("config", "slow", "post_policy", "open")
            srv.cli("config", "slow", "taboo_body", "/(x+x+)+y/")
            srv.start()
            print(f"listmgr from {args.source}, {args.database}, "
                  f"{args.phase_seconds:.0f} s per phase; smarthost "
                  f"{'a recording sink' if args.sink else 'never ends its replies'}")
            print(f"{'phase':<12} {'sent':>5} {'fail':>5} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'RSS MB':>7}")
            total_fail = 0
            for name, attack in PHASES:
                stop = threading.Event()
                t = threading.Thread(target=attack, args=(srv.port, stop), daemon=True) \
                    if attack else None
                if t:
                    t.start()
                    time.sleep(2)  # let the attack take hold
                times, failures = normal_client(srv.port, args.phase_seconds)
                stop.set()
                if t:
                    t.join(30)
                total_fail += failures
                q = statistics.quantiles(times, n=100) if len(times) > 1 else times * 99
                rss, _ = srv.rss()
                print(f"{name:<12} {len(times):>5} {failures:>5} "
                      f"{statistics.median(times) * 1000:>8.0f} {q[98] * 1000:>8.0f} "
                      f"{rss / 1024:>7.0f}", flush=True)
            _, peak = srv.rss()
            print(f"peak RSS of listmgr serve: {peak / 1024:.0f} MB; "
                  f"normal client failures: {total_fail}")
            srv.stop()
    finally:
        hostile.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
