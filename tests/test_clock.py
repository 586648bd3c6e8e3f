"""One clock: every "now" of listmgr comes from listmgr.clock, so time can be moved in tests
(the timeline tests: test_delivery, test_pop3_story, test_posting_e2e, test_commands_smtp)."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import listmgr
from listmgr import clock
from listmgr.store.models import utcnow

ROOT = Path(listmgr.__file__).parent

# Wall-clock reads that are not "now" in the store's sense: unique file names (spool queue
# ids, Maildir names) and file ages compared with file modification times.
WALL_CLOCK_OK = {"listmgr/spool.py", "listmgr/mailbox/maildir.py",
                 "listmgr/posting/moderation.py",
                 "listmgr/diskspace.py"}  # compares file mtimes: file-system time


def _now_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            owner = ast.unparse(node.func.value)
            if (name in ("now", "utcnow", "today") and owner.split(".")[-1] in
                    ("datetime", "date")) or (name == "time" and owner == "time"):
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {owner}.{name}()")
    return found


def test_nothing_reads_the_wall_clock_but_the_clock():
    calls = [c for p in sorted(ROOT.rglob("*.py")) if p.name != "clock.py"
             and str(p.relative_to(ROOT.parent)) not in WALL_CLOCK_OK for c in _now_calls(p)]
    assert not calls, calls


def test_manual_clock_moves_only_when_told():
    start = dt.datetime(2030, 1, 1, 12, 0)
    with clock.use(clock.ManualClock(start)) as c:
        assert utcnow() == start and clock.now() == start
        c.advance(hours=4, seconds=1)
        assert utcnow() == start + dt.timedelta(hours=4, seconds=1)
    assert abs(utcnow() - dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)) \
        < dt.timedelta(minutes=1)
