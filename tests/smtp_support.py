"""Helpers for the SMTP tests: the ingress listeners alone (no pipeline, no delivery), so a
test can look at what was stored before anything takes it away."""

from __future__ import annotations

import asyncio
import smtplib
import threading
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import select

from listmgr import config as config_mod
from listmgr.app import App
from listmgr.store.models import InboundMessage, InboundTask, MailboxUser, RelayGrant, utcnow
from tests.support import migrated


class IngressThread:
    """listmgr.smtp.server's components on their own event loop thread."""

    def __init__(self, config_path: Path):
        self.config = config_mod.load(config_path)
        migrated(config_mod.database_url(self.config))
        self.app = App.from_config(self.config)
        self.ports: dict[str, int] = {}
        self.components: list[Any] = []
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, daemon=True, name="listmgr-ingress")

    async def _run(self) -> None:
        from listmgr.smtp import server
        self.app.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.components = server.components(self)
        for c in self.components:
            await c.start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            for c in reversed(self.components):
                await c.stop()

    def _main(self) -> None:
        try:
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(self._run())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def start(self) -> "IngressThread":
        self.thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("ingress did not start")
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        if self.loop and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(20)
        self.app.store.dispose()

    @property
    def smtp_port(self) -> int:
        return self.ports["smtp"]

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self.app.store.session() as s:
            return fn(s, *args)

    # -- what was stored
    def messages(self) -> list[tuple[InboundMessage, list[InboundTask]]]:
        with self.app.store.session() as s:
            out = []
            for m in s.scalars(select(InboundMessage).order_by(InboundMessage.id)):
                tasks = list(s.scalars(select(InboundTask).where(
                    InboundTask.message_id == m.id).order_by(InboundTask.id)))
                out.append((m, tasks))
            return out

    def tasks(self) -> list[tuple[str, str, str]]:
        """(kind, target, rcpt) of every stored task, in order."""
        return [(t.kind, t.target, t.rcpt) for _, ts in self.messages() for t in ts]


def add_user(s, name: str) -> None:
    s.add(MailboxUser(name=name, password_hash="x"))


def add_grant(s, ip: str = "127.0.0.1", minutes: float = 30) -> None:
    import datetime as dt
    now = utcnow()
    s.add(RelayGrant(ip=ip, user="alice", granted_at=now,
                     expires_at=now + dt.timedelta(minutes=minutes)))


def connect(port: int, ehlo: bool = True, timeout: float = 10) -> smtplib.SMTP:
    c = smtplib.SMTP("127.0.0.1", port, timeout=timeout)
    if ehlo:
        c.ehlo("client.example")
    return c


def rcpt_reply(port: int, rcpt: str, mail_from: str = "sender@outside.example") -> tuple[int, str]:
    """(code, text) the server gives to RCPT TO:<rcpt>, sent raw (no smtplib quoting)."""
    with connect(port) as c:
        code, _ = c.docmd(f"MAIL FROM:<{mail_from}>")
        assert code == 250
        code, text = c.docmd(f"RCPT TO:{rcpt}")
        return code, text.decode()


def make_ingress_fixture():
    """A pytest fixture: ingress(**config overrides) -> a started IngressThread."""
    import pytest

    from tests.support import write_config

    @pytest.fixture
    def ingress(tmp_path: Path, db_url: str):
        started: list[IngressThread] = []

        def start(**overrides: Any) -> IngressThread:
            path = write_config(tmp_path, db_url, **overrides)
            t = IngressThread(path).start()
            started.append(t)
            return t

        yield start
        for t in started:
            t.stop()

    return ingress
