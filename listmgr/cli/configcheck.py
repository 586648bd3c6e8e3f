"""`listmgr config-sample` and `listmgr check-config`.

check-config loads the configuration by the usual lookup order, prints every value that
differs from the default (`key = value`, `section.key` inside sections, as `postconf -n`),
then one `warning:` line for each thing that will not work as written:
a site admin at a local domain with no mailbox or list behind it, a `[web] base_url` that is
not https, a smarthost that does not answer with an SMTP greeting, listening ports below
1024 without root (or CAP_NET_BIND_SERVICE), a database that cannot be opened. Exit status
0 when there is no warning, 1 when there is one, 2 for a configuration error.
"""

from __future__ import annotations

import os
import socket
import sys

from listmgr import config as config_mod
from listmgr.cli.common import redact_url
from listmgr.config_sample import non_default, sample_text

SMARTHOST_TIMEOUT = 10.0


def cmd_config_sample(args) -> int:
    sys.stdout.write(sample_text())
    return 0


def _listeners(cfg: config_mod.Config) -> list[tuple[str, str]]:
    pairs = [("smtp.listen", cfg.smtp.listen), ("lmtp.listen", cfg.lmtp.listen),
             ("pop3.listen", cfg.pop3.listen), ("maps.listen", cfg.maps.listen),
             ("submission.listen", cfg.submission.listen),
             ("submission.tls_listen", cfg.submission.tls_listen)]
    if cfg.pop3.tls_cert:
        pairs.append(("pop3.tls_listen", cfg.pop3.tls_listen))
    for key in ("metrics", "web"):
        section = getattr(cfg, key, None)
        value = getattr(section, "listen", "") if section is not None else ""
        if value:
            pairs.append((f"{key}.listen", value))
    return [(k, v) for k, v in pairs if v]


def _can_bind_low_ports() -> bool:
    if os.geteuid() == 0:
        return True
    try:  # CAP_NET_BIND_SERVICE (e.g. systemd's AmbientCapabilities) is bit 10
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 10))
    except OSError:
        pass
    return False


def smarthost_problem(hostport: str, timeout: float = SMARTHOST_TIMEOUT) -> str | None:
    """None when `hostport` answers with an SMTP 220 greeting, else what went wrong."""
    host, port = config_mod.split_hostport(hostport)
    try:
        with socket.create_connection((host, port), timeout=timeout) as c:
            c.settimeout(timeout)
            greeting = c.recv(512)
            try:
                c.sendall(b"QUIT\r\n")
            except OSError:
                pass
    except OSError as exc:
        return f"cannot connect: {exc.strerror or exc}"
    if not greeting.startswith(b"220"):
        first = greeting.decode("ascii", "replace").strip().splitlines()[:1]
        return f"no SMTP greeting (got {first[0][:80] if first else 'nothing'!r})"
    return None


def _site_admin_warnings(cfg: config_mod.Config) -> list[str]:
    local = [a for a in cfg.site_admins
             if a.rpartition("@")[2].lower().rstrip(".") in cfg.local_domains]
    if not local:
        return []
    from listmgr.app import App
    from listmgr.maps.addresses import StoreDirectory, is_ours
    from listmgr.smtp.routing import Destination, route
    from listmgr.store import migrate
    warnings = []
    from listmgr.cli.common import sqlite_file
    db_file = sqlite_file(cfg)
    if db_file is not None and not db_file.exists():
        return [f"no database at {db_file}: run `listmgr init` (site_admins not checked)"]
    app = App.from_config(cfg, create_dirs=False)
    try:
        if migrate.status(app.store.engine) != "current":
            return ["the database is not initialised or is behind: run `listmgr init` "
                    "(site_admins not checked)"]
        with app.store.session() as s:
            for addr in local:
                dest = route(addr, cfg.local_domains, StoreDirectory(s))
                if not is_ours(s, addr, cfg.local_domains) or (
                        isinstance(dest, Destination) and dest.kind == "admins"):
                    warnings.append(f"site_admins: {addr} is at a local domain but has no "
                                    f"mailbox (`listmgr user add {addr.split('@')[0]}`): "
                                    "postmaster mail to it would be lost")
    except Exception as exc:  # the database did not answer: say so, check the rest
        warnings.append(f"cannot open the database: {str(exc).splitlines()[0]}")
    finally:
        app.store.dispose()
    return warnings


def warnings_for(cfg: config_mod.Config, *, probe_smarthost: bool = True) -> list[str]:
    out: list[str] = []
    out += _site_admin_warnings(cfg)
    base_url = cfg.web.base_url
    if base_url and not base_url.lower().startswith("https://"):
        out.append(f"web.base_url = {base_url!r} is not https: mail clients and providers "
                   "may refuse one-click unsubscribe links over plain http")
    if cfg.delivery.smarthost and probe_smarthost:
        problem = smarthost_problem(cfg.delivery.smarthost)
        if problem:
            out.append(f"delivery.smarthost {cfg.delivery.smarthost}: {problem}; outbound "
                       "mail will wait in the queue")
    if not _can_bind_low_ports():
        for key, value in _listeners(cfg):
            port = config_mod.split_hostport(value)[1]
            if 0 < port < 1024:
                out.append(f"{key} = {value!r}: port {port} needs root or "
                           "CAP_NET_BIND_SERVICE (see contrib/listmgr.service)")
    if not cfg.site_admins:
        out.append("site_admins is empty: postmaster mail waits in the shunt queue")
    return out


def cmd_check_config(args) -> int:
    cfg = config_mod.load(args.config)
    from listmgr.cli.common import source
    print(f"# configuration: {source(cfg)}")
    for key, value in non_default(cfg):
        if key == "database_url":
            value = '"' + redact_url(cfg.database_url) + '"'
        print(f"{key} = {value}")
    warnings = warnings_for(cfg, probe_smarthost=not args.no_connect)
    for w in warnings:
        print(f"warning: {w}")
    return 1 if warnings else 0


def register(sub) -> None:
    p = sub.add_parser("config-sample", help="print a listmgr.toml with every key commented, "
                       "at its default")
    p.set_defaults(func=cmd_config_sample)
    p = sub.add_parser("check-config", help="print the values that differ from the defaults "
                       "and warn about what will not work")
    p.add_argument("--no-connect", action="store_true",
                   help="do not try to connect to the smarthost")
    p.set_defaults(func=cmd_check_config)
