"""Logs of `listmgr serve` as an operator sees them: the ready line, `[log] file` reopened on
SIGHUP (logrotate), `[log] syslog` with Postfix-style tags, delivery failures at WARNING,
"stopped" at exit."""

from __future__ import annotations

import re
import signal
import smtplib
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.support import serve_process, write_config


def _wait_for(path: Path, pattern: str, timeout: float = 60.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        m = re.search(pattern, text)
        if m:
            return m
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not in {path}:\n{text}")


def _send(port: int, rcpt: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.sendmail("someone@elsewhere.example", [rcpt],
                   f"From: someone@elsewhere.example\r\nSubject: {subject}\r\n\r\nhi\r\n")


@pytest.mark.slow
def test_log_file_syslog_ready_line_reopen_and_stopped(tmp_path, db_url, sink):
    log_file = tmp_path / "listmgr.log"
    syslog_path = tmp_path / "syslog.sock"
    syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslog.bind(str(syslog_path))
    syslog.settimeout(0.2)
    lines: list[str] = []  # what the syslog daemon got, read as it arrives

    def read_syslog() -> None:
        while syslog.fileno() != -1:
            try:
                lines.append(syslog.recv(8192).decode(errors="replace"))
            except (TimeoutError, OSError):
                if syslog.fileno() == -1:
                    return
    reader = threading.Thread(target=read_syslog, daemon=True)
    reader.start()
    sink.default_rule = "451 4.3.0 try again later"
    cfg = write_config(tmp_path, db_url, log__file=str(log_file), log__syslog=True,
                       log__syslog_socket=str(syslog_path), lmtp__listen="127.0.0.1:0",
                       database_url=db_url, delivery__smarthost=f"127.0.0.1:{sink.port}",
                       smtp__relay_networks=["127.0.0.0/8"])
    proc = serve_process(cfg)
    try:
        ready = _wait_for(log_file, r"listmgr ready: (.*)").group(1)
        assert "domain=example.org" in ready and "hostname=example.org" in ready
        assert f"data_dir={tmp_path / 'var'}" in ready
        m = re.search(r"smtp=127\.0\.0\.1:(\d+)", ready)
        assert m and "lmtp=127.0.0.1:" in ready and "pop3=127.0.0.1:" in ready
        assert f"outbound: smarthost 127.0.0.1:{sink.port}" in ready
        assert "database=" in ready
        if "postgresql" in db_url:
            assert "postgresql+psycopg://postgres@127.0.0.1:5432/test" in ready
        smtp_port = int(m.group(1))

        _send(smtp_port, "far@remote.example", "first")
        queued = _wait_for(log_file, r"(\w+) client=\S+ from=<someone@elsewhere.example> "
                                     r"to=<far@remote.example> size=\d+ result=queued")
        # The deferral is a WARNING, with the queue id and the remote reply.
        _wait_for(log_file, r"WARNING listmgr\.delivery[.\w]*: \w+ to=<far@remote.example> "
                            r".*status=deferred \(451 4\.3\.0 try again later")

        # Syslog: facility mail (2) -> priority <22> for INFO, Postfix-style tag and colon.
        deadline = time.monotonic() + 30
        want = f"listmgr/smtpd[{proc.pid}]: {queued.group(1)}: client="
        while time.monotonic() < deadline and not any(want in ln for ln in lines):
            time.sleep(0.1)
        hit = next((ln for ln in lines if want in ln), None)
        assert hit is not None, lines
        assert hit.startswith("<22>")

        # logrotate: move the file away, SIGHUP, the next lines go to a new file.
        log_file.rename(tmp_path / "listmgr.log.1")
        proc.send_signal(signal.SIGHUP)
        _wait_for(log_file, r"log file reopened")
        _send(smtp_port, "far2@remote.example", "second")
        _wait_for(log_file, r"to=<far2@remote.example> size=\d+ result=queued")
        assert "far2@" not in (tmp_path / "listmgr.log.1").read_text()

        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        text = log_file.read_text()
        assert text.rstrip().endswith("listmgr stopped")
        assert "Traceback" not in text + err
        assert err == ""  # everything went to the file
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        syslog.close()


@pytest.mark.slow
def test_syslog_socket_missing_is_a_warning_not_a_crash(tmp_path, db_url):
    log_file = tmp_path / "l.log"
    cfg = write_config(tmp_path, db_url, log__file=str(log_file), log__syslog=True,
                       log__syslog_socket=str(tmp_path / "no-such-socket"))
    proc = serve_process(cfg)
    try:
        _wait_for(log_file, r"listmgr ready")
        assert "syslog: cannot use" in log_file.read_text()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_that_cannot_bind_says_so_in_one_line(tmp_path, db_url):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    log_file = tmp_path / "l.log"
    try:
        cfg = write_config(tmp_path, db_url, smtp__listen=f"127.0.0.1:{port}",
                           log__file=str(log_file))
        proc = serve_process(cfg)
        _, err = proc.communicate(timeout=120)
    finally:
        blocker.close()
    assert proc.returncode == 1
    assert err.startswith("listmgr: could not start:") and "Traceback" not in err
    assert "listmgr could not start" in log_file.read_text()
    assert "Traceback" not in log_file.read_text()
