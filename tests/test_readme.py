"""README tells the truth about configuration: every key the program accepts is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from listmgr.config import Config

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _documented(section: str | None, key: str) -> bool:
    rows = [ln for ln in README.splitlines() if ln.startswith("|")]
    if section is None:
        return any(f"`{key}`" in ln.split("|")[1] for ln in rows if ln.count("|") > 2)
    pat = re.compile(rf"`\[{section}\][^|]*\b{re.escape(key)}\b")
    return any(pat.search(ln.split("|")[1]) for ln in rows if ln.count("|") > 2)


def test_every_configuration_key_is_in_readme():
    missing = []
    for f in dataclasses.fields(Config):
        if f.name == "source":
            continue
        if f.default_factory is not dataclasses.MISSING:
            for g in dataclasses.fields(f.default_factory()):
                if not _documented(f.name, g.name):
                    missing.append(f"[{f.name}] {g.name}")
        elif not _documented(None, f.name):
            missing.append(f.name)
    assert missing == []


def test_readme_quick_start_has_the_two_commands():
    assert "pip install . && .venv/bin/listmgr serve" in README
    assert "pip install -e '.[postgres,test]' && .venv/bin/python -m pytest" in README
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "pip install -q -e '.[postgres,test]' && .venv/bin/python -m pytest" in ci
