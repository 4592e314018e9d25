"""RTP relays between media processes: a stream live on one process played on another.

The origin sends the stream through a Player whose session is a PlainSession; the edge feeds
what arrives on a socket of its own to a Publisher whose session is a PlainSession too. The
router's Player and Publisher run unchanged at both ends, so rewriting, keyframe starts, PLI,
NACK and reports cross the hop as they do for real peers; ICE and DTLS are left out. Between the
workers of one server on 127.0.0.1 the packets stay plain; between cluster nodes they are SRTP
under keys made for that one relay (relay_keys) and handed over the cluster's sealed control
channel, so nothing on the network between nodes can read or inject media.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import secrets
import socket
import time
from typing import cast

import pylibsrtp

from sfu.config import MediaConfig
from sfu.media import PeerParams, TrackSpec
from sfu.protocol import fastpath, ice
from sfu.protocol.dtls import SrtpKeys
from sfu.protocol.srtp import SrtpContext
from sfu.routing.router import PLAY, PUBLISH, Router
from sfu.session.transport import (
    Address,
    MediaHandler,
    SendFunction,
    SessionClosed,
    SessionEvent,
    SessionState,
    short_hash,
)

log = logging.getLogger(__name__)

READ_BATCH = 256  # datagrams read per readiness callback
MAX_DATAGRAM = 2048
RTP_HEADER = 12
RTCP_HEADER = 8
RELAY_PROFILE = pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
RELAY_KEY_BYTES = 28  # AES-128 master key and the 12-byte GCM salt


def relay_host(udp_host: str) -> str:
    """The address relays use: the media host itself, or loopback when it binds every address."""
    return "127.0.0.1" if udp_host in ("", "0.0.0.0") else udp_host


class _Plaintext:
    """Stands where SRTP would: the tracks call protect_*, which here leaves packets as they are."""

    @staticmethod
    def protect_rtp(packet: bytes | bytearray) -> bytes | bytearray:
        return packet

    @staticmethod
    def protect_rtcp(packet: bytes) -> bytes:
        return packet


def relay_keys() -> SrtpKeys:
    """Fresh keys for one relay, as its edge end holds them; the origin gets them mirrored."""
    return SrtpKeys(
        RELAY_PROFILE, secrets.token_bytes(RELAY_KEY_BYTES), secrets.token_bytes(RELAY_KEY_BYTES)
    )


def mirrored(keys: SrtpKeys) -> SrtpKeys:
    """The other end's view of `keys`: what one end protects with, the other unprotects with."""
    return SrtpKeys(keys.profile, keys.remote_key, keys.local_key)


class _RelayKeys:
    """Stands where a DTLS transport would: the fast path reads the SRTP keys from here."""

    def __init__(self, keys: SrtpKeys) -> None:
        self.keys = keys


class PlainSession(fastpath.TransportState):
    """A sfu.session.transport.Transport for RTP to one fixed address: plain, or SRTP when
    it has keys.

    It is never in the router's session table, so HTTP cannot reach it and limits do not count
    it; the origin's endpoint finds it by address only, to hand it the edge's RTCP.
    """

    def __init__(
        self,
        role: str,
        stream: str,
        tracks: list[TrackSpec],
        addr: Address,
        send: SendFunction,
        now: float,
        keys: SrtpKeys | None = None,
        timeout: float = MediaConfig.session_timeout,
        rng: random.Random = ice.SYSTEM_RANDOM,
    ) -> None:
        self.id = f"{rng.getrandbits(128):032x}"  # the stats tell relays by type, not by id
        self.role = role
        self.stream = stream
        self.peer = PeerParams(ice_ufrag="", ice_pwd="", fingerprints=[], tracks=tracks)
        self.srtp: SrtpContext | _Plaintext = _Plaintext() if keys is None else SrtpContext(keys)
        self.dtls = None if keys is None else _RelayKeys(keys)
        self.encrypted = keys is not None
        self.state = SessionState.CONNECTED
        self.addr: Address | None = addr
        self.rtcp_ssrc = rng.getrandbits(32) or 1
        self.handler: MediaHandler | None = None
        self.created = now
        self.last_seen = now
        self.close_reason = ""
        # here: packets too short, failing SRTP, or that looked like DTLS
        self.srtp_errors = 0
        self.transport_seq = 0  # relay tracks carry no header extensions, so it stays unused
        self.transport = "relay"  # what the stats say it runs over, where a peer says udp/tcp
        self.send_failures = 0
        self._timeout = timeout
        self._send = send
        self._events: list[SessionEvent] = []

    def handle_srtp(self, data: bytes, now: float) -> None:
        """One RTP or RTCP packet (the endpoint calls every media handler by this name)."""
        handler = self.handler
        if self.state is SessionState.CLOSED or handler is None:
            return
        is_rtcp = 191 < data[1] < 224
        if len(data) < (RTCP_HEADER if is_rtcp else RTP_HEADER):
            self.srtp_errors += 1
            return
        if self.encrypted:
            srtp = cast(SrtpContext, self.srtp)
            try:
                data = srtp.unprotect_rtcp(data) if is_rtcp else srtp.unprotect_rtp(data)
            except pylibsrtp.Error:
                self.srtp_errors += 1
                return
        self.last_seen = now
        if is_rtcp:
            handler.on_rtcp(data, now)
        else:
            handler.on_rtp(data, now)

    def handle_dtls(self, data: bytes, now: float) -> None:
        """A relay has no DTLS; whatever looks like it is dropped and counted."""
        self.srtp_errors += 1

    def send_rtcp(self, packet: bytes) -> None:
        if self.addr is not None:
            try:
                self._send(self.srtp.protect_rtcp(packet), self.addr)
            except (OSError, pylibsrtp.Error):
                self.send_failures += 1

    def next_timer(self) -> float | None:
        """When the other end will have been silent too long; None once closed."""
        return None if self.state is SessionState.CLOSED else self.last_seen + self._timeout

    def handle_timer(self, now: float) -> None:
        """End the relay when the other end went silent: its publisher (or player) is gone."""
        if self.state is not SessionState.CLOSED and now - self.last_seen > self._timeout:
            self.close(f"nothing from the other end for {self._timeout:.0f} s")

    def poll_events(self) -> list[SessionEvent]:
        """Its end, once (a relay never moves)."""
        events, self._events = self._events, []
        return events

    def close(self, reason: str) -> None:
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        self.close_reason = reason
        log.info(
            "relay #%s closed (%s %s): %s", short_hash(self.id), self.role, self.stream, reason
        )
        if self.handler is not None:
            self.handler.on_closed()
        self._events.append(SessionClosed(self))


class RelayIn:
    """The edge end: a socket of its own that takes packets from the origin only."""

    def __init__(
        self,
        router: Router,
        stream: str,
        tracks: list[TrackSpec],
        source: Address,
        host: str,
        buffer_size: int,
        now: float,
        keys: SrtpKeys | None = None,
        timeout: float = MediaConfig.session_timeout,
    ) -> None:
        self.source = source
        self.foreign = 0  # datagrams from anyone but the origin, dropped
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size)
            sock.bind((host, 0))
            sock.setblocking(False)
            self.session = PlainSession(
                PUBLISH, stream, tracks, source, self._send, now, keys, timeout, router.rng
            )
            router.add_publisher(stream, self.session)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.addr: Address = sock.getsockname()[:2]
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)
        self.session.handler.on_connected(now)  # type: ignore[union-attr]

    def _send(self, data: bytes, addr: Address) -> None:
        self.sock.sendto(data, addr)

    def _on_readable(self) -> None:
        now = time.monotonic()
        for _ in range(READ_BATCH):
            try:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error of an earlier send
                self.session.send_failures += 1
                return
            if addr != self.source:
                self.foreign += 1
                continue
            self.session.handle_srtp(data, now)

    def release(self) -> None:
        """Free the socket once the session has closed."""
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


class Relays:
    """Both ends of every relay one worker takes part in, with their timeouts."""

    def __init__(self, router: Router, host: str, buffer_size: int, timeout: float) -> None:
        self.router = router
        self.host = host
        self.buffer_size = buffer_size
        self.timeout = timeout
        self.inbound: dict[str, RelayIn] = {}
        self.outbound: dict[str, PlainSession] = {}

    def source_tracks(self, stream: str) -> list[TrackSpec] | None:
        """Tracks mirroring the live publisher's, one codec each; None if it is not live."""
        existing = self.router.streams.get(stream)
        publisher = existing.live_publisher() if existing is not None else None
        if publisher is None:
            return None
        return [TrackSpec(t.spec.mid, t.kind, [t.codec]) for t in publisher.tracks]

    def relayed_players(self) -> collections.Counter[str]:
        """Per stream, how many of its players are relays to other workers."""
        return collections.Counter(session.stream for session in self.outbound.values())

    def open_in(
        self,
        stream: str,
        tracks: list[TrackSpec],
        source: Address,
        keys: SrtpKeys | None = None,
        host: str | None = None,
    ) -> RelayIn:
        """The edge end for `stream`, fed from `source` (SRTP under `keys` if given) on a socket
        bound to `host` (default: this worker's relay host); StreamBusy if it has a publisher."""
        relay = RelayIn(
            self.router,
            stream,
            tracks,
            source,
            host or self.host,
            self.buffer_size,
            time.monotonic(),
            keys,
            self.timeout,
        )
        self.inbound[relay.session.id] = relay
        log.info(
            "relay #%s: %s in on %s:%d from %s:%d",
            short_hash(relay.session.id),
            stream,
            *relay.addr,
            *source,
        )
        return relay

    def open_out(
        self, stream: str, tracks: list[TrackSpec], target: Address, keys: SrtpKeys | None = None
    ) -> PlainSession:
        """The origin end: a player of `stream` sending to an edge's relay socket."""
        now = time.monotonic()
        session = PlainSession(
            PLAY, stream, tracks, target, self.router.send, now, keys, self.timeout, self.router.rng
        )
        player = self.router.add_player(stream, session)
        self.outbound[session.id] = session
        self.router.sessions.bind(target, session)
        player.on_connected(now)
        log.info("relay #%s: %s out to %s:%d", short_hash(session.id), stream, *target)
        return session

    def _settle(self, session: PlainSession) -> None:
        """Free what a closed relay end held: the edge's socket, the origin's address."""
        if not session.poll_events():
            return
        relay = self.inbound.pop(session.id, None)
        if relay is not None:
            relay.release()
        if self.outbound.pop(session.id, None) is not None:
            self.router.sessions.unbind(session)

    def close(self, relay_id: str, reason: str) -> bool:
        """End one relay end by id; False if this worker has no such relay."""
        relay = self.inbound.get(relay_id)
        session = relay.session if relay is not None else self.outbound.get(relay_id)
        if session is None:
            return False
        session.close(reason)
        self._settle(session)
        return True

    def _sessions(self) -> list[PlainSession]:
        return [*self.outbound.values(), *(r.session for r in self.inbound.values())]

    def next_timer(self) -> float | None:
        """The earliest relay timeout; None when there are no relays."""
        times = [at for at in (s.next_timer() for s in self._sessions()) if at is not None]
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        """Time out silent relays, and free those closed since (also from outside: cluster)."""
        for session in self._sessions():
            session.handle_timer(now)
            self._settle(session)

    def close_all(self, reason: str) -> None:
        for relay_id in [*self.inbound, *self.outbound]:
            self.close(relay_id, reason)
