"""contrib/: the systemd unit passes systemd-analyze, the logrotate file rotates a running
server's log (which reopens it on SIGHUP); and a failed command leaves no ./var behind and
says which configuration and database it used."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import REPO, missing_tool, serve_process, write_config

UNIT = REPO / "contrib" / "listmgr.service"
LOGROTATE = REPO / "contrib" / "listmgr.logrotate"


def test_systemd_unit_is_valid_and_confined(tmp_path):
    text = UNIT.read_text()
    for line in ("User=listmgr", "ProtectSystem=strict", "ReadWritePaths=/var/lib/listmgr /var/log/listmgr",
                 "AmbientCapabilities=CAP_NET_BIND_SERVICE", "NoNewPrivileges=true",
                 "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text.splitlines(), line
    if shutil.which("systemd-analyze") is None:
        missing_tool("systemd-analyze is not installed")
    unit = tmp_path / "listmgr.service"  # the binary path exists only after installing
    unit.write_text(text.replace("/opt/listmgr/bin/listmgr", sys.executable + " -m listmgr"))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_logrotate_file_rotates_a_running_servers_log(tmp_path, db_url):
    if shutil.which("logrotate") is None:
        missing_tool("logrotate is not installed")
    log = tmp_path / "listmgr.log"
    cfg = write_config(tmp_path, db_url, log__file=str(log))
    proc = serve_process(cfg)
    try:
        deadline = time.monotonic() + 60
        while "listmgr ready" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
            time.sleep(0.1)
        me = getpass.getuser()
        conf = LOGROTATE.read_text().replace("/var/log/listmgr/listmgr.log", str(log))
        conf = conf.replace("create 0640 listmgr listmgr", f"create 0640 {me} {me}")
        conf = re.sub(r"systemctl reload listmgr.service[^\n]*", f"kill -HUP {proc.pid}", conf)
        (tmp_path / "logrotate.conf").write_text(conf)
        subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "state"),
                        str(tmp_path / "logrotate.conf")], check=True, timeout=120)
        assert (tmp_path / "listmgr.log.1").exists()
        while "log file reopened" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the log was not reopened"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert "listmgr stopped" in log.read_text()
        assert "listmgr stopped" not in (tmp_path / "listmgr.log.1").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.slow
def test_failed_command_leaves_no_var_and_names_config_and_database(tmp_path):
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    for args in (["lists"], ["queue", "list"], ["status"], ["users"], ["members", "demo"]):
        r = _run_in(empty, *args)
        assert r.returncode == 1, (args, r.stderr)
        assert "listmgr init" in r.stderr
        assert "(config: (built-in defaults); database: sqlite:///" in r.stderr
        assert str(empty / "var" / "listmgr.sqlite3") in r.stderr
        assert list(empty.iterdir()) == [], args
    # PostgreSQL that does not answer: the URL is named, its password is not.
    r = _run_in(empty, "lists", env={"LISTMGR_DATABASE_URL":
                                     "postgresql+psycopg://lm:hunter2@127.0.0.1:1/lm"})
    assert r.returncode == 1 and "cannot open database" in r.stderr
    assert "postgresql+psycopg://lm:***@127.0.0.1:1/lm" in r.stderr
    assert "hunter2" not in r.stderr and list(empty.iterdir()) == []


def _run_in(directory: Path, *args: str, env: dict | None = None):
    e = dict(os.environ)
    e.pop("LISTMGR_CONFIG", None)
    e.pop("LISTMGR_DATABASE_URL", None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "listmgr", *args], capture_output=True,
                          text=True, cwd=directory, env=e, timeout=120)
