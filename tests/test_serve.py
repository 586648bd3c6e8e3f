"""`listmgr serve` as an operator runs it: creates a fresh database, refuses an old one,
says what it listens on, and stops cleanly on SIGTERM / SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from listmgr.store.db import Store
from tests.support import run_cli


def _serve(cfg):
    env = dict(os.environ)
    env.pop("LISTMGR_CONFIG", None)
    return subprocess.Popen([sys.executable, "-m", "listmgr", "--config", str(cfg), "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=cfg.parent)


def _wait_ready(proc, timeout=30.0) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "listmgr ready" in line:
            return lines
    raise AssertionError("server did not report ready:\n" + "".join(lines))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_creates_database_and_stops_on_signal(config_file, sig):
    cfg = config_file()
    proc = _serve(cfg)
    try:
        lines = _wait_ready(proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in "".join(lines) + err
    assert "stopping" in err
    assert "site_admins is empty" not in "".join(lines)  # the test config names an admin
    # The database was created by serve itself: other commands work at once.
    assert run_cli(cfg, "newlist", "demo", "--owner", "o@example.org").status == 0


def test_serve_refuses_a_database_that_is_behind(config_file, db_url):
    cfg = config_file()
    assert run_cli(cfg, "init").status == 0
    store = Store(db_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    store.dispose()
    r = run_cli(cfg, "serve", timeout=60)
    assert r.status != 0
    assert "listmgr init" in r.err and "Traceback" not in r.err


def test_serve_warns_when_no_site_admin_would_get_postmaster_mail(config_file):
    cfg = config_file(site_admins=[])
    proc = _serve(cfg)
    try:
        lines = _wait_ready(proc)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert any("site_admins is empty" in ln for ln in lines)
