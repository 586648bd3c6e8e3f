"""`listmgr serve` serves the web pages on [web] listen and says the port; `listmgr web` runs
them alone; every page text exists in English and Japanese."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx

from tests.support import REPO, run_cli
from tests.test_serve import _wait_ready


def _start(cfg, command: str):
    env = dict(os.environ)
    env.pop("LISTMGR_CONFIG", None)
    return subprocess.Popen([sys.executable, "-m", "listmgr", "--config", str(cfg), command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cfg.parent)


def _run_until_ready(cfg, command: str, ready: str):
    proc = _start(cfg, command)
    try:
        lines = _wait_ready(proc) if command == "serve" else _wait_for(proc, ready)
        port = int(re.search(r"\bweb=(?:[^\s:]+:)?(\d+)", "".join(lines)).group(1))
        r = httpx.get(f"http://127.0.0.1:{port}/personal/", timeout=30)
        assert r.status_code == 200 and 'name="password"' in r.text
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in "".join(lines) + err


def _wait_for(proc, marker: str) -> list[str]:
    lines = []
    while True:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError("".join(lines))
        lines.append(line)
        if marker in line:
            return lines


def test_serve_reports_and_serves_the_web_port(config_file):
    _run_until_ready(config_file(), "serve", "listmgr ready")


def test_web_runs_alone(config_file):
    cfg = config_file()
    assert run_cli(cfg, "init").status == 0
    _run_until_ready(cfg, "web", "listmgr web ready")


def test_web_with_no_listen_address_says_so(config_file):
    cfg = config_file(web__listen="")
    run_cli(cfg, "init")
    r = run_cli(cfg, "web")
    assert r.status == 1 and "[web] listen is empty" in r.err


def test_every_page_text_exists_in_both_languages():
    root = REPO / "templates"
    en = tomllib.loads((root / "en/web/messages.toml").read_text(encoding="utf-8"))
    ja = tomllib.loads((root / "ja/web/messages.toml").read_text(encoding="utf-8"))
    assert set(en) == set(ja)
    for key, text in en.items():  # the same placeholders on both sides
        assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", ja[key])), key
    used = set()
    for page in Path(root / "en/web").glob("*.html"):
        used |= {k for k in re.findall(r'\bt\("(\w+)"', page.read_text(encoding="utf-8"))
                 if not k.endswith("_")}  # t("held_state_" ~ state): a key family
    for module in Path(REPO / "listmgr/web").glob("*.py"):
        code = module.read_text(encoding="utf-8")  # flash messages and form errors
        used |= set(re.findall(r'flash\(request, "(\w+)"', code))
        used |= set(re.findall(r'errors=\{"\w+": "(\w+)"\}', code))
    assert used - set(en) == set()
