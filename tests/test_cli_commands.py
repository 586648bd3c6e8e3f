"""The command table of `listmgr`: each command starts with only its own family of modules."""

from __future__ import annotations

import argparse
import subprocess
import sys

from listmgr import cli


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_the_table_names_what_each_family_registers():
    """A command listed under the wrong family would be refused as an invalid choice."""
    for family, commands in cli.FAMILIES.items():
        sub = argparse.ArgumentParser().add_subparsers()
        cli.load_family(family).register(sub)
        assert set(sub.choices) == set(commands), family
    every = [c for commands in cli.FAMILIES.values() for c in commands]
    assert len(every) == len(set(every))
    assert _commands(cli.build_parser()) == set(every)


def test_a_command_gets_its_own_family_and_help_gets_all():
    assert _commands(cli.build_parser(["-c", "x.toml", "members", "demo"])) == set(
        cli.FAMILIES["lists"])
    assert _commands(cli.build_parser(["--config=x.toml", "serve"])) == {"init", "serve"}
    for argv in ([], ["--help"], ["no-such-command"], ["--config", "x.toml"]):
        assert _commands(cli.build_parser(argv)) == _commands(cli.build_parser()), argv


def test_an_unknown_command_lists_every_command():
    p = subprocess.run([sys.executable, "-m", "listmgr", "no-such-command"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "invalid choice: 'no-such-command'" in p.stderr
    for command in ("serve", "members", "import-majordomo", "status"):
        assert repr(command) in p.stderr


def test_config_sample_starts_without_the_web_pages_or_the_importer():
    code = ("import sys; from listmgr.cli import main; status = main(['config-sample']); "
            "print(sorted(m for m in sys.modules if m.startswith(('listmgr.web', "
            "'listmgr.majordomo', 'listmgr.bounces'))), file=sys.stderr); sys.exit(status)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("# listmgr.toml: every key at its default value")
    assert p.stderr.strip() == "[]"
