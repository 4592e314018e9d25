"""The single UDP socket: read until empty, demux by first byte, find the session, send.

asyncio's selector datagram transport costs several times more per packet than reading the
socket directly from a reader callback, so the endpoint owns a plain non-blocking socket.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import time

from sfu import ice, stun
from sfu.demux import DTLS, SRTP, STUN, classify
from sfu.session import Address, SessionTable

log = logging.getLogger(__name__)

# Datagrams read per readiness callback before yielding to other work (HTTP, timers).
READ_BATCH = 256
MAX_DATAGRAM = 2048


class UdpEndpoint:
    """Owns the socket and the demux; every decision past the first byte belongs to sessions."""

    def __init__(self, sessions: SessionTable) -> None:
        self.sessions = sessions
        self.sock: socket.socket | None = None
        self.drops: collections.Counter[str] = collections.Counter()
        self.datagrams_in = 0
        self.datagrams_out = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, host: str, port: int, buffer_size: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, buffer_size)
            except OSError:
                log.warning("could not set UDP socket buffer to %d bytes", buffer_size)
        sock.bind((host, port))
        sock.setblocking(False)
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)
        log.info("media: UDP listening on %s:%d", host, sock.getsockname()[1])

    def close(self) -> None:
        if self.sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    @property
    def port(self) -> int:
        assert self.sock is not None
        return self.sock.getsockname()[1]

    def send(self, data: bytes, addr: Address) -> None:
        """Send one datagram; a full socket buffer drops it (counted), never blocks."""
        try:
            self.sock.sendto(data, addr)  # type: ignore[union-attr]
            self.datagrams_out += 1
        except (BlockingIOError, InterruptedError):
            self.drops["send_buffer_full"] += 1
        except OSError:
            self.drops["send_error"] += 1

    def _on_readable(self) -> None:
        recvfrom = self.sock.recvfrom  # type: ignore[union-attr]
        now = time.monotonic()
        for _ in range(READ_BATCH):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # ICMP errors of earlier sends surface here on Linux; nothing to read.
                self.drops["recv_error"] += 1
                return
            try:
                self.datagram_received(data, addr, now)
            except Exception:
                # A bug must cost one packet, not the socket reader or other sessions.
                self.drops["handler_error"] += 1
                if self.drops["handler_error"] == 1:
                    log.exception("error handling a datagram from %s; dropping it", addr)

    def datagram_received(self, data: bytes, addr: Address, now: float) -> None:
        """Demux one datagram (RFC 7983). Only an authenticated STUN request creates a binding."""
        self.datagrams_in += 1
        kind = classify(data)
        if kind is SRTP:
            session = self.sessions.by_addr.get(addr)
            if session is None:
                self.drops["media_unknown_address"] += 1
                return
            session.handle_srtp(data, now)
        elif kind is STUN:
            self._stun(data, addr, now)
        elif kind is DTLS:
            session = self.sessions.by_addr.get(addr)
            if session is None:
                self.drops["dtls_unknown_address"] += 1
                return
            session.handle_dtls(data, now)
        else:
            self.drops["unclassified"] += 1

    def _stun(self, data: bytes, addr: Address, now: float) -> None:
        try:
            msg = stun.parse(data)
        except stun.StunError:
            self.drops["stun_malformed"] += 1
            return
        if msg.msg_type != stun.BINDING_REQUEST:
            self.drops["stun_not_request"] += 1
            return
        names = ice.split_username(msg)
        if names is None:
            self.drops["stun_no_username"] += 1
            self.send(ice.error_response(msg, 400, "Bad Request"), addr)
            return
        session = self.sessions.by_ufrag.get(names[0])
        if session is None:
            self.drops["stun_unknown_username"] += 1
            self.send(ice.error_response(msg, 401, "Unauthorized"), addr)
            return
        session.handle_binding(data, msg, addr, now)
