#!/usr/bin/env python3
"""Isolation benchmark: a command reply and SMTP ingress while a big post is fanned out.

    python bench/isolation.py [--members 1000000] [--database sqlite|postgres]
                              [--listmgr .venv/bin/listmgr] [--probe-seconds 60]
                              [--through-queue] [--processes N]

A fresh data dir, a list of N members (`listmgr subscribe LIST -`), a mailbox user, Postfix's
smtp-sink as the smarthost (bench/fanout.py's Sink), `listmgr serve` as a subprocess. Then:

1. a 10 KB post to the list goes in over SMTP (the clock starts at its 250);
2. half a second later a `lists` command mail to majordomo@: its **reply time** is from that
   mail's 250 to the sink receiving the reply (target: under 2 s);
3. meanwhile four SMTP clients send 1 KB messages to the mailbox user one after another and
   time each DATA -> 250 (**ingress latency**, p50/p99; target p99 under 100 ms), until every
   member's copy has reached the sink or `--probe-seconds` have passed. By default that mail
   goes into the mailbox at DATA (`[smtp] mailbox_at_ingress`); with `--through-queue` it
   takes the spool, the group commit and the mailbox worker, as mail for a list does.

Prints one line of figures (and how long the fan-out and its delivery took).
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import Sink, addresses, free_port, make_post, wait_port  # noqa: E402
from scratch import scratch_database  # noqa: E402

LIST = "bench"
DOMAIN = "example.org"
ASKER = "joe@asker.example"


def scan_for(sink: Sink, needle: bytes, found: dict) -> None:
    """Record in `found` the first capture file whose envelope mentions `needle`. A file
    smtp-sink is still writing (its envelope lines not all in: no message line after them
    yet) is looked at again on the next pass, not passed over for good."""
    for e in sorted(Path(sink.dir).iterdir()):
        if e.name in found.setdefault("_seen", set()):
            continue
        with open(e, "rb") as f:
            head = f.read(4096)
        if not any(line and not line.startswith(b"X-") for line in head.split(b"\n")[:-1]):
            continue
        found["_seen"].add(e.name)
        env = head.split(b"\n\n", 1)[0] if b"\nX-" in head else head[:1024]
        if needle in env:
            found["at"] = e.stat().st_mtime
            return


class Probes:
    """SMTP clients timing DATA -> 250 for small messages to a mailbox user."""

    def __init__(self, port: int, clients: int = 4):
        self.port = port
        self.clients = clients
        self.latencies: list[float] = []
        self.errors = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(clients)]

    def _run(self, n: int) -> None:
        body = b"Subject: probe\r\n\r\n" + (b"x" * 98 + b"\r\n") * 10
        while not self.stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as c:
                    c.ehlo("probe.example")
                    while not self.stop.is_set():
                        c.mail("probe@outside.example")
                        c.rcpt(f"alice@{DOMAIN}")
                        t = time.perf_counter()
                        code, _ = c.data(body)
                        dt = time.perf_counter() - t
                        with self.lock:
                            if code == 250:
                                self.latencies.append(dt)
                            else:
                                self.errors += 1
                                if self.errors == 1:
                                    print(f"probe refused: {code}", file=sys.stderr)
                        time.sleep(0.02)
            except (OSError, smtplib.SMTPException) as exc:
                with self.lock:
                    self.errors += 1
                    if self.errors == 1:
                        print(f"probe error: {exc!r}", file=sys.stderr)
                time.sleep(0.1)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> list[float]:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        return sorted(self.latencies)


def cpu_seconds(pid: int) -> float | None:
    """user+sys CPU seconds of a running process and its SMTP acceptor processes (its
    children; Linux /proc), their threads included."""
    def own(p: int | str) -> tuple[int, int] | None:  # (ppid, ticks)
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return int(fields[1]), int(fields[11]) + int(fields[12])
    mine = own(pid)
    if mine is None:
        return None
    ticks = mine[1]
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            child = own(entry)
            if child is not None and child[0] == pid:
                ticks += child[1]
    return ticks / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run(listmgr: str, n: int, database: str, probe_seconds: float, timeout: float,
        keep_log: str | None = None, through_queue: bool = False,
        processes: int | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="listmgr-isolation-") as d, \
            scratch_database(database, d) as url:
        work = Path(d)
        sink = Sink(free_port())
        smtp_port = free_port()
        cfg = work / "listmgr.toml"
        cfg.write_text(f'domain = "{DOMAIN}"\ndata_dir = "{work / "var"}"\n'
                       f'database_url = "{url}"\nlog_level = "INFO"\n'
                       f'[smtp]\nlisten = "127.0.0.1:{smtp_port}"\n'
                       f'max_connections_per_ip = 0\nmax_data_sessions_per_ip = 0\n'
                       + ('mailbox_at_ingress = false\n' if through_queue else '')
                       + (f'processes = {processes}\n' if processes else '') +
                       f'[pop3]\nlisten = "127.0.0.1:{free_port()}"\n'
                       f'[web]\nlisten = ""\n'
                       f'[delivery]\nsmarthost = "127.0.0.1:{sink.port}"\n')

        def cli(*args: str, stdin: bytes | None = None) -> None:
            subprocess.run([listmgr, "--config", str(cfg), *args], check=True, input=stdin,
                           stdout=subprocess.DEVNULL)

        t = time.perf_counter()
        cli("init")
        cli("newlist", LIST, "--owner", f"owner@{DOMAIN}")
        cli("config", LIST, "post_policy", "open")
        cli("user", "add", "alice", "--password-stdin", stdin=b"probe-password\n")
        feed = subprocess.Popen([listmgr, "--config", str(cfg), "subscribe", LIST, "-"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        chunk: list[str] = []
        for a in addresses(n):
            chunk.append(a)
            if len(chunk) >= 10_000:
                feed.stdin.write("".join(chunk).encode())
                chunk.clear()
        feed.stdin.write("".join(chunk).encode())
        feed.stdin.close()
        if feed.wait() != 0:
            raise SystemExit("subscribe failed")
        setup = time.perf_counter() - t

        sink.start()
        log = open(work / "serve.log", "wb")
        serve = subprocess.Popen([listmgr, "--config", str(cfg), "serve"], stdout=log,
                                 stderr=subprocess.STDOUT)
        probes = Probes(smtp_port)
        try:
            if not wait_port(smtp_port, 60):
                raise SystemExit("listmgr serve did not listen")
            time.sleep(1.0)
            with smtplib.SMTP("127.0.0.1", smtp_port) as c:
                c.sendmail("poster@example.com", [f"{LIST}@{DOMAIN}"], make_post())
            t_post = time.time()
            probes.start()
            time.sleep(0.5)
            with smtplib.SMTP("127.0.0.1", smtp_port) as c:
                c.sendmail(ASKER, [f"majordomo@{DOMAIN}"],
                           f"From: {ASKER}\r\nTo: majordomo@{DOMAIN}\r\nSubject: q\r\n\r\n"
                           "lists\r\n".encode())
            t_cmd = time.time()
            found: dict = {}
            seen: dict[str, tuple[float, int, int]] = {}
            deadline = time.monotonic() + timeout
            probe_end = time.monotonic() + probe_seconds
            total = 0
            while time.monotonic() < deadline:
                time.sleep(0.2)
                if "at" not in found:
                    scan_for(sink, ASKER.encode(), found)
                sink.scan(seen)
                total = sum(v[1] for v in seen.values())
                if time.monotonic() > probe_end and not probes.stop.is_set():
                    probes.stop.set()
                if total >= n + 1 and "at" in found:
                    break
            lat = probes.finish()
            cpu = cpu_seconds(serve.pid)
            load = os.getloadavg()[0]
            last = max((v[0] for v in seen.values()), default=t_post)
        finally:
            probes.stop.set()
            if serve.poll() is None:
                serve.terminate()
                try:
                    serve.wait(30)
                except subprocess.TimeoutExpired:
                    serve.kill()
            sink.stop()
            log.close()
            if keep_log:
                shutil.copy(work / "serve.log", keep_log)
        return {
            "members": n, "database": database, "setup_s": round(setup, 1),
            "reply_s": round(found["at"] - t_cmd, 2) if "at" in found else None,
            "post_delivered_s": round(last - t_post, 1), "delivered": total,
            "ingress_n": len(lat), "ingress_errors": probes.errors,
            "ingress_p50_ms": round(pct(lat, 50) * 1000, 1),
            "ingress_p99_ms": round(pct(lat, 99) * 1000, 1),
            "ingress_max_ms": round((lat[-1] if lat else float("nan")) * 1000, 1),
            "server_cpu_s": round(cpu, 1) if cpu is not None else None,
            "load_avg_1m": round(load, 1),
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--database", default="sqlite")
    ap.add_argument("--listmgr", default=str(Path(sys.executable).parent / "listmgr"))
    ap.add_argument("--probe-seconds", type=float, default=60.0)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--keep-log", help="copy the server's log here at the end")
    ap.add_argument("--through-queue", action="store_true",
                    help="the probes' mail through the spool and the mailbox worker")
    ap.add_argument("--processes", type=int,
                    help='[smtp] processes (default: the server\'s, "auto")')
    a = ap.parse_args()
    print(run(a.listmgr, a.members, a.database, a.probe_seconds, a.timeout, a.keep_log,
              a.through_queue, a.processes), flush=True)


if __name__ == "__main__":
    main()
