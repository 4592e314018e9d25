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
from sfu.session import Address, SessionTable, is_tcp
from sfu.tcp import TcpListener

log = logging.getLogger(__name__)

# Datagrams read per readiness callback before yielding to other work (HTTP, timers).
READ_BATCH = 256
MAX_DATAGRAM = 2048


class UdpEndpoint:
    """Owns the socket and the demux; every decision past the first byte belongs to sessions."""

    def __init__(self, sessions: SessionTable) -> None:
        self.sessions = sessions
        self.sock: socket.socket | None = None
        self.drops: collections.Counter[str] = sessions.drops
        self.error_replies = ice.ErrorReplyLimiter()
        self.datagrams_in = 0
        self.datagrams_out = 0
        self.tcp: TcpListener | None = None  # ICE-TCP, whose frames come through this demux
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

    def bound(self, addr: Address) -> bool:
        """Whether a session's media goes to `addr` (the TCP listener keeps such connections)."""
        return addr in self.sessions.by_addr

    def send(self, data: bytes, addr: Address) -> None:
        """Send one datagram; a full socket buffer drops it (counted), never blocks."""
        if is_tcp(addr):
            if self.tcp is None:
                self.drops["tcp_no_connection"] += 1
            else:
                self.tcp.send(data, addr)
            return
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
        """Requests are answered only for a known session, errors only at a bounded rate, so
        nobody can use us to reflect traffic at a third party."""
        try:
            msg = stun.parse(data)
        except stun.StunError:
            self.drops["stun_malformed"] += 1
            return
        if msg.msg_type in (stun.BINDING_SUCCESS, stun.BINDING_ERROR):
            self._check_response(data, msg, addr, now)
            return
        if msg.msg_type != stun.BINDING_REQUEST:
            self.drops["stun_not_request"] += 1
            return
        if not stun.verify_fingerprint(data, msg):
            self.drops["stun_bad_fingerprint"] += 1
            return
        names = ice.split_username(msg)
        if names is None:
            self.drops["stun_no_username"] += 1
            return
        session = self.sessions.by_ufrag.get(names[0])
        if session is None:
            self.drops["stun_unknown_username"] += 1
            return
        owner = self.sessions.by_addr.get(addr)
        taken = owner is not None and owner is not session
        outcome = session.handle_binding(data, msg, addr, now, taken)
        if outcome.response is None:
            self.drops["stun_ignored"] += 1  # the session has just closed
            return
        if outcome.error_code is not None:
            # Every rejection is counted by its code (400, 401, 487), answered or not.
            self.drops[f"stun_rejected_{outcome.error_code}"] += 1
            if not self.error_replies.allow(addr[0], now):
                self.drops["stun_error_rate_limited"] += 1
                return
        self.send(outcome.response, addr)

    def _check_response(self, data: bytes, msg: stun.Message, addr: Address, now: float) -> None:
        tag = msg.transaction_id[: ice.CHECK_TAG_BYTES]
        session = self.sessions.by_check_tag.get(tag)
        if session is None:
            self.drops["stun_unexpected_response"] += 1
            return
        if not session.handle_binding_response(data, msg, addr, now):
            self.drops["stun_unverified_response"] += 1
