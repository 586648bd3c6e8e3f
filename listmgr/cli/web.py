"""`listmgr web`: the web pages alone (several processes on one PostgreSQL database behind a
reverse proxy, beside the `listmgr serve` that receives and delivers mail)."""

from __future__ import annotations

import asyncio
import logging
import signal

from listmgr.cli import CLIError, setup_logging
from listmgr.cli.common import load_config, open_app
from listmgr.web.server import WebServer

log = logging.getLogger("listmgr")


def cmd_web(args) -> int:
    cfg = load_config(args)
    setup_logging(cfg.log_level)
    if not cfg.web.listen:
        raise CLIError(f"[web] listen is empty in {cfg.source}: nothing to serve")
    app = open_app(args)

    async def run() -> None:
        app.loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        ports: dict[str, int] = {}
        server = WebServer(app, ports)
        await server.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            app.loop.add_signal_handler(sig, stop.set)
        log.info("listmgr web ready: web=%d", ports["web"])
        try:
            await stop.wait()
            log.info("stopping")
        finally:
            await server.stop()

    try:
        asyncio.run(run())
    finally:
        app.store.dispose()
    return 0


def register(sub) -> None:
    p = sub.add_parser("web", help="run only the web pages until SIGINT/SIGTERM")
    p.set_defaults(func=cmd_web)
