"""One TCP port for the HTTP(S) API and ICE-TCP, told apart by each connection's first bytes.

Networks that allow only HTTPS out (offices, hotels) block UDP and every TCP port but 443. A
server whose HTTPS port also takes ICE-TCP is reached there with no TURN server: a connection
whose first bytes are an RFC 4571 frame holding a STUN Binding request goes to the media
plane's ICE-TCP listener (with its limits); anything else is HTTP or TLS, as before.

The bytes are peeked (MSG_PEEK) before any protocol reads them, so TLS still sees its whole
ClientHello. Telling apart costs one read for HTTP and TLS, whose first byte decides; a peer
that sends a partial frame header is looked at again every SNIFF_RETRY until SNIFF_TIMEOUT,
and at most MAX_UNDECIDED connections wait so at once: past that, a new one is closed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

from sfu.io.tcp import TcpListener
from sfu.wire.framing import SNIFF_BYTES, starts_ice_tcp

log = logging.getLogger(__name__)

SNIFF_TIMEOUT = 5.0  # seconds a connection may take to send enough bytes to be told apart
SNIFF_RETRY = 0.02  # seconds between looks at a connection that sent too few bytes
MAX_UNDECIDED = 256  # connections being told apart at once
ACCEPT_BATCH = 64  # connections accepted per readiness callback
BACKLOG = 1024


class SharedPort:
    """The listening sockets of one port, handing each connection to HTTP(S) or to ICE-TCP."""

    def __init__(
        self,
        http: Callable[[], asyncio.Protocol],
        media: TcpListener,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.http = http
        self.media = media
        self.tls = tls
        self.counts: collections.Counter[str] = collections.Counter()  # handed on, by verdict
        self.drops = media.drops  # what was closed before it was told apart, with the media's
        self._listening: list[socket.socket] = []
        self._undecided: dict[socket.socket, float] = {}  # by socket: when it was accepted
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self._listening)

    async def open(self, host: str, port: int) -> None:
        """Listen on host:port; a wildcard listens on IPv4 and IPv6 (each on its own)."""
        self._loop = asyncio.get_running_loop()
        infos = await self._loop.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(BACKLOG)
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
            self._listening.append(sock)
            self._loop.add_reader(sock.fileno(), self._accept, sock)
        log.info("HTTP port %d also takes ICE-TCP", port)

    def close(self) -> None:
        assert self._loop is not None
        for sock in (*self._listening, *self._undecided):
            self._loop.remove_reader(sock.fileno())
            sock.close()
        self._listening = []
        self._undecided.clear()

    def _accept(self, listening: socket.socket) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _peer = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.drops["shared_port_accept_error"] += 1
                return
            if len(self._undecided) >= MAX_UNDECIDED:
                self.drops["shared_port_undecided_limit"] += 1
                sock.close()
                continue
            sock.setblocking(False)
            assert self._loop is not None
            self._undecided[sock] = self._loop.time()
            self._loop.add_reader(sock.fileno(), self._look, sock)

    def _look(self, sock: socket.socket) -> None:
        """Peek at what the connection sent; hand it on once that tells, else look again."""
        loop = self._loop
        assert loop is not None
        loop.remove_reader(sock.fileno())
        try:
            prefix = sock.recv(SNIFF_BYTES, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            loop.add_reader(sock.fileno(), self._look, sock)
            return
        except OSError:
            prefix = b""
        verdict = starts_ice_tcp(prefix) if prefix else None
        if verdict is None:
            if not prefix or loop.time() - self._undecided[sock] > SNIFF_TIMEOUT:
                self.drops["shared_port_undecided_closed"] += 1  # gone, or too slow to tell
                del self._undecided[sock]
                sock.close()
                return
            loop.call_later(SNIFF_RETRY, self._look_again, sock)  # peeking never drains it
            return
        del self._undecided[sock]
        self.counts["ice_tcp" if verdict else "http"] += 1
        if verdict:
            handing = self.media.adopt(sock)
        else:
            handing = loop.connect_accepted_socket(self.http, sock, ssl=self.tls)
        task = loop.create_task(self._hand(handing, sock))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _look_again(self, sock: socket.socket) -> None:
        if sock in self._undecided:
            self._look(sock)

    async def _hand(self, handing: Awaitable[object], sock: socket.socket) -> None:
        try:
            await handing
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as exc:
            self.drops["shared_port_handover_error"] += 1
            log.debug("a connection on the shared port ended early: %s", exc)
            sock.close()
