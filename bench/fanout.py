#!/usr/bin/env python3
"""Fan-out benchmark: one post to a list of N members, delivered to a local SMTP sink.

    python bench/fanout.py [--n 1000,10000,100000,1000000] [--runs 1] [--verp]
                           [--per-transaction 1000] [--listmgr .venv/bin/listmgr]
                           [--dkim off|on|both] [--base-url off|on|both]
                           [--sink-capture files|none]

For each N: a fresh data dir with SQLite, `listmgr init`, a list with N members
(`listmgr subscribe LIST -`), Postfix's smtp-sink on 127.0.0.1 as the smarthost (capture
files on /dev/shm), `listmgr serve` as a subprocess. The post (about 10 KB, from a
non-member, post_policy open) goes in over SMTP; the clock starts when the server answers
250 to DATA and stops at the last transaction the sink records. The sink's running
counters (`smtp-sink -c`, read from a pipe by a thread) tell when that is: with one
transaction per member (VERP, per-member lines) the clock stops at the counter's last
change once it reaches N; otherwise, once the counter has stood still for a second, the
capture files (a few hundred) are counted, until they hold N recipients. The capture files
are checked once after the clock stops: recipients, transactions, distinct envelope
senders, DKIM signatures. Prints one line per run and a Markdown table: seconds,
recipients/s, transactions, CPU seconds of `listmgr serve` (its SMTP acceptor and delivery
processes included) and of the sink, peak RSS of `listmgr serve` (VmHWM: its high-water
mark over the whole run, startup included; the server process only). The run
line also gives the script's own CPU seconds while the clock ran (mostly the counters'
reader), which compete with the server on a small machine.

The list has `verp off` (every member shares the transactions: the plain path); with
`--verp` it has `verp on`, so each member's copy has its own envelope sender
owner-bench+member=domain@ and its own SMTP transaction (the sink's capture files are
checked for N distinct senders).

`--dkim on` makes a 2048-bit key with `listmgr dkim keygen` first, so every post is signed
(once, at enqueue); `both` alternates runs without and with it. `[delivery] nameservers`
is a small DNS server on loopback that knows no names, so the inbound checks (SPF, DMARC)
of the post get quick answers without asking the machine's resolver.

`--base-url on` sets `[web] base_url`, so each member's copy carries its own one-click
List-Unsubscribe lines (its own transaction, even with VERP off) and, with a key, its own
DKIM signature over them; `both` alternates runs without and with it. The summary says
whether the copies' signatures cover List-Unsubscribe-Post, and the load average.

`--sink-capture none` starts the sink without capture files (`-c` counters only): writing
a file per transaction is about half of the sink's own CPU (on a 2-core machine it shares
the cores with the server, and with VERP it is the sink, not the server, that the run
waits for). Transactions are then the sink's own count of final dots, and recipients the
store's count of recipients marked sent (after the clock has stopped); the envelope
senders are not seen (the capture-files run checks them: same code, same post).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

LIST = "bench"
DOMAIN = "example.org"
POSTER = "poster@example.com"
SINK = "/usr/sbin/smtp-sink"


def free_port() -> int:
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


def wait_port(port: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def addresses(n: int):
    for i in range(n):
        yield f"{chr(97 + i % 26)}{i:07d}@sub{i % 100}.example.net\n"


def make_post() -> bytes:
    rnd = random.Random(42)
    words = ["list", "post", "bench", "mail", "member", "fan", "out", "queue", "sink", "data"]
    lines = []
    size = 0
    while size < 10_000:
        line = " ".join(rnd.choice(words) for _ in range(11))
        lines.append(line)
        size += len(line) + 2
    head = (f"From: Poster <{POSTER}>\r\nTo: {LIST}@{DOMAIN}\r\nSubject: fan-out benchmark\r\n"
            f"Message-ID: <bench.{time.time()}@example.com>\r\n"
            "Date: Sun, 29 Nov 2026 04:00:00 +0000\r\n")
    return (head + "\r\n" + "\r\n".join(lines) + "\r\n").encode()


class QuietDNS:
    """Answers every query NXDOMAIN, on 127.0.0.1 (UDP), in a thread."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import dns.message
        import dns.rcode
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                resp = dns.message.make_response(dns.message.from_wire(data))
            except Exception:
                continue
            resp.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(resp.to_wire(), addr)

    def close(self) -> None:
        self.sock.close()


class Sink:
    """Postfix smtp-sink writing one capture file per transaction under /dev/shm.

    Completion is read from the sink's own running counters (`-c`: `sess=N quit=N mesg=N`,
    written to its standard output whenever a session ends, a QUIT arrives or a message's
    final dot is received) through a pipe, by a reader thread: no polling of the capture
    files while the clock runs, so the benchmark takes next to no CPU from the server. The
    capture files are read once, after the clock has stopped, to check what arrived."""

    COUNTERS = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")
    READ_PAUSE = 0.02  # seconds between reads of the pipe: at most 50 wake-ups a second

    def __init__(self, port: int, capture: bool = True):
        self.port = port
        self.capture = capture
        self.dir = Path(tempfile.mkdtemp(prefix="listmgr-fanout-sink-", dir="/dev/shm"))
        os.chmod(self.dir, 0o777)
        self.proc: subprocess.Popen | None = None
        self.mesg = 0                          # messages received (final dots)
        self.last_change: float | None = None  # time.monotonic() of the last change of mesg
        self.changed = threading.Condition()
        self.final: set[str] = set()   # capture files scan() need not look at again
        self.headed: set[str] = set()  # capture files whose recipient lines scan() read

    def start(self) -> None:
        dump = ["-d", f"{self.dir}/%H%M%S."] if self.capture else []
        cmd = [SINK, "-c", "-m", "1024", *dump, f"127.0.0.1:{self.port}", "1024"]
        if os.geteuid() == 0:
            cmd[1:1] = ["-u", "nobody"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     bufsize=0)
        threading.Thread(target=self._read, daemon=True).start()
        if not wait_port(self.port, 10):
            raise SystemExit("smtp-sink did not listen")

    def _read(self) -> None:
        """Follow the counters: the time of a change is when it was read (within
        READ_PAUSE of when the sink wrote it)."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        tail = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            now = time.monotonic()
            data = tail + chunk
            last = None
            for last in self.COUNTERS.finditer(data):
                pass
            if last is not None:
                mesg = int(last.group(3))
                with self.changed:
                    if mesg != self.mesg:
                        self.mesg, self.last_change = mesg, now
                        self.changed.notify_all()
            tail = data[-64:]
            time.sleep(self.READ_PAUSE)
        with self.changed:
            self.changed.notify_all()

    def wait(self, at_least: int, quiet: float, deadline: float) -> tuple[int, float | None]:
        """Wait until the sink has received `at_least` messages, or (with `at_least` 0)
        until its count has not moved for `quiet` seconds after a first message. Returns
        (messages, time of the last change)."""
        with self.changed:
            while time.monotonic() < deadline:
                if at_least and self.mesg >= at_least:
                    break
                if not at_least and self.last_change is not None \
                        and time.monotonic() - self.last_change >= quiet:
                    break
                if self.proc is None or self.proc.poll() is not None:
                    break
                self.changed.wait(min(quiet, max(0.0, deadline - time.monotonic())) or 0.1)
            return self.mesg, self.last_change

    def check(self) -> dict:
        """Read every capture file once: transactions, recipients, distinct envelope
        senders, whether a copy is DKIM-signed and whether a signature covers
        List-Unsubscribe-Post."""
        tx = rcpts = 0
        senders: set[bytes] = set()
        signed = one_click = False
        for e in os.scandir(self.dir):
            data = Path(e.path).read_bytes()
            tx += 1
            head = data.split(b"\nReceived: ", 1)[0]
            for line in head.split(b"\n"):
                if line.startswith(b"X-Rcpt-Args:"):
                    rcpts += 1
                elif line.startswith(b"X-Mail-Args:"):
                    senders.add(line[12:].strip().split(b" ", 1)[0])
            if not signed and b"\nDKIM-Signature:" in data:
                signed = True
            if not one_click and b"list-unsubscribe-post" in data:  # in a signature's h=
                one_click = True
        return {"transactions": tx, "recipients": rcpts, "senders": len(senders),
                "signed": signed, "one_click": one_click}

    def scan(self, seen: dict[str, tuple[float, int, int]], full: bool = False) -> None:
        """Update {file: (mtime, recipients, size)} for new or changed capture files: for a
        benchmark that needs recipients as they arrive (bench/isolation.py), not only the
        count of transactions the counters give.

        A file whose recipient lines were all read, unchanged for a second, is final and is
        not looked at again (unless `full`), so a pass over 100,000 files costs one listdir, not 100,000 stat calls (the
        benchmark must not compete with the server for the CPU)."""
        now = time.time()
        for name in os.listdir(self.dir):
            if name in self.final and not full:
                continue
            path = os.path.join(self.dir, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            old = seen.get(name)
            if old and old[0] == st.st_mtime and old[2] == st.st_size and not full:
                if now - st.st_mtime > 1.0 and name in self.headed:
                    self.final.add(name)
                continue
            n = 0
            with open(path, "rb") as f:
                for line in f:
                    if line.startswith(b"X-Rcpt-Args:"):
                        n += 1
                    elif not line.startswith(b"X-"):
                        self.headed.add(name)  # every recipient line is in
                        break
            seen[name] = (st.st_mtime, n, st.st_size)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def rss_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid: int) -> list[int]:
    """The child processes of `pid` (the server's SMTP acceptors and delivery processes)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            pass
    return out


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of `pid` and its children (a child that exits during the run is no
    longer counted: none does in a benchmark run)."""
    return cpu_s(pid) + sum(cpu_s(c) for c in children(pid))


def sent_in_store(work: Path) -> int:
    """Recipients the server has marked sent (its SQLite store, read-only)."""
    db = sqlite3.connect(f"file:{work / 'var' / 'listmgr.sqlite3'}?mode=ro", uri=True,
                         timeout=30)
    try:
        return db.execute("SELECT count(*) FROM outbound_recipients WHERE state = 'sent'"
                          ).fetchone()[0]
    finally:
        db.close()


def run_one(listmgr: str, n: int, per_tx: int, timeout: float, keep_log: str = "",
            verp: bool = False, dkim: bool = False, base_url: bool = False,
            capture: bool = True) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"listmgr-fanout-{n}-"))
    sink = Sink(free_port(), capture)
    quiet = QuietDNS()
    smtp_port = free_port()
    cfg = work / "listmgr.toml"
    level = "INFO" if keep_log else "WARNING"
    cfg.write_text(f'domain = "{DOMAIN}"\ndata_dir = "{work / "var"}"\nlog_level = "{level}"\n'
                   f'[smtp]\nlisten = "127.0.0.1:{smtp_port}"\n'
                   f'[pop3]\nlisten = "127.0.0.1:{free_port()}"\n'
                   f'[web]\nlisten = "127.0.0.1:{free_port()}"\n'
                   + ('base_url = "https://lists.example.org"\n' if base_url else '') +
                   f'[delivery]\nsmarthost = "127.0.0.1:{sink.port}"\n'
                   f'nameservers = ["127.0.0.1:{quiet.port}"]\n'
                   f'max_recipients_per_transaction = {per_tx}\n')

    def cli(*args: str, stdin=None) -> None:
        subprocess.run([listmgr, "--config", str(cfg), *args], check=True, stdin=stdin,
                       stdout=subprocess.DEVNULL)

    serve = None
    try:
        t = time.perf_counter()
        cli("init")
        if dkim:
            cli("dkim", "keygen", "--bits", "2048")
        cli("newlist", LIST, "--owner", f"owner@{DOMAIN}")
        cli("config", LIST, "post_policy", "open")
        cli("config", LIST, "verp", "on" if verp else "off")
        feed = subprocess.Popen([listmgr, "--config", str(cfg), "subscribe", LIST, "-"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        chunk = []
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
        if not wait_port(smtp_port, 60):
            raise SystemExit("listmgr serve did not listen")
        time.sleep(1.0)  # let every worker start polling
        post = make_post()
        mesg0 = sink.mesg
        cpu0, sink_cpu0 = tree_cpu_s(serve.pid), cpu_s(sink.proc.pid)
        bench_cpu0 = time.process_time()  # this script's own CPU (the counters' reader)
        with smtplib.SMTP("127.0.0.1", smtp_port) as c:
            c.sendmail(POSTER, [f"{LIST}@{DOMAIN}"], post)
            t250 = time.monotonic()  # the server has answered 250 to DATA
        # One transaction per member with VERP or per-member lines: the clock stops when
        # the sink's count reaches N. Otherwise the number of transactions is the
        # server's business: when the count has stood still for a second, the capture files
        # (a few hundred) are counted, and the wait goes on until they hold N recipients.
        per_member = verp or base_url
        deadline = time.monotonic() + timeout
        mesg, last = sink.wait(mesg0 + n if per_member else 0, 1.0, deadline)
        while not per_member and time.monotonic() < deadline \
                and (sink.check()["recipients"] if capture else sent_in_store(work)) < n:
            sink.wait(mesg + 1, 1.0, deadline)  # more to come: wait for it, then for quiet
            mesg, last = sink.wait(0, 1.0, deadline)
        cpu1, sink_cpu1 = tree_cpu_s(serve.pid), cpu_s(sink.proc.pid)
        bench_cpu1 = time.process_time()
        time.sleep(1.0)  # anything beyond N (duplicates) would show now
        if capture:
            found = sink.check()
        else:  # the sink's count and the store's; no envelope seen
            found = {"transactions": sink.mesg - mesg0, "recipients": sent_in_store(work),
                     "senders": "-", "signed": False, "one_click": False}
        total = found["recipients"]
        last = last if last is not None else t250
        signed, one_click = found["signed"], found["one_click"]
        peak = rss_kb(serve.pid, "VmHWM")
        fanout = ""
        if keep_log:  # the posting worker's own share (decorate, sign, queue): its log line
            found_log = re.findall(rb"fanout=([0-9.]+)s", (work / "serve.log").read_bytes())
            fanout = found_log[-1].decode() if found_log else ""
        seconds = last - t250
        return {"n": n, "verp": verp, "dkim": "on" if signed else "off",
                "base_url": "on" if base_url else "off", "one_click_signed": one_click,
                "load": os.getloadavg()[0],
                "seconds": round(seconds, 3), "recipients": total,
                "transactions": found["transactions"], "senders": found["senders"],
                "rcpt_per_s": round(total / seconds) if seconds > 0
                else 0, "peak_rss_mb": round(peak / 1024, 1), "setup_s": round(setup, 1),
                "serve_cpu_s": round(cpu1 - cpu0, 2), "sink_cpu_s": round(sink_cpu1 - sink_cpu0, 2),
                "bench_cpu_s": round(bench_cpu1 - bench_cpu0, 2),
                "sink_capture": "files" if capture else "none",
                "complete": total == n and signed == dkim
                and (found["senders"] == n if verp and capture else True)
                and (found["transactions"] == n if per_member else True), "fanout_s": fanout}
    finally:
        if serve and serve.poll() is None:
            serve.terminate()
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()
        sink.stop()
        quiet.close()
        if keep_log and (work / "serve.log").exists():
            shutil.copy(work / "serve.log", Path(keep_log) /
                        f"serve-{n}{'-dkim' if dkim else ''}{'-url' if base_url else ''}.log")
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="1000,10000,100000,1000000")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--per-transaction", type=int, default=1000,
                    help="[delivery] max_recipients_per_transaction (default 1000)")
    ap.add_argument("--listmgr", default=shutil.which("listmgr") or
                    str(Path(sys.executable).with_name("listmgr")))
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--verp", action="store_true",
                    help="list setting verp on: one envelope (and transaction) per member")
    ap.add_argument("--keep-log", default="", metavar="DIR",
                    help="log at INFO, keep serve-N.log in DIR and report the posting "
                         "worker's fan-out seconds")
    ap.add_argument("--dkim", choices=("off", "on", "both"), default="off",
                    help="sign with a DKIM key (on), or alternate runs off/on (both)")
    ap.add_argument("--base-url", choices=("off", "on", "both"), default="off",
                    help="[web] base_url set: per-member one-click List-Unsubscribe (on), "
                         "or alternate runs off/on (both)")
    ap.add_argument("--sink-capture", choices=("files", "none"), default="files",
                    help="the sink writes a capture file per transaction (files, checked "
                         "after the run) or only counts (none: its CPU halves)")
    args = ap.parse_args()
    if args.sink_capture == "none" and args.dkim != "off":
        ap.error("--sink-capture none sees no message: it cannot check DKIM signatures")
    choice = {"off": [False], "on": [True], "both": [False, True]}
    modes = [(d, u) for d in choice[args.dkim] for u in choice[args.base_url]]
    if not os.path.exists(SINK):
        raise SystemExit(f"{SINK} not found: apt-get install postfix (no configuration)")
    results = []
    ok = True
    for n in [int(x) for x in args.n.split(",")]:
        for _ in range(args.runs):
            for dkim, base_url in modes:
                r = run_one(args.listmgr, n, args.per_transaction, args.timeout,
                            args.keep_log, verp=args.verp, dkim=dkim, base_url=base_url,
                            capture=args.sink_capture == "files")
                results.append(r)
                ok &= r["complete"]
                print("\t".join(f"{k}={v}" for k, v in r.items()), flush=True)
    print("\n| N | VERP | DKIM | base_url | sink capture | seconds (250 -> last rcpt) "
          "| recipients | transactions | rcpt/s | server CPU s | sink CPU s | peak RSS MB "
          "| load |\n|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['n']:,} | {'on' if r['verp'] else 'off'} | {r['dkim']} | {r['base_url']} "
              f"| {r['sink_capture']} | {r['seconds']} | {r['recipients']:,} | {r['transactions']:,} "
              f"| {r['rcpt_per_s']:,} | {r['serve_cpu_s']} | {r['sink_cpu_s']} "
              f"| {r['peak_rss_mb']} | {r['load']:.1f} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
