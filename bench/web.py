#!/usr/bin/env python3
"""Web pages: median time of a page view, a /personal/ login (argon2id off the event loop)
and a one-click unsubscribe POST, against a real `listmgr serve` on SQLite and PostgreSQL.

    python bench/web.py [--members 300] [--views 200] [--logins 20]
                        [--databases sqlite,postgres]

One client, requests one after another (httpx, keep-alive), on 127.0.0.1 port 0.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from scratch import scratch_database


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


def one(db: str, members: int, views: int, logins: int) -> dict[str, str]:
    from listmgr import config, site_secret, unsubscribe
    from listmgr.app import App
    from listmgr.service import Service
    from listmgr.store import lists, mailboxes, migrate

    with tempfile.TemporaryDirectory() as d, scratch_database(db, d) as url:
        cfg_path = Path(d) / "listmgr.toml"
        cfg_path.write_text(f'domain = "example.org"\ndata_dir = "{d}/var"\n'
                            f'database_url = "{url}"\n[smtp]\nlisten = "127.0.0.1:0"\n'
                            f'[pop3]\nlisten = "127.0.0.1:0"\n[delivery]\nworkers = false\n'
                            f'[web]\nlisten = "127.0.0.1:0"\n')
        cfg = config.load(cfg_path)
        app = App.from_config(cfg)
        migrate.upgrade(app.store.engine)
        secret = site_secret.load(cfg.data_dir)
        with app.store.session() as s:
            mailboxes.add_user(s, "bench", "bench password")
            ml = lists.create_list(s, "demo", ["owner@example.net"])
            ml.announcements = False
            lists.add_members(s, ml, [f"m{i}@example.net" for i in range(members)])
            s.flush()
            paths = [f"/u/{unsubscribe.token(secret, 'demo', m.key, m.id)}"
                     for m in (lists.find_member(s, ml, f"m{i}@example.net")
                               for i in range(members))]
        svc = Service(cfg, app)
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        t = threading.Thread(target=lambda: loop.run_until_complete(svc.run(ready=ready.set)),
                             daemon=True)
        t.start()
        ready.wait(30)
        out: dict[str, str] = {}
        try:
            base = f"http://127.0.0.1:{svc.ports['web']}"
            with httpx.Client(base_url=base) as c:
                samples = []
                for _ in range(views):
                    t0 = time.perf_counter()
                    assert c.get("/lists/demo/").status_code == 200
                    samples.append(time.perf_counter() - t0)
                out["page view"] = _ms(samples)
                samples = []
                for _ in range(logins):
                    c.cookies.clear()
                    page = c.get("/personal/").text
                    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
                    t0 = time.perf_counter()
                    r = c.post("/personal/login", data={"csrf": csrf, "user": "bench",
                                                        "password": "bench password"})
                    samples.append(time.perf_counter() - t0)
                    assert r.status_code == 303
                out["login"] = _ms(samples)
                samples = []
                for p in paths:
                    t0 = time.perf_counter()
                    r = c.post(p, data={"List-Unsubscribe": "One-Click"})
                    samples.append(time.perf_counter() - t0)
                    assert r.status_code == 200
                out["one-click unsubscribe"] = _ms(samples)
            with app.store.session() as s:
                assert lists.member_count(s, lists.require_list(s, "demo")) == 0
        finally:
            loop.call_soon_threadsafe(svc.request_stop)
            t.join(30)
            app.store.dispose()
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=300)
    ap.add_argument("--views", type=int, default=200)
    ap.add_argument("--logins", type=int, default=20)
    ap.add_argument("--databases", default="sqlite,postgres")
    a = ap.parse_args()
    print(f"medians: {a.views} views of /lists/demo/, {a.logins} logins, "
          f"{a.members} one-click unsubscribes")
    for db in a.databases.split(","):
        r = one(db, a.members, a.views, a.logins)
        print(f"{db:<10} " + "   ".join(f"{k} {v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
