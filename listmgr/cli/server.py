"""`listmgr init` and `listmgr serve`."""

from __future__ import annotations

import asyncio
import logging

from listmgr import config as config_mod
from listmgr import logsetup
from listmgr.app import App
from listmgr.cli import CLIError, setup_logging
from listmgr.cli.common import load_config, open_app, source
from listmgr.mail import dkim
from listmgr.store import datadir, db, migrate

log = logging.getLogger("listmgr")


def cmd_init(args) -> int:
    cfg = load_config(args)
    app = App.from_config(cfg)
    try:
        before = migrate.current_revision(app.store.engine)
        migrate.upgrade(app.store.engine)
        after = migrate.current_revision(app.store.engine)
    except db.CannotOpen as exc:
        raise CLIError(f"cannot open database: {str(exc.orig).splitlines()[0]}") from None
    finally:
        app.store.dispose()
    if before == after:
        print(f"database is up to date (revision {after})")
    else:
        print(f"database initialised at revision {after}")
    return 0


# service.ports name -> the configuration key it listens on
LISTEN_KEYS = {
    "smtp": ("smtp", "listen"), "lmtp": ("lmtp", "listen"), "pop3": ("pop3", "listen"),
    "pop3s": ("pop3", "tls_listen"), "maps": ("maps", "listen"),
    "submission": ("submission", "listen"), "submissions": ("submission", "tls_listen"),
    "metrics": ("metrics", "listen"), "web": ("web", "listen"),
}


def listeners(cfg, ports: dict[str, int]) -> list[str]:
    """`name=host:port` for every bound listener, with the port actually bound."""
    out = []
    for name, port in sorted(ports.items()):
        section, key = LISTEN_KEYS.get(name, (name, "listen"))
        value = getattr(getattr(cfg, section, None), key, "") or ""
        host = config_mod.split_hostport(value)[0] if value else "?"
        out.append(f"{name}={host}:{port}")
    return out


def ready_line(cfg, ports: dict[str, int]) -> str:
    """What a starting server is: domain, names, where its data is, what it listens on and
    how its mail leaves."""
    from listmgr.cli.common import redact_url
    mode = (f"smarthost {cfg.delivery.smarthost}" if cfg.delivery.smarthost
            else "direct MX delivery")
    if not cfg.delivery.workers:
        mode += " (delivery workers off: run `listmgr deliver`)"
    return (f"listmgr ready: domain={cfg.domain} hostname={cfg.hostname} "
            f"data_dir={cfg.data_path.resolve()} "
            f"database={redact_url(config_mod.database_url(cfg))} "
            f"listeners: {' '.join(listeners(cfg, ports)) or 'none'}; outbound: {mode}; "
            f"config: {source(cfg)}")


def check_data_dir(app: App, *, adopt: bool = False) -> None:
    """PostgreSQL: several hosts may work on this database, so they must share one data_dir
    (store.datadir); a process with another data_dir stops here with a one-line error."""
    if app.store.engine.dialect.name == "sqlite":
        return
    try:
        datadir.check(app.store, app.config.data_path, adopt=adopt)
    except datadir.ForeignDataDir as exc:
        app.store.dispose()
        raise CLIError(str(exc)) from None


def cmd_serve(args) -> int:
    cfg = load_config(args)
    logsetup.configure(cfg)
    app = open_app(args, create=True)
    check_data_dir(app, adopt=args.adopt_data_dir)
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
    try:
        asyncio.run(service.run(ready=lambda: log.info("%s", ready_line(cfg, service.ports))))
    except OSError as exc:  # a port in use, a certificate that cannot be read
        log.error("listmgr could not start: %s", exc)
        raise CLIError(f"could not start: {exc}") from None
    return 0


def register(sub) -> None:
    p = sub.add_parser("init", help="create or upgrade the database (idempotent)")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("serve", help="run the mail server and workers until SIGINT/SIGTERM")
    p.add_argument("--adopt-data-dir", action="store_true",
                   help="make this data_dir the database's (PostgreSQL: after moving the "
                        "data_dir; every host must then mount this one)")
    p.set_defaults(func=cmd_serve)
