"""Helpers for the POP3 tests: a self-signed certificate, users, mail in a mailbox."""

from __future__ import annotations

import poplib
import ssl
import subprocess
from pathlib import Path

from listmgr.mailbox.maildir import Maildir
from listmgr.store import mailboxes


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(cert, key) for CN=localhost, IP 127.0.0.1, made with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(key), "-out", str(cert), "-days", "2",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
    return cert, key


def client_context(cert: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert))
    return ctx


def add_user(server, name: str, password: str) -> None:
    server.call(lambda s: mailboxes.add_user(s, name, password))


def put_mail(server, user: str, data: bytes) -> str:
    return Maildir.for_user(server.config.data_dir, user).deliver(data)


def pop(server, timeout: float = 10) -> poplib.POP3:
    return poplib.POP3("127.0.0.1", server.pop3_port, timeout=timeout)


def login(server, user: str = "alice", password: str = "secret") -> poplib.POP3:
    p = pop(server)
    p.user(user)
    p.pass_(password)
    return p


class Servers:
    """Starts real servers without the recording sink (POP3 tests send nothing out)."""

    def __init__(self, tmp_path: Path, db_url: str):
        self.tmp_path, self.db_url = tmp_path, db_url
        self.started: list = []

    def __call__(self, **overrides):
        from tests.support import ServerThread, write_config
        t = ServerThread(write_config(self.tmp_path, self.db_url, **overrides))
        t.start()
        self.started.append(t)
        return t

    def stop(self) -> None:
        for t in self.started:
            t.stop()
