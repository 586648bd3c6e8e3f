"""A hostile SMTP server for tests and bench/abuse.py: it never ends a multiline reply."""

from __future__ import annotations

import asyncio
import threading


class EndlessReplyServer:
    """On 127.0.0.1:<port>: greets, then answers EHLO (or the greeting itself, with
    `at_greeting`) with `250-` lines for ever, as fast as the client reads them."""

    def __init__(self, *, at_greeting: bool = False):
        self.at_greeting = at_greeting
        self.port = 0
        self.connections = 0
        self.bytes_sent = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True, name="endless-reply")

    async def _client(self, reader, writer):
        self.connections += 1
        line = b"250-" + b"x" * 70 + b"\r\n"
        try:
            if self.at_greeting:
                writer.write(b"220-hostile.example ESMTP\r\n")
                prefix = b"220-"
            else:
                writer.write(b"220 hostile.example ESMTP\r\n")
                await reader.readline()
                prefix = b"250-"
            chunk = (prefix + line[4:]) * 100
            while True:
                writer.write(chunk)
                self.bytes_sent += len(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def _main(self):
        self._loop = asyncio.new_event_loop()

        async def start():
            self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()

    def start(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self):
        if self._loop is None:
            return

        async def close():
            self._server.close()
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.cancel()
        fut = asyncio.run_coroutine_threadsafe(close(), self._loop)
        try:
            fut.result(10)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
