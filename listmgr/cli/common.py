"""Shared CLI plumbing: load the configuration, open the store at the right schema."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.exc import OperationalError

from listmgr import config as config_mod
from listmgr.app import App
from listmgr.cli import CLIError
from listmgr.store import migrate


def load_config(args) -> config_mod.Config:
    return config_mod.load(args.config)


def open_app(args, *, create: bool = False) -> App:
    """An App whose database is at the newest schema (creating it when `create`)."""
    cfg = load_config(args)
    app = App.from_config(cfg)
    try:
        state = migrate.status(app.store.engine)
    except OperationalError as exc:
        raise CLIError(f"cannot open database {app.store.engine.url!r}: "
                       f"{str(exc.orig).splitlines()[0]}") from None
    if state == "current":
        return app
    if state == "fresh" and create:
        migrate.upgrade(app.store.engine)
        return app
    if state == "fresh":
        raise CLIError("the database is not initialised: run `listmgr init` first")
    raise CLIError("the database schema is behind this version of listmgr: "
                   "run `listmgr init` to upgrade it")


@contextlib.contextmanager
def session(args) -> Iterator:
    app = open_app(args)
    try:
        with app.store.session() as s:
            yield app, s
    finally:
        app.store.dispose()
