"""The media port: read until empty, demux by first byte, find the session, send.

asyncio's selector datagram transport costs several times more per packet than reading the
socket directly from a reader callback, so the endpoint owns a plain non-blocking socket.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import sys
import time

from sfu.io.tcp import TcpListener
from sfu.protocol import ice
from sfu.protocol.reflexive import ReflexiveDiscovery
from sfu.session.table import SessionTable
from sfu.session.transport import Address, SendFunction, is_tcp
from sfu.wire import stun
from sfu.wire.demux import DTLS, SRTP, STUN, classify

log = logging.getLogger(__name__)

# Datagrams read per readiness callback before yielding to other work (HTTP, timers).
READ_BATCH = 256
MAX_DATAGRAM = 2048
# IPv4 datagrams leave with Don't Fragment set and the path's learned MTU ignored (Linux's
# IP_MTU_DISCOVER = IP_PMTUDISC_PROBE, <linux/in.h>; Python names neither). WebRTC sizes its
# packets to fit (about 1200 bytes), a fragment seldom gets through a NAT anyway, and an
# atomic datagram needs no unique IP ID (RFC 6864 §4.1), so the kernel skips hashing one for
# each of the fan-out's sends (__ip_select_ident: 3% of a server profile at 400 players).
IP_MTU_DISCOVER, IP_PMTUDISC_PROBE = 10, 3


class UdpEndpoint:
    """Owns the socket and the demux; every decision past the first byte belongs to sessions."""

    def __init__(self, sessions: SessionTable) -> None:
        self.sessions = sessions
        self.sock: socket.socket | None = None
        self.sock6: socket.socket | None = None  # IPv6 beside an IPv4 wildcard socket
        self.drops: collections.Counter[str] = sessions.drops
        self.error_replies = ice.ErrorReplyLimiter()
        self.datagrams_in = 0
        self.control_datagrams_out = 0  # what `send` sent: STUN, DTLS, RTCP
        self.tcp: TcpListener | None = None  # ICE-TCP, whose frames come through this demux
        self.discovery: ReflexiveDiscovery | None = None  # asks STUN servers who we are
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self, host: str, port: int, buffer_size: int) -> None:
        """Bind the media port. On the wildcard address IPv6 gets a socket of its own on the
        same port (IPV6_V6ONLY, so IPv4 addresses stay plain tuples); where the host has no
        IPv6, media is IPv4 only."""
        self._loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = self._bind(family, host, port, buffer_size)
        port = self.sock.getsockname()[1]
        log.info("media: UDP listening on %s:%d", host, port)
        if host in ("", "0.0.0.0") and socket.has_ipv6:
            try:
                self.sock6 = self._bind(socket.AF_INET6, "::", port, buffer_size)
            except OSError as exc:
                log.info("media: no IPv6 (%s); IPv4 only", exc.strerror)
            else:
                log.info("media: UDP listening on [::]:%d", port)

    def _bind(self, family: int, host: str, port: int, buffer_size: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            elif sys.platform == "linux":
                sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, buffer_size)
                except OSError:
                    log.warning("could not set UDP socket buffer to %d bytes", buffer_size)
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._on_readable, sock, family == socket.AF_INET6)
        return sock

    @property
    def ipv6(self) -> bool:
        """Whether the media port takes IPv6 (for the candidates to advertise)."""
        return self.sock6 is not None or (
            self.sock is not None and self.sock.family == socket.AF_INET6
        )

    def sendto_for(self, addr: Address | None) -> SendFunction:
        """What sends to `addr`: the socket of its family's own sendto (the compiled fan-out
        sends on that socket's descriptor), or for an ICE-TCP peer `send`, which frames it."""
        if addr is None or is_tcp(addr):
            return self.send
        sock = self.sock6 if self.sock6 is not None and ":" in addr[0] else self.sock
        return sock.sendto if sock is not None else self.send

    def close(self) -> None:
        for sock in (self.sock, self.sock6):
            if sock is not None:
                if self._loop is not None:
                    self._loop.remove_reader(sock.fileno())
                sock.close()
        self.sock = self.sock6 = None

    @property
    def port(self) -> int:
        assert self.sock is not None
        return self.sock.getsockname()[1]

    def bound(self, addr: Address) -> bool:
        """Whether a session's media goes to `addr`, or could (a validated pair it may fall back
        to): the TCP listener keeps such connections."""
        return addr in self.sessions.by_addr or addr in self.sessions.by_pair

    @property
    def media_datagrams_out(self) -> int:
        """Forwarded RTP and RTX, which the tracks send on the socket (or its descriptor)."""
        return self.sessions.media_datagrams_out

    @property
    def datagrams_out(self) -> int:
        """Every datagram sent: control traffic and forwarded media."""
        return self.control_datagrams_out + self.sessions.media_datagrams_out

    def send(self, data: bytes, addr: Address) -> None:
        """Send one datagram; a full socket buffer drops it (counted), never blocks."""
        if is_tcp(addr):
            if self.tcp is None:
                self.drops["tcp_no_connection"] += 1
            else:
                self.tcp.send(data, addr)
            return
        try:
            self.sendto_for(addr)(data, addr)
            self.control_datagrams_out += 1
        except (BlockingIOError, InterruptedError):
            self.drops["send_buffer_full"] += 1
        except OSError:
            self.drops["send_error"] += 1

    def _on_readable(self, sock: socket.socket, ipv6: bool) -> None:
        """`ipv6` is given, not read: socket.family makes an enum member on every read."""
        recvfrom = sock.recvfrom
        now = time.monotonic()
        for _ in range(READ_BATCH):
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
                if ipv6:
                    addr = addr[:2]  # (host, port): flow info and scope play no part
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
            if session is not None:
                session.handle_srtp(data, now)
                return
            paired = self.sessions.by_pair.get(addr)
            if paired is None:
                self.drops["media_unknown_address"] += 1
                return
            paired.handle_pair_srtp(data, addr, now)
            self.sessions.settle(paired)
        elif kind is STUN:
            self._stun(data, addr, now)
        elif kind is DTLS:
            session = self.sessions.by_addr.get(addr) or self.sessions.by_pair.get(addr)
            if session is None:
                self.drops["dtls_unknown_address"] += 1
                return
            session.handle_dtls(data, now)
            self.sessions.settle(session)
        else:
            self.drops["unclassified"] += 1

    def _stun(self, data: bytes, addr: Address, now: float) -> None:
        """Requests are answered only for a known session, errors only at a bounded rate, so
        nobody can use us to reflect traffic at a third party."""
        try:
            msg = stun.parse(data)
        except stun.StunTooLarge:
            self.drops["stun_too_large"] += 1
            return
        except stun.StunError:
            self.drops["stun_malformed"] += 1
            return
        if msg.msg_type in (stun.BINDING_SUCCESS, stun.BINDING_ERROR):
            discovery = self.discovery
            if discovery is not None and discovery.owns(msg.transaction_id):
                if not discovery.handle(msg, addr, now):
                    self.drops["stun_server_bad_answer"] += 1
                return
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
        self.sessions.settle(session)
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
            return
        self.sessions.settle(session)
