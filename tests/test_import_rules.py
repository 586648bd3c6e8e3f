"""Which package may import which (docs/architecture.md, "Import rules"), enforced.

Every module under listmgr/ is parsed (not imported); each `import listmgr.X` or
`from listmgr.X import ...` anywhere in it (function bodies too) must be allowed by its
package's row.
"""

from __future__ import annotations

import ast
from pathlib import Path

import listmgr

ROOT = Path(listmgr.__file__).parent

BASE = {"config", "listconfig", "clock", "spool", "durable", "passwords", "render", "mail",
        "diskspace", "patterns", "site_secret", "unsubscribe", "auth", "metrics", "children"}
WORKER = BASE | {"store", "app", "tokens"}

# unit (top-level module or package under listmgr/) -> what it may import besides itself.
RULES: dict[str, set[str]] = {
    "mail": {"config", "clock"},
    "auth": {"config", "mail"},
    "config": {"patterns"}, "clock": set(), "durable": set(), "passwords": set(),
    "render": {"config"}, "listconfig": {"config", "mail", "patterns"},
    "site_secret": {"durable"}, "unsubscribe": set(),
    "spool": {"durable", "clock", "diskspace"},
    "diskspace": set(), "patterns": set(), "metrics": set(),
    "children": {"config", "diskspace"},
    "config_sample": {"config"}, "logsetup": {"config"}, "streamserver": {"config"},
    "maps": WORKER | {"smtp", "streamserver"},
    "exporter": WORKER | {"streamserver"},
    "store": BASE,
    "app": BASE | {"store"},
    "tokens": BASE | {"store"},
    "smtp": WORKER | {"pop3", "mailbox"},
    "pop3": WORKER | {"mailbox"},
    "mailbox": WORKER,
    "forward": WORKER,
    "delivery": WORKER | {"bounces"},
    "bounces": WORKER | {"forward", "posting"},
    "posting": WORKER,
    "majordomo": WORKER,
    "commands": WORKER | {"posting", "bounces", "majordomo"},
    "pipeline": WORKER,
    "web": WORKER | {"commands", "posting", "mailbox", "pop3", "site_secret", "unsubscribe"},
    "service": None,   # anything but cli (checked below)
    "cli": None,       # anything
    "__main__": {"cli"},
    "__init__": set(),
}



def unit_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "listmgr":  # from listmgr import tokens (a module, not a name)
                found += [(node.lineno, f"listmgr.{a.name}") for a in node.names
                          if (ROOT / f"{a.name}.py").exists() or (ROOT / a.name).is_dir()]
    return found


def modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "migrations" not in p.parts)


def test_every_import_follows_the_rules():
    broken = []
    for path in modules():
        unit = unit_of(path)
        assert unit in RULES, (f"{path.relative_to(ROOT.parent)}: package {unit!r} has no "
                               "import rule: add it to RULES here and to docs/architecture.md")
        allowed = RULES[unit]
        for line, name in imports(path):
            if not name.startswith("listmgr.") or name == "listmgr":
                continue
            target = name.split(".")[1]
            if target == unit or unit == "cli":
                continue
            ok = target != "cli" if unit == "service" else target in (allowed or set())
            if not ok:
                broken.append(f"{path.relative_to(ROOT.parent)}:{line} {unit} -> {target}")
    assert not broken, "imports against docs/architecture.md:\n" + "\n".join(broken)


def test_sqlalchemy_only_under_store():
    """Sessions pass through other packages as store.db.Session; every query is a store
    function, so no module outside store/ imports SQLAlchemy."""
    users = {str(p.relative_to(ROOT.parent)) for p in modules()
             if unit_of(p) != "store"
             and any(n == "sqlalchemy" or n.startswith("sqlalchemy.") for _, n in imports(p))}
    assert not users, sorted(users)


def test_the_rule_catches_a_bad_import(tmp_path):
    """The checker itself: a store module importing delivery is found."""
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from listmgr.delivery import queue\n")
    assert imports(bad) == [(2, "listmgr.delivery")]
    assert "delivery" not in RULES["store"]


def test_no_import_by_string_and_no_tolerated_missing_module():
    """Wiring is explicit (service.py, cli/__init__.py, commands/registry.py): a module
    missing from a build fails at start instead of a part silently not running."""
    found = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in (
                    "importlib.import_module", "import_module", "__import__"):
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} import by string")
            if isinstance(node, ast.ExceptHandler) and node.type is not None and any(
                    n in ast.unparse(node.type) for n in ("ImportError", "ModuleNotFoundError")):
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} tolerated import")
    assert not found, found


def test_the_server_wires_every_inbound_kind_and_component():
    from listmgr import service
    kinds = {k for handlers in service.INBOUND_WORKERS.values() for k in handlers}
    assert kinds == {"command", "post", "local", "relay", "owner", "approval", "admins", "bounce"}
    assert set(service.INBOUND_WORKERS) == {"commands", "posts", "mailbox", "forward", "bounces"}
