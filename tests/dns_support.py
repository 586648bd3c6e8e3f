"""A real DNS server on 127.0.0.1 (UDP, port 0) answering from a small zone, for MX tests.

zone = {"good.test": {"MX": ["10 mx.good.test."]}, "mx.good.test": {"A": ["127.0.0.1"]}}
Names not in the zone get NXDOMAIN; a known name without the asked type gets an empty
NOERROR answer (NODATA).
"""

from __future__ import annotations

import asyncio
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: "DNSServer"):
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        self.transport.sendto(self.server.answer(query).to_wire(), addr)


class DNSServer:
    def __init__(self, zone: dict[str, dict[str, list[str]]], ttl: int = 60):
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        self.ttl = ttl
        self.queries: list[tuple[str, str]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._transport = None

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        resp = dns.message.make_response(query)
        resp.flags |= dns.flags.AA
        q = query.question[0]
        name = q.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(q.rdtype)
        self.queries.append((name, rdtype))
        records = self.zone.get(name)
        if records is None:
            resp.set_rcode(dns.rcode.NXDOMAIN)
            return resp
        values = records.get(rdtype, [])
        if values:
            resp.answer.append(dns.rrset.from_text_list(q.name, self.ttl, dns.rdataclass.IN,
                                                        q.rdtype, values))
        return resp

    def start(self) -> None:
        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            transport, _ = self._loop.run_until_complete(self._loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=("127.0.0.1", 0)))
            self._transport = transport
            self.port = transport.get_extra_info("sockname")[1]
            ready.set()
            self._loop.run_forever()
            transport.close()
            self._loop.close()

        self._thread = threading.Thread(target=main, daemon=True, name="test-dns")
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"
