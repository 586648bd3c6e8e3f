"""`listmgr status`: one screen for the admin (or `--json` for scripts).

Listeners (each configured address, probed: does something answer there?), the queues
(outbound recipients queued / deferred / returning, oldest deferred message, inbound tasks
waiting and shunted), held posts, lists and mailbox users, and the last errors (deliveries
that were deferred or failed, shunted tasks).
"""

from __future__ import annotations

import datetime as dt
import json
import socket

from listmgr import config as config_mod
from listmgr.cli.common import redact_url, session, source
from listmgr.cli.server import LISTEN_KEYS
from listmgr.store import queue_report as report
from listmgr.store.models import utcnow

PROBE_TIMEOUT = 2.0
LAST_ERRORS = 5


def _configured(cfg) -> list[tuple[str, str]]:
    out = []
    for name, (section, key) in LISTEN_KEYS.items():
        sec = getattr(cfg, section, None)
        value = getattr(sec, key, "") if sec is not None else ""
        if name == "pop3s" and not cfg.pop3.tls_cert:
            value = ""
        if value:
            out.append((name, value))
    return out


def probe(hostport: str) -> bool:
    host, port = config_mod.split_hostport(hostport)
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1" if host != "::" else "::1"
    if port == 0:
        return False
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
            return True
    except OSError:
        return False


def _iso(d: dt.datetime | None) -> str | None:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ") if d else None


def gather(args) -> dict:
    with session(args) as (app, s):
        cfg = app.config
        counts = report.counts(s)
        oldest = report.oldest_deferred(s)
        held = report.held_posts(s)
        lists, users = report.totals(s)
        errors = [{"when": _iso(p.when), "queue_id": p.queue_id, "what": p.what,
                   "state": p.state, "error": p.error}
                  for p in report.last_errors(s, LAST_ERRORS)]
    return {
        "domain": cfg.domain, "hostname": cfg.hostname,
        "config": source(cfg), "data_dir": str(cfg.data_path.resolve()),
        "database": redact_url(config_mod.database_url(cfg)),
        "outbound": (f"smarthost {cfg.delivery.smarthost}" if cfg.delivery.smarthost
                     else "direct MX delivery"),
        "listeners": [{"name": n, "address": a, "answering": probe(a)}
                      for n, a in _configured(cfg)],
        "queue": {**counts, "oldest_deferred": (
            {"queue_id": oldest[0], "arrived": _iso(oldest[1])} if oldest else None)},
        "held_posts": held, "lists": lists, "mailbox_users": users,
        "last_errors": errors,
        "time": _iso(utcnow()),
    }


def _age(iso: str) -> str:
    then = dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
    secs = max(0, int((utcnow() - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def cmd_status(args) -> int:
    st = gather(args)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    q = st["queue"]
    print(f"listmgr {st['domain']} (hostname {st['hostname']}), {st['time']}")
    print(f"config {st['config']}; data {st['data_dir']}; database {st['database']}")
    print(f"outbound: {st['outbound']}")
    print("listeners:")
    for ln in st["listeners"]:
        state = "answering" if ln["answering"] else "NOT answering"
        print(f"  {ln['name']:<12} {ln['address']:<22} {state}")
    print(f"outbound queue: {q['outbound_queued']} recipients queued "
          f"({q['outbound_deferred']} deferred), {q['outbound_returning']} being returned")
    if q["oldest_deferred"]:
        od = q["oldest_deferred"]
        print(f"oldest deferred: {od['queue_id']} (arrived {od['arrived']}, "
              f"{_age(od['arrived'])} ago)")
    print(f"inbound queue: {q['inbound_waiting']} tasks waiting, "
          f"{q['inbound_shunted']} shunted" +
          (" (see `listmgr queue list`)" if q["inbound_shunted"] else ""))
    print(f"held posts: {st['held_posts']}; lists: {st['lists']}; "
          f"mailbox users: {st['mailbox_users']}")
    if st["last_errors"]:
        print("last errors:")
        for e in st["last_errors"]:
            print(f"  {e['when']} {e['queue_id']} {e['what']} {e['state']}: {e['error']}")
    else:
        print("last errors: none")
    return 0


def register(sub) -> None:
    p = sub.add_parser("status", help="one screen: listeners, queues, held posts, last errors")
    p.add_argument("--json", action="store_true", help="the same as JSON")
    p.set_defaults(func=cmd_status)
