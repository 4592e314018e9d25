"""An SCTP association (RFC 4960) for data channels, the server end, sans-IO.

Packets from the peer go in through `receive`, messages go out through `send`, and both return
the packets to send (each one goes into its own DTLS record, RFC 8261); `handle_timer` runs the
retransmission, delayed-SACK and heartbeat timers on the caller's clock. The server never sends
INIT: it answers the peer's with an INIT-ACK whose state cookie holds everything it would have
to remember, signed, so nothing is kept until a COOKIE-ECHO brings a valid cookie back.
"""

from __future__ import annotations

import collections
import enum
import random
import struct
from dataclasses import dataclass

from sfu.protocol.sctp_cookie import Cookie, seal, unseal
from sfu.protocol.sctp_receive import Inbound, Received
from sfu.protocol.sctp_reconfig import parse_reset_request, reset_chunk
from sfu.protocol.sctp_send import MAX_PACKET, Outbound
from sfu.wire import sctp
from sfu.wire.sctp import Init, SctpError

DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024  # RFC 8841's a=max-message-size we announce
RECEIVE_BUFFER = 1024 * 1024  # what we advertise and hold for one peer
MAX_QUEUED_CHUNKS = 8192  # chunks held to send: bounds the work a SACK can cause
MAX_RETRANSMISSIONS = 10  # RFC 4960 Association.Max.Retrans
HEARTBEAT_INTERVAL = 30.0
SACK_DELAY = 0.2
HANDSHAKE_RESEND = 1.0


class AssociationState(enum.Enum):
    LISTEN = "listen"  # no association yet: INITs are answered statelessly
    ESTABLISHED = "established"
    CLOSED = "closed"


@dataclass(frozen=True)
class AssociationUp:
    """A valid COOKIE-ECHO arrived: messages may flow."""


@dataclass(frozen=True)
class StreamsReset:
    """The peer reset its outgoing streams (RFC 6525): the channels on them are closed."""

    streams: tuple[int, ...]


@dataclass(frozen=True)
class AssociationClosed:
    reason: str


AssociationEvent = AssociationUp | Received | StreamsReset | AssociationClosed


class Association:
    """One SCTP association, from the first INIT to ABORT or SHUTDOWN."""

    def __init__(
        self,
        rng: random.Random,
        *,
        port: int = 5000,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        receive_buffer: int = RECEIVE_BUFFER,
    ) -> None:
        self.state = AssociationState.LISTEN
        self.port = port
        self.peer_port = port
        self.max_message_size = max_message_size
        self._receive_buffer = receive_buffer
        self._rng = rng
        self._secret = rng.getrandbits(256).to_bytes(32, "big")
        self.local_tag = 0
        self.peer_tag = 0
        self.inbound: Inbound | None = None
        self.outbound: Outbound | None = None
        self._control: list[bytes] = []
        self._events: list[AssociationEvent] = []
        self._sack_at: float | None = None
        self._packets_unacked = 0
        self._heartbeat_at: float | None = None
        self._heartbeat_unanswered = 0
        self._reconfig_sequence = 0
        self._our_tsn = 0
        self._handshake: bytes | None = None  # our INIT or COOKIE-ECHO while we are the client
        self._handshake_at: float | None = None
        self.drops: collections.Counter[str] = collections.Counter()

    # -- input -------------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[bytes]:
        """One SCTP packet from the peer (a DTLS record's payload); the packets to send."""
        if self.state is AssociationState.CLOSED:
            return []
        try:
            packet = sctp.parse_packet(data)
        except SctpError:
            self.drops["sctp_bad_packet"] += 1
            return []
        first = packet.chunks[0][0]
        if first == sctp.INIT:
            return self._answer_init(packet, now)
        if first in (sctp.INIT_ACK, sctp.COOKIE_ACK) and self._handshake:
            return self._client_step(packet, now)
        if first == sctp.COOKIE_ECHO and self.state is AssociationState.LISTEN:
            if not self._accept_cookie(packet, now):
                return []
        elif not self._tag_matches(packet):
            self.drops["sctp_bad_tag"] += 1
            return []
        if self.state is not AssociationState.ESTABLISHED:
            self.drops["sctp_before_association"] += 1
            return []
        try:
            self._handle_chunks(packet.chunks, now)
        except SctpError:
            self.drops["sctp_bad_chunk"] += 1
        return self._flush(now)

    def _tag_matches(self, packet: sctp.Packet) -> bool:
        tag = packet.verification_tag
        if tag == self.local_tag and tag:
            return True
        reflected = packet.chunks[0][1] & 1  # the T bit: the sender did not know our tag
        return (
            bool(reflected)
            and packet.chunks[0][0] in (sctp.ABORT, sctp.SHUTDOWN_COMPLETE)
            and (tag == self.peer_tag)
        )

    def _answer_init(self, packet: sctp.Packet, now: float) -> list[bytes]:
        if len(packet.chunks) != 1 or packet.verification_tag != 0:
            self.drops["sctp_bad_init"] += 1  # RFC 4960 section 8.5.1: INIT travels alone
            return []
        if self.state is not AssociationState.LISTEN:
            self.drops["sctp_init_when_established"] += 1
            return []
        try:
            init = sctp.parse_init(packet.chunks[0][2])
        except SctpError:
            self.drops["sctp_bad_init"] += 1
            return []
        our_tag = self._rng.getrandbits(32) or 1
        our_tsn = self._rng.getrandbits(32)
        extensions = init.params.get(sctp.PARAM_SUPPORTED_EXTENSIONS, b"")
        forward = sctp.PARAM_FORWARD_TSN_SUPPORTED in init.params or (
            bytes([sctp.FORWARD_TSN]) in [extensions[i : i + 1] for i in range(len(extensions))]
        )
        cookie = Cookie(init.tag, init.a_rwnd, init.initial_tsn, our_tag, our_tsn, forward, now)
        params = {
            sctp.PARAM_STATE_COOKIE: seal(self._secret, cookie),
            sctp.PARAM_SUPPORTED_EXTENSIONS: bytes([sctp.FORWARD_TSN, sctp.RECONFIG]),
            sctp.PARAM_FORWARD_TSN_SUPPORTED: b"",
        }
        ack = Init(our_tag, self._receive_buffer, 0xFFFF, 0xFFFF, our_tsn, params)
        self.peer_port = packet.source_port
        return [self._packet(init.tag, [sctp.init_chunk(sctp.INIT_ACK, ack)])]

    def _accept_cookie(self, packet: sctp.Packet, now: float) -> bool:
        """Build the association from a valid cookie: the first state the peer makes us keep."""
        cookie = unseal(self._secret, packet.chunks[0][2], now)
        if isinstance(cookie, str):
            self.drops[cookie] += 1
            return False
        if packet.verification_tag != cookie.our_tag:
            self.drops["sctp_bad_tag"] += 1
            return False
        self.local_tag, self.peer_tag = cookie.our_tag, cookie.peer_tag
        self.peer_port = packet.source_port
        self._start(cookie.peer_tsn, cookie.our_tsn, cookie.peer_window, cookie.forward_tsn)
        self.state = AssociationState.ESTABLISHED
        self._heartbeat_at = now + HEARTBEAT_INTERVAL
        self._events.append(AssociationUp())
        return True

    def _start(self, peer_tsn: int, our_tsn: int, peer_window: int, forward_tsn: bool) -> None:
        self.inbound = Inbound(peer_tsn, self._receive_buffer, self.max_message_size, self.drops)
        self.outbound = Outbound(our_tsn, peer_window, forward_tsn)
        self._reconfig_sequence = (our_tsn - 1) & 0xFFFFFFFF  # RFC 6525 section 5.1.1

    def _handle_chunks(self, chunks: list[sctp.Chunk], now: float) -> None:
        inbound: Inbound = self.inbound  # type: ignore[assignment]  # set when established
        outbound: Outbound = self.outbound  # type: ignore[assignment]
        sack_now = False
        had_data = False
        for kind, flags, body in chunks:
            if self.state is not AssociationState.ESTABLISHED:
                return
            if kind == sctp.DATA:
                had_data = True
                self._events += inbound.accept(sctp.parse_data(flags, body))
            elif kind == sctp.SACK:
                outbound.sack(sctp.parse_sack(body), now)
            elif kind == sctp.COOKIE_ECHO:
                self._control.append(sctp.chunk(sctp.COOKIE_ACK))
            elif kind == sctp.HEARTBEAT:
                self._control.append(sctp.chunk(sctp.HEARTBEAT_ACK, 0, body))
            elif kind == sctp.HEARTBEAT_ACK:
                self._heartbeat_unanswered = 0
            elif kind == sctp.FORWARD_TSN:
                self._events += inbound.forward(*sctp.parse_forward_tsn(body))
                sack_now = True
            elif kind == sctp.RECONFIG:
                self._reset_streams(body)
            elif kind == sctp.ABORT:
                self._close("peer aborted the association")
            elif kind == sctp.SHUTDOWN:
                self._control.append(sctp.chunk(sctp.SHUTDOWN_ACK))
            elif kind == sctp.SHUTDOWN_COMPLETE:
                self._close("peer shut the association down")
            elif kind >> 6 in (0, 1):
                self.drops["sctp_unknown_chunk"] += 1
                return  # RFC 4960 section 3.2: stop processing the packet
            else:
                self.drops["sctp_unknown_chunk"] += 1
        if had_data:
            self._packets_unacked += 1
            if sack_now or inbound.has_gaps or self._packets_unacked >= 2:
                self._sack_at = now
            elif self._sack_at is None:
                self._sack_at = now + SACK_DELAY
        elif sack_now:
            self._sack_at = now

    def _reset_streams(self, body: bytes) -> None:
        request = parse_reset_request(body)
        if request is None:
            self.drops["sctp_unsupported_reconfig"] += 1
            return
        number, streams = request
        inbound: Inbound = self.inbound  # type: ignore[assignment]
        outbound: Outbound = self.outbound  # type: ignore[assignment]
        inbound.reset(streams)
        outbound.reset(streams)
        self._reconfig_sequence = (self._reconfig_sequence + 1) & 0xFFFFFFFF
        last_tsn = (outbound.next_tsn - 1) & 0xFFFFFFFF
        self._control.append(reset_chunk(number, self._reconfig_sequence, last_tsn, streams))
        self._events.append(StreamsReset(streams))

    # -- the client side: the server never starts an association, its tests and benches do --

    def connect(self, now: float) -> list[bytes]:
        """Send an INIT, as the DTLS client of a data channel transport does."""
        self.local_tag = self._rng.getrandbits(32) or 1
        self._our_tsn = self._rng.getrandbits(32)
        params = {sctp.PARAM_FORWARD_TSN_SUPPORTED: b""}
        init = Init(self.local_tag, self._receive_buffer, 0xFFFF, 0xFFFF, self._our_tsn, params)
        self._handshake = self._packet(0, [sctp.init_chunk(sctp.INIT, init)])
        self._handshake_at = now + HANDSHAKE_RESEND
        return [self._handshake]

    def _client_step(self, packet: sctp.Packet, now: float) -> list[bytes]:
        if packet.verification_tag != self.local_tag:
            self.drops["sctp_bad_tag"] += 1
            return []
        kind, _, body = packet.chunks[0]
        if kind == sctp.COOKIE_ACK:
            self._handshake = None
            self._handshake_at = None
            self.state = AssociationState.ESTABLISHED
            self._heartbeat_at = now + HEARTBEAT_INTERVAL
            self._events.append(AssociationUp())
            return self._flush(now)
        try:
            ack = sctp.parse_init(body)
        except SctpError:
            self.drops["sctp_bad_init"] += 1
            return []
        cookie = ack.params.get(sctp.PARAM_STATE_COOKIE)
        if cookie is None or self.inbound is not None:
            return []
        self.peer_tag = ack.tag
        forward = sctp.PARAM_FORWARD_TSN_SUPPORTED in ack.params
        self._start(ack.initial_tsn, self._our_tsn, ack.a_rwnd, forward)
        self._handshake = self._packet(self.peer_tag, [sctp.chunk(sctp.COOKIE_ECHO, 0, cookie)])
        self._handshake_at = now + HANDSHAKE_RESEND
        return [self._handshake]

    # -- output ------------------------------------------------------------------------------

    def send(
        self,
        stream: int,
        ppid: int,
        payload: bytes,
        now: float,
        *,
        ordered: bool = True,
        max_retransmits: int | None = None,
        lifetime: float | None = None,
    ) -> tuple[bool, list[bytes]]:
        """Queue one message; False (and counted) when it is too large or the queue is full."""
        outbound = self.outbound
        if outbound is None or self.state is not AssociationState.ESTABLISHED:
            self.drops["sctp_send_before_association"] += 1
            return False, []
        if len(payload) > self.max_message_size:
            self.drops["sctp_message_too_large"] += 1
            return False, []
        if outbound.queued_chunks >= MAX_QUEUED_CHUNKS:
            self.drops["sctp_send_queue_full"] += 1
            return False, []
        expires = None if lifetime is None else now + lifetime
        outbound.push(stream, ppid, payload, ordered, max_retransmits, expires)
        return True, self._flush(now)

    @property
    def buffered(self) -> int:
        """Payload bytes queued or unacknowledged toward the peer."""
        return 0 if self.outbound is None else self.outbound.buffered

    def _flush(self, now: float) -> list[bytes]:
        """Pack what is due into packets: control chunks, SACK, FORWARD-TSN, then DATA."""
        chunks, self._control = self._control, []
        inbound, outbound = self.inbound, self.outbound
        if inbound is not None and self._sack_at is not None and now >= self._sack_at:
            chunks.append(sctp.sack_chunk(*inbound.sack_fields()))
            self._sack_at = None
            self._packets_unacked = 0
        if outbound is not None:
            data = outbound.take(now)  # may abandon messages, which the FORWARD-TSN then skips
            forward = outbound.forward_tsn()
            chunks += ([] if forward is None else [forward]) + data
        packets: list[bytes] = []
        batch: list[bytes] = []
        size = sctp.COMMON_HEADER
        for item in chunks:
            if batch and size + len(item) > MAX_PACKET:
                packets.append(self._packet(self.peer_tag, batch))
                batch, size = [], sctp.COMMON_HEADER
            batch.append(item)
            size += len(item)
        if batch:
            packets.append(self._packet(self.peer_tag, batch))
        return packets

    def _packet(self, tag: int, chunks: list[bytes]) -> bytes:
        return sctp.encode_packet(self.port, self.peer_port, tag, chunks)

    # -- time and the end ----------------------------------------------------------------------

    def next_timer(self) -> float | None:
        """When handle_timer has work: a T3 expiry, a delayed SACK or a heartbeat."""
        if self._handshake_at is not None:
            return self._handshake_at
        if self.state is not AssociationState.ESTABLISHED:
            return None
        times = [self._sack_at, self._heartbeat_at, self.outbound and self.outbound.t3_at]
        return min((t for t in times if t is not None), default=None)

    def handle_timer(self, now: float) -> list[bytes]:
        if self._handshake is not None and self._handshake_at is not None:
            if now < self._handshake_at:
                return []
            self._handshake_at = now + HANDSHAKE_RESEND
            return [self._handshake]
        outbound = self.outbound
        if self.state is not AssociationState.ESTABLISHED or outbound is None:
            return []
        if outbound.t3_at is not None and now >= outbound.t3_at:
            outbound.expire(now)
            if outbound.errors > MAX_RETRANSMISSIONS:
                return self.abort("the peer stopped acknowledging data")
        if self._heartbeat_at is not None and now >= self._heartbeat_at:
            if self._heartbeat_unanswered > MAX_RETRANSMISSIONS // 2:
                return self.abort("the peer stopped answering heartbeats")
            self._heartbeat_unanswered += 1
            info = struct.pack("!HHd", 1, 12, now)  # Heartbeat Info: our clock, echoed back
            self._control.append(sctp.chunk(sctp.HEARTBEAT, 0, info))
            self._heartbeat_at = now + HEARTBEAT_INTERVAL + outbound.rto
        return self._flush(now)

    def abort(self, reason: str) -> list[bytes]:
        """End at once, telling the peer with an ABORT."""
        if self.state is not AssociationState.ESTABLISHED:
            self._close(reason)
            return []
        packet = self._packet(self.peer_tag, [sctp.chunk(sctp.ABORT)])
        self._close(reason)
        return [packet]

    def _close(self, reason: str) -> None:
        if self.state is AssociationState.CLOSED:
            return
        self.state = AssociationState.CLOSED
        self.inbound = self.outbound = None
        self._control = []
        self._events.append(AssociationClosed(reason))

    def poll_events(self) -> list[AssociationEvent]:
        events, self._events = self._events, []
        return events
