"""Transactions of one message with their own envelopes, pipelined back to back on one
connection (RFC 2920): each recipient's reply is its own, a refusal in the middle does not
disturb its neighbours, and a connection dropped mid batch keeps the results before it
(the rest are retried by the worker: none lost, only the one in flight sent twice)."""

from __future__ import annotations

import asyncio
import collections
import threading
import time

import pytest

from listmgr.delivery.smtpclient import SMTPClient, SMTPClientError, TxResult, prepare_payload
from tests.test_posting_e2e import STRANGER, post_text, send, setup_list

PAYLOAD = prepare_payload(b"Subject: verp\r\n\r\nbody\r\n")


class ScriptedSink:
    """A plain SMTP server (PIPELINING) on 127.0.0.1, in a thread, that records each
    finished transaction as (mail_from, rcpts) and can misbehave:

    `refuse` maps a recipient to the reply its RCPT gets; `drop_after` closes the first
    connection, without a reply, once it has received the payload of that many
    transactions (the last one in flight: its sender never hears 250); `stall_after` stops
    answering (the connection stays open) after that many payloads; `dribble` sends every
    reply one octet per write, the final one after DATA in three lines."""

    def __init__(self, drop_after: int | None = None, stall_after: int | None = None,
                 dribble: bool = False):
        self.refuse: dict[str, str] = {}
        self.drop_after = drop_after
        self.stall_after = stall_after
        self.dribble = dribble
        self.delivered: list[tuple[str, list[str]]] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def start(self) -> "ScriptedSink":
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()

    def rcpt_counts(self) -> collections.Counter:
        with self.lock:
            return collections.Counter(r for _, rcpts in self.delivered for r in rcpts)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                       ) -> None:
        self.connections += 1
        first = self.connections == 1
        received = 0
        mail_from, rcpts = "", []
        writer.write(b"220 scripted ESMTP\r\n")
        if self.dribble:
            out: list[bytes] = []
            real_write = writer.write
            writer.write = out.append  # type: ignore[method-assign]

        async def flush() -> None:
            if self.dribble:
                for byte in b"".join(out):
                    real_write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0)
                out.clear()
            await writer.drain()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                cmd = line.decode().strip()
                verb = cmd[:4].upper()
                if verb in ("EHLO", "HELO"):
                    writer.write(b"250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                elif verb == "MAIL":
                    mail_from, rcpts = cmd.partition("<")[2].partition(">")[0], []
                    writer.write(b"250 2.1.0 ok\r\n")
                elif verb == "RCPT":
                    rcpt = cmd.partition("<")[2].partition(">")[0]
                    reply = self.refuse.get(rcpt)
                    if reply:
                        writer.write(reply.encode() + b"\r\n")
                    else:
                        rcpts.append(rcpt)
                        writer.write(b"250 2.1.5 ok\r\n")
                elif verb == "DATA":
                    if not rcpts:
                        writer.write(b"554 5.5.1 no valid recipients\r\n")
                        await flush()
                        continue
                    writer.write(b"354 go ahead\r\n")
                    await flush()
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    received += 1
                    if first and self.drop_after is not None and received >= self.drop_after:
                        writer.transport.abort()  # gone, the last payload unanswered
                        return
                    if self.stall_after is not None and received > self.stall_after:
                        await asyncio.sleep(3600)
                    with self.lock:
                        self.delivered.append((mail_from, rcpts))
                    writer.write(b"250-2.0.0 queued\r\n250-as one\r\n250 2.0.0 in three lines\r\n"
                                 if self.dribble else b"250 2.0.0 queued\r\n")
                    mail_from, rcpts = "", []
                elif verb == "RSET":
                    mail_from, rcpts = "", []
                    writer.write(b"250 2.0.0 ok\r\n")
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    await flush()
                    writer.close()
                    return
                else:
                    writer.write(b"502 5.5.2 what\r\n")
                await flush()
        except (ConnectionError, OSError):
            return


@pytest.fixture
def scripted():
    sinks: list[ScriptedSink] = []

    def start(**kw) -> ScriptedSink:
        s = ScriptedSink(**kw).start()
        sinks.append(s)
        return s
    yield start
    for s in sinks:
        s.stop()


def _envelopes(n: int) -> list[tuple[str, list[str], bytes]]:
    return [(f"owner-l+m{i}=remote.example@example.org", [f"m{i}@remote.example"],
             f"X-Member: {i}\r\n".encode()) for i in range(n)]


def _transactions(sink: ScriptedSink, envelopes, timeout: float = 10):
    async def main():
        client, greeting = await SMTPClient.connect(
            "127.0.0.1", sink.port, host="sink.test", helo="client.test", timeout=timeout,
            connect_timeout=10, starttls=False)
        assert greeting.code == 220 and "PIPELINING" in client.extensions
        try:
            results, error = await client.transactions(envelopes, PAYLOAD)
            more = None
            if error is None:  # the connection goes on after the batch
                more = await client.transaction("a@example.org", ["z@remote.example"], PAYLOAD)
            return results, error, more
        finally:
            await client.quit()
    return asyncio.run(main())


def test_a_refused_recipient_in_the_middle_gets_its_own_reply(scripted):
    sink = scripted()
    sink.refuse["m3@remote.example"] = "550 5.1.1 <m3@remote.example>... User unknown"
    sink.refuse["m5@remote.example"] = "451 4.3.0 try later"
    results, error, more = _transactions(sink, _envelopes(8))
    assert error is None
    assert all(isinstance(r, TxResult) for r in results)
    codes = [(r.rcpts[0].code, r.data.code if r.data else None) for r in results]
    assert codes == [(250, 250)] * 3 + [(550, None), (250, 250), (451, None)] + \
        [(250, 250)] * 2
    assert results[3].rcpts[0].text.startswith("5.1.1")
    assert more is not None and more.data.code == 250  # the session is clean after it
    assert [m for m, _ in sink.delivered][:7] == \
        [f"owner-l+m{i}=remote.example@example.org" for i in (0, 1, 2, 4, 6, 7)] + \
        ["a@example.org"]


def test_replies_in_pieces_are_put_together(scripted):
    """A server whose replies come one octet at a time (TCP may split them anywhere), the
    last of each transaction in three lines: every transaction gets its own replies."""
    sink = scripted(dribble=True)
    sink.refuse["m2@remote.example"] = "550 5.1.1 <m2@remote.example>... User unknown"
    results, error, more = _transactions(sink, _envelopes(4))
    assert error is None
    assert [r.rcpts[0].code for r in results] == [250, 250, 550, 250]
    assert [r.data.text if r.data else None for r in results] == \
        ["2.0.0 queued\nas one\n2.0.0 in three lines"] * 2 + [None] + \
        ["2.0.0 queued\nas one\n2.0.0 in three lines"]
    assert more.data.code == 250
    assert [m for m, _ in sink.delivered] == [e[0] for i, e in enumerate(_envelopes(4))
                                               if i != 2] + ["a@example.org"]


def test_a_server_that_stops_answering_mid_batch_is_given_up_after_one_timeout(scripted):
    """The third payload of ten is never answered: after one timeout (1 s) the batch ends
    with the first two delivered and the rest not finished (the worker retries them)."""
    sink = scripted(stall_after=2)
    t0 = time.monotonic()
    results, error, _ = _transactions(sink, _envelopes(10), timeout=1.0)
    elapsed = time.monotonic() - t0
    assert isinstance(error, SMTPClientError) and "timeout" in str(error)
    assert [r.data.code for r in results[:2]] == [250, 250]
    assert results[2:] == [None] * 8
    assert elapsed < 6.0, elapsed


def test_a_connection_dropped_mid_batch_keeps_the_results_before_it(scripted):
    sink = scripted(drop_after=4)
    results, error, _ = _transactions(sink, _envelopes(10))
    assert isinstance(error, SMTPClientError)
    assert [isinstance(r, TxResult) and r.data.code == 250 for r in results[:3]] == [True] * 3
    assert results[3:] == [None] * 7  # the one in flight and those after: not finished
    assert sink.rcpt_counts() == {f"m{i}@remote.example": 1 for i in range(3)}


def test_worker_retries_the_rest_of_a_dropped_batch_none_lost(server, scripted):
    """A VERP post to 40 members; the smarthost drops the first connection after the 7th
    payload. Every member gets the post; only the transaction in flight may come twice."""
    sink = scripted(drop_after=7)
    members = [f"m{i:02d}@remote.example" for i in range(40)]
    srv = server(delivery__smarthost=f"127.0.0.1:{sink.port}", delivery__min_backoff=1,
                 delivery__per_host_concurrency=1)
    setup_list(srv, members=members, post_policy="open")  # verp on: the default
    send(srv, STRANGER, "demo@example.org", post_text(STRANGER))
    end = time.monotonic() + 30
    while time.monotonic() < end and not set(members) <= set(sink.rcpt_counts()):
        time.sleep(0.1)
    time.sleep(1.5)  # a duplicate beyond the one in flight would show now
    counts = sink.rcpt_counts()
    got = {r: n for r, n in counts.items() if r in members}
    assert set(got) == set(members), sorted(set(members) - set(got))
    assert sum(got.values()) - len(members) <= 1, {r: n for r, n in got.items() if n > 1}
    assert sink.connections >= 2
    senders = {m for m, rcpts in sink.delivered if rcpts and rcpts[0] in members}
    assert len(senders) == len(members)  # each with its own VERP sender
