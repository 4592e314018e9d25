"""Passive ICE-TCP (RFC 6544): one TCP listener whose RFC 4571 frames go through the UDP demux.

A client whose network blocks UDP connects to the listener and sends exactly what it would have
sent in datagrams, each behind a 16-bit length. Every frame is handed to the UDP endpoint's own
`datagram_received` under an address of its own, `("tcp:<ip>", port)`, so sessions are found by
ufrag first and by that connection afterwards, exactly as for UDP; what a session sends to such
an address comes back here and is framed onto its connection.

Nothing a client does makes the server hold much: a frame larger than a media datagram closes
the connection, a reader that lets more than `MAX_WRITE_BUFFER` bytes pile up is dropped, the
connection count is capped, and a connection that no session uses is closed after a few seconds.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Protocol

from sfu.session.transport import TCP_PREFIX, Address
from sfu.wire.framing import FrameReader, FramingError, frame

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 256
# Bytes queued towards one peer: about 100 ms of a 4 Mbit/s stream. A reader slower than the
# media cannot catch up; holding more would only grow the delay and the server's memory.
MAX_WRITE_BUFFER = 64 * 1024
UNUSED_TIMEOUT = 5.0  # seconds a connection may live without a session bound to it


def tcp_address(peer: tuple) -> Address:
    """The address sessions know a connection by; IPv4-mapped peers are shown as IPv4."""
    return (TCP_PREFIX + peer[0].removeprefix("::ffff:"), peer[1])


class Demux(Protocol):
    """What the listener feeds: the UDP endpoint (its demux, session table and drop counter)."""

    drops: collections.Counter[str]

    def datagram_received(self, data: bytes, addr: Address, now: float) -> None: ...
    def bound(self, addr: Address) -> bool: ...


class TcpListener:
    """The listening socket and its connections, by the address sessions know them by."""

    def __init__(
        self,
        demux: Demux,
        max_connections: int = MAX_CONNECTIONS,
        unused_timeout: float = UNUSED_TIMEOUT,
        max_write_buffer: int = MAX_WRITE_BUFFER,
    ) -> None:
        self.demux = demux
        self.drops = demux.drops
        self.max_connections = max_connections
        self.unused_timeout = unused_timeout
        self.max_write_buffer = max_write_buffer
        self.connections: dict[Address, TcpConnection] = {}
        self.frames_in = 0
        self.frames_out = 0
        self._server: asyncio.AbstractServer | None = None

    async def open(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: TcpConnection(self), host, port)
        log.info("media: ICE-TCP listening on %s:%d", host, self.port)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self.connections.values()):
            connection.close()

    def send(self, data: bytes, addr: Address) -> None:
        """Frame one datagram onto the connection a session is bound to."""
        connection = self.connections.get(addr)
        if connection is None:
            self.drops["tcp_no_connection"] += 1
            return
        connection.send(data)


class TcpConnection(asyncio.Protocol):
    """One client's stream: frames in to the demux, frames out with a bounded queue."""

    def __init__(self, listener: TcpListener) -> None:
        self.listener = listener
        self.reader = FrameReader()
        self.addr: Address | None = None
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        listener = self.listener
        if len(listener.connections) >= listener.max_connections:
            listener.drops["tcp_connection_limit"] += 1
            transport.abort()  # type: ignore[attr-defined]
            return
        self.addr = tcp_address(transport.get_extra_info("peername"))
        listener.connections[self.addr] = self
        self._arm()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.listener.unused_timeout, self._check_used)

    def _check_used(self) -> None:
        """Close a connection no session uses: never authenticated, or its session is gone."""
        if self.addr is not None and self.listener.demux.bound(self.addr):
            self._arm()
            return
        self.listener.drops["tcp_unused_closed"] += 1
        self.close()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except FramingError:
            self.listener.drops["tcp_bad_frame"] += 1
            self.close()
            return
        now = time.monotonic()
        demux = self.listener.demux
        self.listener.frames_in += len(frames)
        for datagram in frames:
            if self.transport is None:  # closed by what an earlier frame caused
                return
            try:
                demux.datagram_received(datagram, self.addr, now)  # type: ignore[arg-type]
            except Exception:
                # A bug must cost one packet, not the connection or other sessions.
                self.listener.drops["handler_error"] += 1
                if self.listener.drops["handler_error"] == 1:
                    log.exception("error handling a frame from %s:%d; dropping it", *self.addr)

    def send(self, data: bytes) -> None:
        """Queue one frame; a peer that does not read fast enough is dropped, not waited for."""
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size() + len(data) > self.listener.max_write_buffer:
            self.listener.drops["tcp_slow_reader"] += 1
            log.info("ICE-TCP %s:%d reads too slowly; closing it", *self.addr)  # type: ignore[misc]
            self.close()
            return
        transport.write(frame(data))
        self.listener.frames_out += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.addr is not None and self.listener.connections.get(self.addr) is self:
            del self.listener.connections[self.addr]
        self.transport = None
