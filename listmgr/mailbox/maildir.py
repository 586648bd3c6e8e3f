"""Maildir mailboxes under `data_dir/mailboxes/<user>/{tmp,new,cur}`.

Delivery writes to `tmp/`, fsyncs the file, renames it into `new/` and fsyncs the directory,
so a crash leaves the whole message or nothing. Messages are stored with CRLF line ends, so
the file size is the exact octet count POP3 reports. A message's UID (POP3 UIDL) is its file
name up to the first ',' or ':' (the name never changes while the file lives), which is
unique and stable across sessions.

A mailbox has one POP3 session at a time: `lock()` takes an flock on `.pop3.lock`, which
also excludes sessions in other `listmgr serve` processes on the same data dir.
"""

from __future__ import annotations

import errno
import hashlib
import fcntl
import os
import re
import secrets
import shutil
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from listmgr.diskspace import remove_quietly
from listmgr.durable import fsync_dir, write_all

_UID_OK = re.compile(r"^[\x21-\x7e]{1,70}$")



def _hostname() -> str:
    # '/' and ':' have meanings in Maildir names (RFC-less, but qmail's convention).
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:24] or "localhost"


_HOSTNAME = _hostname()  # in every file name this process delivers
_UNIQUE_OK = re.compile(r"[A-Za-z0-9._-]{1,60}")
# The mailboxes whose tmp/, new/ and cur/ this process has made (or found): a delivery
# makes them only the first time (a removed mailbox is made again when a write finds it
# gone).
_CREATED: set[str] = set()


@dataclass(frozen=True)
class Staged:
    """A message written to a mailbox's tmp/ (Maildir.stage), not yet in it."""
    uid: str
    tmp: str
    final: str

    def publish(self) -> None:
        """Into new/ (the caller makes the name durable with Maildir.sync_new)."""
        try:
            os.replace(self.tmp, self.final)
        except BaseException:
            remove_quietly(self.tmp)
            raise

    def discard(self) -> None:
        """Take it back, published or not."""
        remove_quietly(self.tmp)
        remove_quietly(self.final)


@dataclass(frozen=True)
class Entry:
    """One message in a maildrop, as a POP3 session sees it."""
    path: Path
    uid: str
    size: int


class MailboxBusy(Exception):
    """Another session holds this mailbox."""


class MailboxLock:
    def __init__(self, fd: int):
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "MailboxLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Maildir:
    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    @classmethod
    def for_user(cls, data_dir: str | os.PathLike[str], user: str) -> "Maildir":
        if not user or "/" in user or user.startswith("."):
            raise ValueError(f"bad mailbox name {user!r}")
        return cls(Path(data_dir) / "mailboxes" / user.lower())

    def create(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        _CREATED.add(str(self.root))

    def remove(self) -> int:
        """Delete the whole mailbox; returns how many messages it held."""
        n = len(self.entries()) if self.root.exists() else 0
        _CREATED.discard(str(self.root))
        shutil.rmtree(self.root, ignore_errors=True)
        return n

    # ------------------------------------------------------------------ delivery

    def deliver(self, data: bytes, unique: str | None = None, *, sync: bool = True) -> str:
        """Store `data` durably; returns its UID.

        With `unique` (e.g. queue id + task id) a repeated delivery of the same task is a
        no-op while the first copy is still in the mailbox. With sync=False the file's bytes
        are fsynced but its name in new/ is not yet: the caller calls sync_new() before
        relying on it (one directory fsync for many deliveries).
        """
        if unique is not None:
            uid = self._uid(unique)
            if self._has_name(f"{uid},S={len(data)}"):
                return uid
        staged = self.stage(data, unique)
        staged.publish()
        if sync:
            self.sync_new()
        return staged.uid

    def stage(self, data: bytes, unique: str | None = None, *, head: bytes = b"") -> "Staged":
        """The first half of a delivery: `head` then `data` written to tmp/ and fsynced,
        under the name it is to have in new/. Nothing is in the mailbox until `publish()`;
        `discard()` removes the file instead."""
        root = str(self.root)
        if root not in _CREATED:
            self.create()
        uid = self._uid(unique) if unique is not None else \
            f"{int(time.time())}.M{secrets.token_hex(6)}P{os.getpid()}.{_HOSTNAME}"
        name = f"{uid},S={len(head) + len(data)}"
        staged = Staged(uid, f"{root}/tmp/{name}", f"{root}/new/{name}")
        try:
            self._write(staged.tmp, head, data)
        except FileNotFoundError:
            # The mailbox was removed since this process made it (`listmgr user remove`,
            # the web admin): make it again, as for a first delivery.
            _CREATED.discard(root)
            self.create()
            self._write(staged.tmp, head, data)
        return staged

    @staticmethod
    def _uid(unique: str) -> str:
        if not _UNIQUE_OK.fullmatch(unique):
            raise ValueError(f"bad unique name {unique!r}")
        return f"{unique}.{_HOSTNAME}"

    @staticmethod
    def _write(tmp: str, *parts: bytes) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            try:
                write_all(fd, *parts)
            finally:
                os.close(fd)
        except BaseException:
            remove_quietly(tmp)
            raise

    def sync_new(self) -> None:
        """Make every delivery into new/ so far survive a crash."""
        fsync_dir(self.root / "new")

    def _has_name(self, name: str) -> bool:
        """Is a message with this base name in new/ or cur/ (where readers add ':2,...')?"""
        root = str(self.root)
        if os.path.exists(f"{root}/new/{name}"):
            return True
        prefix = name + ":"
        try:
            with os.scandir(f"{root}/cur") as found:
                return any(e.name == name or e.name.startswith(prefix) for e in found)
        except FileNotFoundError:
            return False

    # ------------------------------------------------------------------ reading

    @staticmethod
    def uid_of(name: str) -> str:
        """The stable UID of a Maildir file name (everything before ',' or ':')."""
        base = re.split(r"[,:]", name, maxsplit=1)[0]
        if _UID_OK.match(base):
            return base
        return hashlib.sha1(base.encode("utf-8", "surrogateescape")).hexdigest()

    def entries(self) -> list[Entry]:
        """Messages in new/ and cur/, oldest first (by the time the file was written)."""
        found: list[tuple[int, str, Entry]] = []
        for sub in ("cur", "new"):
            d = self.root / sub
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            for name in names:
                if name.startswith("."):
                    continue
                p = d / name
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue  # only regular files are messages
                found.append((st.st_mtime_ns, name, Entry(p, self.uid_of(name), st.st_size)))
        found.sort(key=lambda t: (t[0], t[1]))
        return [e for _, _, e in found]

    def find(self, uid: str) -> Entry | None:
        for e in self.entries():
            if e.uid == uid:
                return e
        return None

    @staticmethod
    def read(entry: Entry) -> bytes:
        return entry.path.read_bytes()

    @staticmethod
    def delete(entry: Entry) -> bool:
        """Remove one message; False when it was already gone."""
        try:
            entry.path.unlink()
            return True
        except FileNotFoundError:
            return False

    def delete_many(self, entries) -> int:
        """Remove messages (POP3 UPDATE), then make the removals durable; returns how many
        could not be removed (already gone counts as removed)."""
        failed = 0
        dirs = set()
        for entry in entries:
            try:
                self.delete(entry)
                dirs.add(entry.path.parent)
            except OSError:
                failed += 1
        for d in dirs:
            fsync_dir(d)
        return failed

    # ------------------------------------------------------------------ locking

    def lock(self) -> MailboxLock:
        """Exclusive, non-blocking: MailboxBusy when another session holds the mailbox."""
        self.create()
        fd = os.open(self.root / ".pop3.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise MailboxBusy(str(self.root)) from None
            raise
        return MailboxLock(fd)
