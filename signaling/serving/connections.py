"""TCP connections to the HTTP server: a cap per client address and a deadline for headers.

aiohttp has no timeout for a request's headers, so a client that opens connections and sends
a byte now and then (slowloris) holds each one for minutes. Every connection here is wrapped:
its headers must be complete within `header_timeout` of its opening, and one address may hold
at most `max_per_ip` at a time. Between requests on a kept-alive connection, aiohttp's own
keep-alive timeout (set to the same value) closes idle or stalled connections.

A connection past the cap is not reset: aiohttp never sees it, but its request's headers are
read (within the same deadline) and answered with a 429, a one-line reason and Retry-After,
then it is closed; many viewers behind one NAT then learn why. Only ANSWERING_PER_IP such
answers per address are under way at once; past that, connections are reset at once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from signaling.serving.refusal_log import RefusalLog

log = logging.getLogger(__name__)

END_OF_HEADERS = b"\r\n\r\n"
ANSWERING_PER_IP = 8  # connections past the cap being answered a 429 at once, per address
MAX_REFUSED_HEADERS = 16 * 1024  # bytes read of a refused connection's request
LINGER = 1.0  # seconds a refused connection is kept, after its answer, for the client to read it
CAP_RETRY_AFTER = 2  # seconds a client past the cap is asked to wait


@dataclass
class ConnectionGuard:
    """Limits for every connection, and counters of what they cut off."""

    header_timeout: float = 5.0  # seconds from connecting until the headers are complete
    max_per_ip: int = 64  # open connections per client address; 0 means no cap

    def __post_init__(self) -> None:
        self.open: collections.Counter[str] = collections.Counter()
        self.answering: collections.Counter[str] = collections.Counter()  # 429s under way
        self.refused = 0  # connections past the cap
        self.answered = 0  # of those, the ones answered a 429 (the others were reset)
        self.header_timeouts = 0
        self.refusals = RefusalLog(log, "HTTP connections")
        self.timeouts = RefusalLog(log, "HTTP connections without headers in time")

    def stats(self) -> dict[str, int]:
        return {
            "open": sum(self.open.values()),
            "refused": self.refused,
            "refused_answered": self.answered,
            "header_timeouts": self.header_timeouts,
        }


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the guard's cap and header deadline."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self.inner = inner
        self.guard = guard
        self.address: str | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.tail = b""  # the last bytes seen while waiting for the end of the headers
        self.refusal: TooMany | None = None  # past the cap: answered a 429 instead

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        guard = self.guard
        if guard.max_per_ip and guard.open[address] >= guard.max_per_ip:
            guard.refused += 1
            reason = f"{address} holds {guard.max_per_ip} HTTP connections, the limit"
            guard.refusals.note(reason)
            if guard.answering[address] >= ANSWERING_PER_IP:
                transport.abort()
                return
            self.refusal = TooMany(self.transport, guard, address, reason)
            return
        self.address = address
        guard.open[address] += 1
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(guard.header_timeout, self._headers_late)
        self.inner.connection_made(transport)

    def _headers_late(self) -> None:
        self.timer = None
        self.guard.header_timeouts += 1
        self.guard.timeouts.note(
            f"{self.address}: headers not complete in {self.guard.header_timeout:g} s; closed"
        )
        assert self.transport is not None
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.refusal is not None:
            self.refusal.data_received(data)
            return
        if self.timer is not None:
            seen = self.tail + data
            if END_OF_HEADERS in seen:
                self.timer.cancel()
                self.timer = None
                self.tail = b""
            else:
                self.tail = seen[-(len(END_OF_HEADERS) - 1) :]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.refusal is not None:
            return False  # the client is done: close
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.refusal is not None:
            self.refusal.connection_lost()
        if self.address is None:
            return  # refused: aiohttp never saw it
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.guard.open[self.address] -= 1
        if self.guard.open[self.address] <= 0:
            del self.guard.open[self.address]
        self.address = None
        self.inner.connection_lost(exc)


class TooMany:
    """A connection past the cap: read its request's headers, answer 429, close.

    Bounded like any connection: the header deadline, MAX_REFUSED_HEADERS bytes, then LINGER
    seconds for the client to read the answer (a body it sends meanwhile is dropped)."""

    def __init__(
        self, transport: asyncio.Transport, guard: ConnectionGuard, address: str, reason: str
    ) -> None:
        self.transport = transport
        self.guard = guard
        self.address = address
        self.reason = reason
        self.seen = b""
        self.answered = False
        guard.answering[address] += 1
        loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = loop.call_later(
            guard.header_timeout, transport.abort
        )

    def data_received(self, data: bytes) -> None:
        if self.answered:
            return
        self.seen = (self.seen + data)[-MAX_REFUSED_HEADERS:]
        if END_OF_HEADERS in self.seen:
            self.answer()
        elif len(self.seen) >= MAX_REFUSED_HEADERS:
            self.transport.abort()

    def answer(self) -> None:
        self.answered = True
        self.guard.answered += 1
        body = (self.reason + "\n").encode()
        head = (
            "HTTP/1.1 429 Too Many Requests\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Retry-After: {CAP_RETRY_AFTER}\r\n"
            "Access-Control-Allow-Origin: *\r\n"
            "Access-Control-Expose-Headers: Retry-After\r\n"
            "Connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(LINGER, self.transport.close)

    def connection_lost(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.guard.answering[self.address] -= 1
        if self.guard.answering[self.address] <= 0:
            del self.guard.answering[self.address]


def guarded(runner: web.AppRunner, guard: ConnectionGuard) -> Callable[[], asyncio.Protocol]:
    """What makes the protocol of each new connection: a set-up runner's, behind `guard`."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    return lambda: GuardedProtocol(server(), guard)


async def listen(
    runner: web.AppRunner,
    host: str,
    port: int,
    guard: ConnectionGuard,
    tls: ssl.SSLContext | None = None,
) -> asyncio.AbstractServer:
    """Serve a set-up runner's app on host:port (HTTPS with `tls`) with every connection
    behind `guard`; the TLS handshake counts towards the header deadline."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        guarded(runner, guard),
        host,
        port,
        reuse_address=True,
        backlog=1024,
        ssl=tls,
    )
