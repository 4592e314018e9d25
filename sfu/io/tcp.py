"""Passive ICE-TCP (RFC 6544): one TCP listener whose RFC 4571 frames go through the UDP demux.

A client whose network blocks UDP connects to the listener and sends exactly what it would have
sent in datagrams, each behind a 16-bit length. Every frame is handed to the UDP endpoint's own
`datagram_received` under an address of its own, `("tcp:<ip>", port)`, so sessions are found by
ufrag first and by that connection afterwards, exactly as for UDP; what a session sends to such
an address comes back here and is framed onto its connection.

Nothing a client does makes the server hold much: a frame larger than a media datagram closes
the connection, a reader that lets more than `MAX_WRITE_BUFFER` bytes pile up is dropped, and a
connection that no session uses is closed after a few seconds.

Nor can one client lock others out of the listener, which is all that users behind firewalls
blocking UDP have: one address (an IPv4 address or an IPv6 /64) may hold `per_address`
connections, and when all `max_connections` are taken a new one pushes out a connection that
no authenticated check has bound to a session yet: the oldest of the address holding the most
such. A client just connecting holds one or two, so attackers evict each other before it, and
only connections that carry sessions are safe, of which one address has few.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import socket
import time
from typing import Protocol

from sfu.config import MediaConfig
from sfu.session.transport import TCP_PREFIX, Address
from sfu.wire.framing import FrameReader, FramingError, frame

log = logging.getLogger(__name__)

# Bytes queued towards one peer: about 100 ms of a 4 Mbit/s stream. A reader slower than the
# media cannot catch up; holding more would only grow the delay and the server's memory.
MAX_WRITE_BUFFER = 64 * 1024
UNUSED_TIMEOUT = 5.0  # seconds a connection may live without a session bound to it
REFUSED_LOG_INTERVAL = 10.0  # seconds between log lines about refused or evicted connections


def tcp_address(peer: tuple) -> Address:
    """The address sessions know a connection by; IPv4-mapped peers are shown as IPv4."""
    return (TCP_PREFIX + peer[0].removeprefix("::ffff:"), peer[1])


def client_key(host: str) -> str:
    """The unit the per-address cap counts: an IPv4 address, or the /64 of an IPv6 one (a host
    usually holds a whole /64), as signaling's admission counts sessions."""
    ip = ipaddress.ip_address(host.partition("%")[0])  # a link-local peer names its interface
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


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
        max_connections: int = MediaConfig.tcp_connections,
        per_address: int = MediaConfig.tcp_per_address,
        unused_timeout: float = UNUSED_TIMEOUT,
        max_write_buffer: int = MAX_WRITE_BUFFER,
    ) -> None:
        self.demux = demux
        self.drops = demux.drops
        # Routine closes, not traffic refused or lost: counted apart so `drops` means trouble.
        self.housekeeping: collections.Counter[str] = collections.Counter()
        self.max_connections = max_connections
        self.per_address = per_address
        self.unused_timeout = unused_timeout
        self.max_write_buffer = max_write_buffer
        self.connections: dict[Address, TcpConnection] = {}
        # Those no session is bound to yet, by client address, oldest first: the ones a
        # newcomer may push out.
        self.unauthenticated: dict[str, dict[Address, TcpConnection]] = {}
        self.per_client: collections.Counter[str] = collections.Counter()
        self.frames_in = 0
        self.frames_out = 0
        self._servers: list[asyncio.AbstractServer] = []
        self._unlogged = 0  # connections refused or pushed out since the last log line
        self._log_after = 0.0

    async def open(self, host: str, port: int) -> None:
        """Listen on host:port; on the IPv4 wildcard also on [::] at the same port (IPv6 only
        there, as the UDP endpoint does), unless the host has no IPv6."""
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_server(lambda: TcpConnection(self), host, port))
        log.info("media: ICE-TCP listening on %s:%d", host, self.port)
        if host in ("", "0.0.0.0") and socket.has_ipv6:
            try:
                ipv6 = await loop.create_server(lambda: TcpConnection(self), "::", self.port)
            except OSError as exc:
                log.info("media: no IPv6 for ICE-TCP (%s); IPv4 only", exc.strerror)
            else:
                self._servers.append(ipv6)
                log.info("media: ICE-TCP listening on [::]:%d", self.port)

    async def adopt(self, sock: socket.socket) -> None:
        """Take a connection accepted elsewhere (the HTTP port, whose first bytes were an
        ICE-TCP frame), under the same limits as one accepted here."""
        loop = asyncio.get_running_loop()
        await loop.connect_accepted_socket(lambda: TcpConnection(self), sock)

    @property
    def port(self) -> int | None:
        """The port it listens on; None when it only takes connections handed to it."""
        if not self._servers:
            return None
        return self._servers[0].sockets[0].getsockname()[1]

    def close(self) -> None:
        for server in self._servers:
            server.close()
        self._servers = []
        for connection in list(self.connections.values()):
            connection.close()

    def send(self, data: bytes, addr: Address) -> None:
        """Frame one datagram onto the connection a session is bound to."""
        connection = self.connections.get(addr)
        if connection is None:
            self.drops["tcp_no_connection"] += 1
            return
        connection.send(data)

    def admit(self, connection: TcpConnection) -> bool:
        """Take a new connection if its address is under its cap and a slot is free, or held by
        a connection that never authenticated: then the oldest such of the address holding the
        most is closed to make room."""
        if self.per_client[connection.client] >= self.per_address:
            self._refused("tcp_address_limit")
            return False
        if len(self.connections) >= self.max_connections:
            if not self.unauthenticated:
                self._refused("tcp_connection_limit")
                return False
            self._refused("tcp_unauthenticated_evicted")
            most = max(self.unauthenticated.values(), key=len)
            next(iter(most.values())).close()
        self.connections[connection.addr] = connection
        self.unauthenticated.setdefault(connection.client, {})[connection.addr] = connection
        self.per_client[connection.client] += 1
        return True

    def trust(self, connection: TcpConnection) -> None:
        """A session is bound to this connection now: no newcomer may push it out."""
        waiting = self.unauthenticated.get(connection.client, {})
        waiting.pop(connection.addr, None)
        if not waiting:
            self.unauthenticated.pop(connection.client, None)

    def forget(self, connection: TcpConnection) -> None:
        """Free a closed connection's slot (once; a refused one never had one)."""
        if self.connections.get(connection.addr) is not connection:
            return
        del self.connections[connection.addr]
        self.trust(connection)  # gone from the evictable too
        self.per_client[connection.client] -= 1
        if not self.per_client[connection.client]:
            del self.per_client[connection.client]

    def _refused(self, reason: str) -> None:
        """Count a refused or pushed-out connection; log a line per interval, not per connection."""
        self.drops[reason] += 1
        self._unlogged += 1
        now = time.monotonic()
        if now >= self._log_after:
            log.info(
                "ICE-TCP: %d connection(s) refused or pushed out since the last report (%s); "
                "%d open, %d unauthenticated",
                self._unlogged,
                reason,
                len(self.connections),
                sum(map(len, self.unauthenticated.values())),
            )
            self._unlogged = 0
            self._log_after = now + REFUSED_LOG_INTERVAL


class TcpConnection(asyncio.Protocol):
    """One client's stream: frames in to the demux, frames out with a bounded queue."""

    def __init__(self, listener: TcpListener) -> None:
        self.listener = listener
        self.reader = FrameReader()
        self.addr: Address = ("", 0)
        self.client = ""  # its address's key for the per-address cap
        self.trusted = False  # a session has been bound to it
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        peer = transport.get_extra_info("peername")
        self.addr = tcp_address(peer)
        self.client = client_key(peer[0])
        if not self.listener.admit(self):
            self.close()
            return
        self._arm()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.listener.unused_timeout, self._check_used)

    def _check_used(self) -> None:
        """Close a connection no session uses: never authenticated, or its session is gone."""
        if self.listener.demux.bound(self.addr):
            self._arm()
            return
        self.listener.housekeeping["tcp_unused_closed"] += 1
        self.close()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except FramingError:
            self.listener.drops["tcp_bad_frame"] += 1
            self.close()
            return
        now = time.monotonic()
        listener = self.listener
        demux = listener.demux
        listener.frames_in += len(frames)
        for datagram in frames:
            if self.transport is None:  # closed by what an earlier frame caused
                return
            try:
                demux.datagram_received(datagram, self.addr, now)
            except Exception:
                # A bug must cost one packet, not the connection or other sessions.
                listener.drops["handler_error"] += 1
                if listener.drops["handler_error"] == 1:
                    log.exception("error handling a frame from %s:%d; dropping it", *self.addr)
        if not self.trusted and demux.bound(self.addr):  # an authenticated check bound it
            self.trusted = True
            listener.trust(self)

    def send(self, data: bytes) -> None:
        """Queue one frame; a peer that does not read fast enough is dropped, not waited for."""
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size() + len(data) > self.listener.max_write_buffer:
            self.listener.drops["tcp_slow_reader"] += 1
            log.info("ICE-TCP %s:%d reads too slowly; closing it", *self.addr)
            self.close()
            return
        transport.write(frame(data))
        self.listener.frames_out += 1

    def close(self) -> None:
        """Abort, and free the slot now: connection_lost comes only on a later loop turn."""
        transport, self.transport = self.transport, None
        if transport is not None:
            self.listener.forget(self)
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.listener.forget(self)
        self.transport = None
