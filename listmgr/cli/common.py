"""Shared CLI plumbing: load the configuration, open the store at the right schema."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from listmgr import config as config_mod
from listmgr.app import App
from listmgr.cli import CLIError
from listmgr.store import db, migrate


def load_config(args) -> config_mod.Config:
    return config_mod.load(args.config)


def source(cfg: config_mod.Config) -> str:
    """The configuration file as an absolute path (or "(built-in defaults)")."""
    if cfg.source.startswith("("):
        return cfg.source
    return str(Path(cfg.source).resolve())


def redact_url(url: str) -> str:
    """A database URL without its password."""
    try:
        return db.redacted(url)
    except ValueError:
        return "(unparsable URL)"


def where(cfg: config_mod.Config) -> str:
    """Which configuration and database a command used, for its error messages."""
    return f"(config: {source(cfg)}; database: {redact_url(config_mod.database_url(cfg))})"


def sqlite_file(cfg: config_mod.Config) -> Path | None:
    return db.sqlite_file(config_mod.database_url(cfg))


def open_app(args, *, create: bool = False) -> App:
    """An App whose database is at the newest schema (creating it when `create`).

    Without `create`, a missing SQLite file or data directory is reported, not made: a
    command that fails leaves nothing behind (no empty ./var).
    """
    cfg = load_config(args)
    if not create:
        db_file = sqlite_file(cfg)
        if db_file is not None and not db_file.exists():
            raise CLIError(f"the database is not initialised (no {db_file}): run "
                           f"`listmgr init` first {where(cfg)}")
    app = App.from_config(cfg, create_dirs=create)
    try:
        state = migrate.status(app.store.engine)
    except db.CannotOpen as exc:
        app.store.dispose()
        raise CLIError(f"cannot open database: {str(exc.orig).splitlines()[0]} "
                       f"{where(cfg)}") from None
    if state == "fresh" and create:
        migrate.upgrade(app.store.engine)
        state = "current"
    if state == "current":
        app.spool.create()
        return app
    app.store.dispose()
    if state == "fresh":
        raise CLIError(f"the database is not initialised: run `listmgr init` first {where(cfg)}")
    raise CLIError("the database schema is behind this version of listmgr: "
                   f"run `listmgr init` to upgrade it {where(cfg)}")


@contextlib.contextmanager
def session(args) -> Iterator:
    app = open_app(args)
    try:
        with app.store.session() as s:
            yield app, s
    finally:
        app.store.dispose()
