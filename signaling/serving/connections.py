"""TCP connections to the HTTP server: a cap per client address and a deadline for headers.

aiohttp has no timeout for a request's headers, so a client that opens connections and sends
a byte now and then (slowloris) holds each one for minutes. Every connection here is wrapped:
its headers must be complete within `header_timeout` of its opening, and one address may hold
at most `max_per_ip` at a time. Between requests on a kept-alive connection, aiohttp's own
keep-alive timeout (set to the same value) closes idle or stalled connections.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger(__name__)

END_OF_HEADERS = b"\r\n\r\n"


@dataclass
class ConnectionGuard:
    """Limits for every connection, and counters of what they cut off."""

    header_timeout: float = 5.0  # seconds from connecting until the headers are complete
    max_per_ip: int = 64  # open connections per client address; 0 means no cap

    def __post_init__(self) -> None:
        self.open: collections.Counter[str] = collections.Counter()
        self.refused = 0
        self.header_timeouts = 0

    def stats(self) -> dict[str, int]:
        return {
            "open": sum(self.open.values()),
            "refused": self.refused,
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

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        guard = self.guard
        if guard.max_per_ip and guard.open[address] >= guard.max_per_ip:
            guard.refused += 1
            if guard.refused in (1, 100) or guard.refused % 10000 == 0:
                log.info(
                    "%s holds %d connections, the limit; refused %d so far",
                    address,
                    guard.max_per_ip,
                    guard.refused,
                )
            transport.abort()
            return
        self.address = address
        guard.open[address] += 1
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(guard.header_timeout, self._headers_late)
        self.inner.connection_made(transport)

    def _headers_late(self) -> None:
        self.timer = None
        self.guard.header_timeouts += 1
        log.info(
            "%s: headers not complete in %g s; closed", self.address, self.guard.header_timeout
        )
        assert self.transport is not None
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
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
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
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


async def listen(
    runner: web.AppRunner,
    host: str,
    port: int,
    guard: ConnectionGuard,
    tls: ssl.SSLContext | None = None,
) -> asyncio.AbstractServer:
    """Serve a set-up runner's app on host:port (HTTPS with `tls`) with every connection
    behind `guard`; the TLS handshake counts towards the header deadline."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: GuardedProtocol(server(), guard),
        host,
        port,
        reuse_address=True,
        backlog=1024,
        ssl=tls,
    )
