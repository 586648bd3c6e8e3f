"""A private Postfix for tests: its own config directory, queue and log under a temporary
directory, listening on one loopback port (Debian's postfix package; must run as root,
as Postfix's master does). Nothing of the system's own Postfix is used or touched."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support import free_port

# Services a relay needs (no chroot: the private instance has no chroot tree).
MASTER_CF = """\
{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
lmtp      unix  - - n -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def available() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if shutil.which("postfix") is None:
        return "Debian's postfix package is not installed"
    if os.geteuid() != 0:
        return "a private Postfix must be started as root"
    return None


class PrivatePostfix:
    """`start(main_cf_lines)`, then mail to 127.0.0.1:`port`; `stop()` at the end."""

    def __init__(self, hostname: str = "relay.example.test"):
        # Not under pytest's tmp_path: Postfix's daemons run as user postfix and must reach
        # their data and queue directories (pytest's are private to root).
        self.root = Path(tempfile.mkdtemp(prefix="listmgr-postfix-"))
        self.root.chmod(0o755)
        self.conf = self.root / "conf"
        self.hostname = hostname
        self.port = free_port()
        self.log = self.root / "maillog"

    def main_cf(self, extra: dict[str, str]) -> str:
        values = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.root / "queue"),
            "data_directory": str(self.root / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": self.hostname,
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "smtputf8_enable": "no",
            "biff": "no",
            "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s",
            "queue_run_delay": "2s",
            "maillog_file_prefixes": "/tmp, /var",
            "maillog_file": str(self.log),
        }
        values.update(extra)
        return "".join(f"{k} = {v}\n" for k, v in values.items())

    def start(self, extra: dict[str, str], timeout: float = 60.0) -> None:
        for d in ("conf", "queue", "data"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root / "data", "postfix")
        (self.conf / "main.cf").write_text(self.main_cf(extra))
        (self.conf / "master.cf").write_text(MASTER_CF.format(port=f"127.0.0.1:{self.port}"))
        p = self.postfix("start")
        if p.returncode != 0:
            raise RuntimeError(f"postfix start failed: {p.stdout}{p.stderr}{self.log_text()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as c:
                    if c.recv(512).startswith(b"220"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"postfix did not answer on port {self.port}: {self.log_text()}")

    def postfix(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["postfix", "-c", str(self.conf), *args], capture_output=True,
                              text=True, timeout=120)

    def stop(self) -> None:
        self.postfix("stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def queue_listing(self) -> str:
        """`mailq` for this instance."""
        p = subprocess.run(["postqueue", "-c", str(self.conf), "-p"], capture_output=True,
                           text=True, timeout=60)
        return p.stdout + p.stderr

    def queue_empty(self) -> bool:
        return "Mail queue is empty" in self.queue_listing()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return "(no maillog)"
