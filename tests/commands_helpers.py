"""Helpers for the command-mail tests: a shared migrated App per database, and a way to
send one command mail through the handler and read what it queued."""

from __future__ import annotations

import email
import email.policy
import secrets
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import create_engine, delete, func, select, text

from listmgr import config as config_mod
from listmgr.app import App
from listmgr.store.models import (
    MailingList,
    Member,
    OutboundMessage,
    OutboundRecipient,
    RateCounter,
    SiteSetting,
    Token,
)
from tests.support import migrated, write_config


def make_app(tmp: Path, database: str, pg_url: str, **overrides):
    """(app, cleanup) on a fresh SQLite file or PostgreSQL schema."""
    cleanup = []
    if database == "sqlite":
        url = f"sqlite:///{tmp / 'cmd.sqlite3'}"
    else:
        schema = f"c_{secrets.token_hex(6)}"
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in pg_url else "?"
        url = f"{pg_url}{sep}options=-csearch_path%3D{schema}"

        def drop():
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        cleanup.append(drop)
    cfg = config_mod.load(write_config(tmp, url, **overrides))
    migrated(url)
    app = App.from_config(cfg)

    def close():
        app.store.dispose()
        for fn in cleanup:
            fn()
    return app, close


def reset(app: App) -> None:
    with app.store.session() as s:
        for model in (OutboundRecipient, OutboundMessage, Member, Token, RateCounter,
                      SiteSetting, MailingList):
            s.execute(delete(model))


@dataclass
class Sent:
    mail_from: str
    rcpts: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return self.message.get_content().replace("\r\n", "\n")

    @property
    def lines(self) -> list[str]:
        return self.body.rstrip("\n").split("\n")


@dataclass
class Outcome:
    sent: list[Sent] = field(default_factory=list)

    @property
    def reply(self) -> Sent | None:
        for m in self.sent:
            if str(m.message["Subject"] or "").startswith(("Majordomo results",
                                                          "Majordomo 処理結果")):
                return m
        return None

    @property
    def lines(self) -> list[str]:
        """The reply's transcript lines (without Majordomo's leading `--` and blank)."""
        r = self.reply
        assert r is not None, f"no reply; sent: {[(m.rcpts, m.subject) for m in self.sent]}"
        lines = r.lines
        assert lines[:2] == ["--", ""], lines[:3]
        return lines[2:]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def to(self, address: str) -> list[Sent]:
        return [m for m in self.sent if address.lower() in (r.lower() for r in m.rcpts)]

    def others(self) -> list[Sent]:
        return [m for m in self.sent if m is not self.reply]


class Mailer:
    """Sends command mails through the handler (listmgr.commands.worker.process)."""

    def __init__(self, app: App):
        self.app = app

    def raw(self, data: bytes, *, mail_from: str = "joe@example.net",
            default_list: str = "") -> Outcome:
        from listmgr.commands import worker

        def run():
            with self.app.store.session() as s:
                worker.process(self.app, s, data=data, mail_from=mail_from,
                               default_list=default_list)
        return self.capture(run)

    def capture(self, fn) -> Outcome:
        """Run fn(); return the messages it queued."""
        return capture(self.app, fn)

    def send(self, body: str, *, frm: str = "joe@example.net", subject: str = "commands",
             default_list: str = "", headers: dict[str, str] | None = None,
             mail_from: str | None = None) -> Outcome:
        head = {"From": frm, "To": f"{default_list}-request@example.org" if default_list
                else "majordomo@example.org", "Subject": subject,
                "Message-ID": f"<{secrets.token_hex(6)}@example.net>"}
        head.update(headers or {})
        lines = [f"{k}: {v}" for k, v in head.items() if v is not None]
        data = ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()
        env = mail_from if mail_from is not None else _bare(frm)
        return self.raw(data, mail_from=env, default_list=default_list)


def capture(app: App, fn) -> Outcome:
    with app.store.session() as s:
        before = s.scalar(select(func.coalesce(func.max(OutboundMessage.id), 0)))
    fn()
    return queued_since(app, before)


def queued_since(app: App, before: int) -> Outcome:
    out = Outcome()
    with app.store.session() as s:
        for m in s.scalars(select(OutboundMessage).where(OutboundMessage.id > before)
                           .order_by(OutboundMessage.id)):
            rcpts = list(s.scalars(select(OutboundRecipient.rcpt).where(
                OutboundRecipient.message_id == m.id)))
            msg = email.message_from_bytes(app.spool.read(m.spool_path),
                                           policy=email.policy.default)
            out.sent.append(Sent(m.mail_from, rcpts, msg))
    return out


def last_outbound_id(app: App) -> int:
    with app.store.session() as s:
        return s.scalar(select(func.coalesce(func.max(OutboundMessage.id), 0)))


def _bare(addr: str) -> str:
    from email.utils import parseaddr
    return parseaddr(addr)[1] or addr


# --------------------------------------------------------------------------- fixtures
import pytest  # noqa: E402

from tests.conftest import DATABASES, PG_URL  # noqa: E402


@pytest.fixture(scope="module", params=DATABASES)
def cmd_app(request, tmp_path_factory):
    """One migrated App per database for a whole test module (tests reset it)."""
    app, close = make_app(tmp_path_factory.mktemp("cmd"), request.param, PG_URL)
    yield app
    close()


@pytest.fixture
def mailer(cmd_app):
    reset(cmd_app)
    return Mailer(cmd_app)


def make_list(app: App, name: str = "demo", *, owner: str = "owner@example.com",
              password: str = "s3cret", members: tuple[str, ...] = (),
              description: str = "", **settings) -> None:
    from listmgr.store import lists as repo
    with app.store.session() as s:
        mlist = repo.create_list(s, name, [owner], password=password, description=description)
        for key, value in settings.items():
            setattr(mlist, key, value)
        if members:
            repo.add_members(s, mlist, members)


def members_of(app: App, name: str) -> list[str]:
    from listmgr.store import lists as repo
    with app.store.session() as s:
        mlist = repo.require_list(s, name)
        return [a for batch in repo.iter_member_batches(s, mlist, enabled_only=False)
                for _, a in batch]
