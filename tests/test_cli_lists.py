"""The `listmgr` CLI as a user runs it, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.support import run_cli


@pytest.mark.slow
def test_quick_story(config_file):
    """The README's story, through the real `python -m listmgr` entry point."""
    cfg = config_file()
    assert run_cli(cfg, "init", isolated=True).status == 0
    again = run_cli(cfg, "init", isolated=True)
    assert again.status == 0 and "up to date" in again.out
    assert run_cli(cfg, "newlist", "demo", "--owner", "owner@example.org",
                   isolated=True).status == 0
    assert run_cli(cfg, "subscribe", "demo", "a@example.org", isolated=True).status == 0
    r = run_cli(cfg, "members", "demo", isolated=True)
    assert r.status == 0 and r.out == "a@example.org\n"


def test_errors_are_one_clear_line(config_file, tmp_path):
    cfg = config_file()
    run_cli(cfg, "init")
    run_cli(cfg, "newlist", "demo", "--owner", "owner@example.org")
    for args, needle in [
        (("newlist", "demo", "--owner", "o@example.org"), "already exists"),
        (("subscribe", "nolist", "a@example.org"), "no list named 'nolist'"),
        (("subscribe", "demo", "not an address"), "invalid address"),
        (("newlist", "bad.name", "--owner", "o@example.org"), "not a valid list name"),
        (("newlist", "x", "--owner", "nobody"), "owners"),
        (("config", "demo", "who_access", "everyone"), "'who_access'"),
        (("config", "demo", "colour", "blue"), "unknown setting 'colour'"),
    ]:
        r = run_cli(cfg, *args)
        assert r.status != 0, args
        assert needle in r.err, (args, r.err)
        assert len(r.err.strip().splitlines()) == 1, r.err
        assert "Traceback" not in r.err
    bad = tmp_path / "typo.toml"
    bad.write_text('domian = "example.org"\n')
    r = run_cli(bad, "lists")
    assert r.status != 0 and "domian" in r.err and str(bad) in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_commands_refuse_an_uninitialised_database(config_file):
    cfg = config_file()
    r = run_cli(cfg, "lists")
    assert r.status != 0 and "listmgr init" in r.err


def test_bulk_subscribe_from_stdin_reports_duplicates_and_invalid(config_file):
    cfg = config_file()
    run_cli(cfg, "init")
    run_cli(cfg, "newlist", "big", "--owner", "owner@example.org")
    lines = [f"user{i}@Example.COM" for i in range(3000)]
    lines += ["user5@example.com", "garbage line", "", "# comment", "majordomo@example.org"]
    r = run_cli(cfg, "subscribe", "big", "-", stdin="\n".join(lines) + "\n")
    assert r.status == 0, r.err
    assert "subscribed 3000" in r.out and "1 already subscribed" in r.out
    assert "2 invalid" in r.out and "'garbage line'" in r.err
    assert "majordomo@example.org" in r.err  # the service's own address is refused
    members = run_cli(cfg, "members", "big").out.splitlines()
    assert len(members) == 3000 and members[0] == "user0@Example.COM"
    # Matching is case-insensitive: a differently cased address is the same member.
    r = run_cli(cfg, "unsubscribe", "big", "USER1@example.com", "nobody@example.com")
    assert "unsubscribed 1" in r.out and "1 not subscribed" in r.out
    assert len(run_cli(cfg, "members", "big").out.splitlines()) == 2999


def test_config_show_and_set(config_file):
    cfg = config_file()
    run_cli(cfg, "init")
    run_cli(cfg, "newlist", "demo", "--owner", "owner@example.org", "--password", "s3cret",
            "--description", "A demo list")
    shown = run_cli(cfg, "config", "demo").out
    assert "subscribe_policy = open+confirm" in shown
    assert "admin_passwd = (set)" in shown and "s3cret" not in shown
    assert run_cli(cfg, "config", "demo", "post_policy", "open").status == 0
    assert "post_policy = open" in run_cli(cfg, "config", "demo").out
    listing = run_cli(cfg, "lists").out
    assert "demo" in listing and "A demo list" in listing
    assert run_cli(cfg, "rmlist", "demo").status == 0
    assert "demo" not in run_cli(cfg, "lists").out


@pytest.mark.slow
def test_bulk_import_shows_progress_on_a_terminal(config_file):
    import os
    import pty
    import subprocess
    import sys
    cfg = config_file()
    run_cli(cfg, "init")
    run_cli(cfg, "newlist", "big", "--owner", "owner@example.org")
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "LISTMGR_CONFIG"}
    proc = subprocess.run([sys.executable, "-m", "listmgr", "--config", str(cfg), "subscribe",
                           "big", "-"], input=b"".join(b"p%d@example.com\n" % i
                                                       for i in range(5000)),
                          stdout=subprocess.PIPE, stderr=slave, env=env, timeout=120)
    os.close(slave)
    shown = b""
    try:
        while True:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            shown += chunk
    except OSError:
        pass
    os.close(master)
    assert proc.returncode == 0
    assert b"subscribing 2,000 addresses" in shown
    assert b"subscribed 5000" in proc.stdout
