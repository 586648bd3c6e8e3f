"""`listmgr init` and `listmgr serve`."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import OperationalError

from listmgr.app import App
from listmgr.cli import CLIError, setup_logging
from listmgr.cli.common import load_config, open_app
from listmgr.mail import dkim
from listmgr.store import migrate

log = logging.getLogger("listmgr")


def cmd_init(args) -> int:
    cfg = load_config(args)
    app = App.from_config(cfg)
    try:
        before = migrate.current_revision(app.store.engine)
        migrate.upgrade(app.store.engine)
        after = migrate.current_revision(app.store.engine)
    except OperationalError as exc:
        raise CLIError(f"cannot open database: {str(exc.orig).splitlines()[0]}") from None
    finally:
        app.store.dispose()
    if before == after:
        print(f"database is up to date (revision {after})")
    else:
        print(f"database initialised at revision {after}")
    return 0


def cmd_serve(args) -> int:
    cfg = load_config(args)
    setup_logging(cfg.log_level)
    app = open_app(args, create=True)
    if not cfg.site_admins:
        log.warning("site_admins is empty: mail to postmaster@ and majordomo-owner@ (and "
                    "returned replies) is kept in the shunt queue; set site_admins in %s",
                    cfg.source)
    # Imported here: the server's components are not needed by the other subcommands,
    # which start faster without them.
    from listmgr.service import Service
    if app.signer is None:
        log.warning("no DKIM key at %s: outgoing mail is not signed; `listmgr dkim keygen` "
                    "makes one", dkim.key_path(cfg))
    else:
        log.info("DKIM signing: selector=%s domains=%s arc=%s", app.signer.selector,
                 ",".join(app.signer.domains), "on" if cfg.dkim.arc else "off")
    service = Service(cfg, app)
    asyncio.run(service.run(ready=lambda: log.info("listmgr ready: %s", " ".join(
        f"{k}={v}" for k, v in sorted(service.ports.items())) or "no listeners")))
    return 0


def register(sub) -> None:
    p = sub.add_parser("init", help="create or upgrade the database (idempotent)")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("serve", help="run the mail server and workers until SIGINT/SIGTERM")
    p.set_defaults(func=cmd_serve)
