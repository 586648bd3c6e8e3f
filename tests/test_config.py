"""Configuration: lookup order, durations and sizes, and one clear error per bad key."""

from __future__ import annotations

import pytest

from listmgr import config as config_mod
from listmgr.config import ConfigError, load, parse_duration, parse_size


def test_defaults_when_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LISTMGR_CONFIG", raising=False)
    monkeypatch.delenv("LISTMGR_DATABASE_URL", raising=False)
    cfg = load()
    assert cfg.domain == "localhost" and cfg.hostname == "localhost"
    assert cfg.smtp.listen == "127.0.0.1:2525"
    assert cfg.smtp.max_message_size == 5_242_880
    assert cfg.pop3.listen == "127.0.0.1:1110"
    assert cfg.pop3.relay_window == 1800
    assert cfg.delivery.smarthost == ""
    assert cfg.delivery.warn_after == 4 * 3600 and cfg.delivery.give_up_after == 5 * 86400
    assert config_mod.database_url(cfg).endswith("var/listmgr.sqlite3")


def test_lookup_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "listmgr.toml").write_text('domain = "cwd.example"\n')
    (tmp_path / "env.toml").write_text('domain = "env.example"\n')
    (tmp_path / "arg.toml").write_text('domain = "arg.example"\n')
    monkeypatch.delenv("LISTMGR_CONFIG", raising=False)
    assert load().domain == "cwd.example"
    monkeypatch.setenv("LISTMGR_CONFIG", str(tmp_path / "env.toml"))
    assert load().domain == "env.example"
    assert load(tmp_path / "arg.toml").domain == "arg.example"
    monkeypatch.setenv("LISTMGR_DATABASE_URL", "sqlite:////tmp/x.db")
    assert load(tmp_path / "arg.toml").database_url == "sqlite:////tmp/x.db"


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("30m", 1800), ("4h", 14400),
                                          ("5d", 432000), (45, 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text,size", [("5MB", 5_242_880), (1000, 1000), ("1000", 1000),
                                       ("64kb", 65536)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("body,needle", [
    ('domian = "x"\n', "unknown key 'domian'"),
    ('[smtp]\nmax_message_size = "five"\n', "'smtp.max_message_size'"),
    ('[pop3]\nrelay_window = "soon"\n', "'pop3.relay_window'"),
    ('[delivery]\nsmarthost = "nohostport"\n', "'delivery.smarthost'"),
    ('[smtp]\nlisten = 25\n', "'smtp.listen'"),
    ('site_admins = "root"\n', "'site_admins'"),
    ('[bogus]\nx = 1\n', "unknown key 'bogus'"),
    ('domain = \n', "not valid TOML"),
    ('[smtp]\nprocesses = 0\n', "'smtp.processes'"),
    ('[smtp]\nprocesses = 65\n', "'smtp.processes'"),
    ('[smtp]\nprocesses = 64000\n', "'smtp.processes'"),
])
def test_bad_config_names_key_value_and_file(tmp_path, body, needle):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load(path)
    msg = str(err.value)
    assert needle in msg and str(path) in msg and "\n" not in msg


def test_processes_auto_is_one_per_core_at_most_eight(monkeypatch):
    from listmgr import config as config_mod
    auto = config_mod.from_mapping({"domain": "example.org"}).smtp
    assert auto.processes == 0  # "auto"
    for cores, expected in ((1, 1), (2, 2), (8, 8), (64, 8)):
        monkeypatch.setattr(config_mod, "cpu_cores", lambda n=cores: n)
        assert auto.process_count == expected
    three = config_mod.from_mapping({"domain": "example.org", "smtp": {"processes": 3}}).smtp
    assert three.process_count == 3
    assert config_mod.from_mapping(
        {"domain": "example.org", "smtp": {"processes": "auto"}}).smtp.processes == 0
