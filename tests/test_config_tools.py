"""`listmgr config-sample` and `listmgr check-config`."""

from __future__ import annotations

import dataclasses
import re
import tomllib

from listmgr import config as config_mod
from listmgr.config_sample import HELP
from tests.support import RecordingSink, run_cli, write_config


def _all_keys() -> list[str]:
    keys = []
    for f in dataclasses.fields(config_mod.Config):
        if f.name == "source":
            continue
        if f.default_factory is not dataclasses.MISSING:
            keys += [f"{f.name}.{g.name}" for g in dataclasses.fields(f.default_factory())]
        else:
            keys.append(f.name)
    return keys


def test_config_sample_has_every_key_commented_at_its_default():
    r = run_cli(None, "config-sample")
    assert r.status == 0, r.err
    text = r.out
    assert tomllib.loads(text) == {s: {} for s in re.findall(r"(?m)^\[(\w+)\]$", text)}
    section = ""
    seen = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if m := re.match(r"^\[(\w+)\]$", line):
            section = m.group(1) + "."
        elif m := re.match(r"^#(\w+) = ", line):
            seen.append(section + m.group(1))
            assert lines[i - 1].startswith("# "), f"{line} has no comment above it"
    assert sorted(seen) == sorted(_all_keys())
    # Uncommented, the sample is exactly the defaults.
    uncommented = re.sub(r"(?m)^#(\w+ = )", r"\1", text)
    assert config_mod.from_mapping(tomllib.loads(uncommented)) == config_mod.from_mapping({})


def test_every_key_has_its_own_help_text():
    assert [k for k in _all_keys() if k not in HELP] == []


def test_check_config_prints_non_default_values_like_postconf_n(tmp_path, db_url):
    cfg = write_config(tmp_path, db_url, smtp__max_message_size="10MB",
                       delivery__warn_after="2h", pop3__relay_window="10m")
    assert run_cli(cfg, "init").status == 0
    r = run_cli(cfg, "check-config", "--no-connect")
    lines = r.out.splitlines()
    assert lines[0] == f"# configuration: {cfg}"
    assert 'domain = "example.org"' in lines
    assert 'smtp.max_message_size = "10MB"' in lines
    assert 'delivery.warn_after = "2h"' in lines
    assert 'pop3.relay_window = "10m"' in lines
    assert not any(ln.startswith("hostname") or ln.startswith("smtp.timeout") for ln in lines)
    db_line = next(ln for ln in lines if ln.startswith("database_url"))
    assert db_line == f'database_url = "{db_url}"'  # (no password in the test URLs)


def test_check_config_hides_the_database_password(tmp_path):
    cfg = write_config(tmp_path, "postgresql+psycopg://lm:hunter2@127.0.0.1:1/x")
    r = run_cli(cfg, "check-config", "--no-connect")
    assert "hunter2" not in r.out + r.err
    assert 'database_url = "postgresql+psycopg://lm:***@127.0.0.1:1/x"' in r.out
    assert "cannot open the database" in r.out and r.status == 1


def test_check_config_warnings(tmp_path, db_url):
    dead = RecordingSink()
    dead.start()
    port = dead.port
    dead.stop()  # nothing listens there now
    cfg = write_config(tmp_path, db_url, site_admins=["admin@example.org", "boss@else.example"],
                       web__base_url="http://lists.example.org",
                       delivery__smarthost=f"127.0.0.1:{port}",
                       pop3__listen="127.0.0.1:110")
    assert run_cli(cfg, "init").status == 0
    r = run_cli(cfg, "check-config", isolated=True)
    assert r.status == 1
    warnings = [ln for ln in r.out.splitlines() if ln.startswith("warning: ")]
    text = "\n".join(warnings)
    assert "site_admins: admin@example.org is at a local domain but has no mailbox" in text
    assert "boss@else.example" not in text
    assert "base_url" in text and "not https" in text
    assert f"delivery.smarthost 127.0.0.1:{port}: cannot connect" in text
    import os
    if os.geteuid() == 0:
        assert "port 110" not in text  # root may bind it
    else:
        assert "pop3.listen = '127.0.0.1:110': port 110 needs root" in text
    # Fixed: a mailbox for the admin, https, a live smarthost: no warning, status 0.
    assert run_cli(cfg, "user", "add", "admin", "--password-stdin", stdin="pw\n").status == 0
    sink = RecordingSink()
    sink.start()
    try:
        cfg = write_config(tmp_path, db_url, site_admins=["admin@example.org"],
                           web__base_url="https://lists.example.org",
                           delivery__smarthost=f"127.0.0.1:{sink.port}")
        r = run_cli(cfg, "check-config")
        assert r.status == 0, r.out
        assert "warning: " not in r.out
    finally:
        sink.stop()


def test_check_config_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp]\nlisten = 25\n")
    r = run_cli(bad, "check-config")
    assert r.status == 2 and "smtp.listen" in r.err and "Traceback" not in r.err
