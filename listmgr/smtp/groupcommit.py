"""Group commit at ingress: many messages made durable by one directory fsync and one
store transaction.

Each SMTP/LMTP session writes its message to the spool itself (the file's bytes fsynced,
in the listener's thread pool, sessions in parallel), then hands the message to the
listener's GroupCommit and waits. One committer at a time takes everything waiting: one
fsync of `spool/in` makes the files' names durable, one transaction (on SQLite with the WAL
fsynced at commit) stores every message with its tasks, and only then is each session told
to answer `250`. Messages that arrive while a group is being committed form the next group,
so the group grows with the load and a lone message is not delayed.

If a group's transaction fails, its messages are committed one by one, so one bad message
costs only its own `451`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from listmgr.app import App
from listmgr.store import inbound

log = logging.getLogger("listmgr.smtp")

MAX_GROUP = 256  # messages per transaction at most


@dataclass
class Accepted:
    """A message whose bytes are in the spool, waiting for its rows to be committed."""

    queue_id: str
    spool_path: str
    mail_from: str
    client_ip: str
    client_helo: str
    size: int
    destinations: list[inbound.Destination] = field(default_factory=list)


def new_message(item: Accepted) -> inbound.NewMessage:
    return inbound.NewMessage(queue_id=item.queue_id, spool_path=item.spool_path,
                              mail_from=item.mail_from, client_ip=item.client_ip,
                              client_helo=item.client_helo, size=item.size,
                              destinations=tuple(item.destinations))


def add_message(s, item: Accepted) -> None:
    """The inbound rows of one message, in store session `s` (store.inbound: the message
    and its tasks)."""
    inbound.create_many(s, [new_message(item)])


class GroupCommit:
    """Commits the messages of concurrent sessions in groups (see the module docstring)."""

    def __init__(self, app: App, run: Callable[..., Any], *, max_group: int = MAX_GROUP):
        self.app = app
        self.run = run  # runs a function in the listener's thread pool
        self.max_group = max_group
        self.waiting: list[tuple[Accepted, asyncio.Future]] = []
        self.committer: asyncio.Task | None = None
        self.groups = 0  # transactions made (for tests and logs)
        self.largest = 0

    async def commit(self, item: Accepted) -> None:
        """Return once `item` is committed; raise if it could not be (then nothing of it is
        stored). A session that goes away meanwhile does not stop its group."""
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append((item, fut))
        if self.committer is None or self.committer.done():
            self.committer = asyncio.create_task(self._drain(), name="group-commit")
        await asyncio.shield(fut)

    async def drain(self) -> None:
        """Wait for the groups in flight (listener shutdown)."""
        if self.committer is not None:
            await asyncio.shield(self.committer)

    async def _drain(self) -> None:
        while self.waiting:
            group = self.waiting[:self.max_group]
            del self.waiting[:len(group)]
            items = [item for item, _ in group]
            try:
                await self.run(self._commit_group, items)
                outcomes: list[BaseException | None] = [None] * len(items)
            except Exception as exc:
                if len(items) == 1:
                    outcomes = [exc]
                else:
                    log.warning("group commit of %d messages failed (%r); one by one",
                                len(items), exc)
                    outcomes = await self.run(self._commit_each, items)
            self.groups += 1
            self.largest = max(self.largest, len(items))
            for (_, fut), outcome in zip(group, outcomes):
                if fut.done():
                    continue
                if outcome is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(outcome)

    def _commit_group(self, items: list[Accepted]) -> None:
        self.app.spool.sync_area("in")
        with self.app.store.durable_session() as s:
            inbound.create_many(s, [new_message(item) for item in items])

    def _commit_each(self, items: list[Accepted]) -> list[BaseException | None]:
        try:
            self.app.spool.sync_area("in")
        except Exception as exc:
            return [exc] * len(items)
        outcomes: list[BaseException | None] = []
        for item in items:
            try:
                with self.app.store.durable_session() as s:
                    add_message(s, item)
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
        return outcomes
