"""The sending half of an SCTP association: fragments, congestion window, retransmission.

Messages are cut into DATA chunks and given TSNs when queued. What goes out is limited by the
congestion window (RFC 4960 section 7) and the peer's receive window; a chunk missing from
three SACKs is resent at once (fast retransmit), everything outstanding is resent when the T3
timer fires, with the RTO of section 6.3. A partially reliable message (RFC 3758) is abandoned
once it has been resent its allowed number of times or has outlived its lifetime, and a
FORWARD-TSN tells the peer to skip it. Everything held is counted in `buffered`.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from sfu.protocol.sctp_receive import tsn_after
from sfu.wire.sctp import (
    DATA_HEADER,
    FLAG_BEGIN,
    FLAG_END,
    FLAG_UNORDERED,
    Sack,
    data_chunk,
    forward_tsn_chunk,
)

MAX_PACKET = 1140  # an SCTP packet in one DTLS record under the 1200-byte datagrams we send
MAX_FRAGMENT = MAX_PACKET - 12 - DATA_HEADER
RTO_INITIAL = 1.0  # RFC 4960 says 3 s; WebRTC stacks start lower, the handshake already ran
RTO_MIN = 1.0
RTO_MAX = 60.0
MAX_CWND = 256 * MAX_PACKET  # ample for messages; bounds the chunks one SACK makes us walk
MAX_BURST_CHUNKS = 64  # chunks sent per call: one call never builds an unbounded burst
_ALPHA, _BETA = 0.125, 0.25


@dataclass(eq=False)
class _Message:
    stream: int
    ssn: int
    ordered: bool
    max_retransmits: int | None
    expires_at: float | None
    chunks: list[_Chunk] = field(default_factory=list)
    abandoned: bool = False


@dataclass(eq=False)
class _Chunk:
    tsn: int
    message: _Message
    encoded: bytes
    size: int  # payload bytes
    sent_at: float | None = None
    retransmits: int = 0
    acked: bool = False  # by a gap block; the cumulative TSN removes a chunk altogether
    in_flight: bool = False
    misses: int = 0


class Outbound:
    """Send state from our initial TSN on."""

    def __init__(self, initial_tsn: int, peer_rwnd: int, partial_reliability: bool) -> None:
        self.next_tsn = initial_tsn
        self.cumulative_ack = (initial_tsn - 1) & 0xFFFFFFFF
        self.advanced_ack = self.cumulative_ack  # RFC 3758's Advanced.Peer.Ack.Point
        self.partial_reliability = partial_reliability
        self.peer_rwnd = peer_rwnd
        self.cwnd = 4 * MAX_PACKET
        self.ssthresh = peer_rwnd
        self._partial_bytes_acked = 0
        self.flight_size = 0
        self.buffered = 0  # payload bytes queued or unacknowledged
        self.rto = RTO_INITIAL
        self._srtt: float | None = None
        self._rttvar = 0.0
        self.t3_at: float | None = None
        self.errors = 0  # consecutive T3 expiries
        self.retransmissions = 0
        self.abandoned = 0  # messages given up (partial reliability)
        self._chunks: dict[int, _Chunk] = {}  # every chunk above the cumulative ack, TSN order
        self._unsent: collections.deque[_Chunk] = collections.deque()
        self._resend: list[_Chunk] = []
        self._ssn: dict[int, int] = {}
        self._recovery_until: int | None = None  # fast recovery lasts until this TSN is acked
        self.forward_due = False

    def push(
        self,
        stream: int,
        ppid: int,
        payload: bytes,
        ordered: bool,
        max_retransmits: int | None,
        expires_at: float | None,
    ) -> None:
        """Queue one message (its size already checked against the peer's limit)."""
        ssn = 0
        if ordered:
            ssn = self._ssn.get(stream, 0)
            self._ssn[stream] = (ssn + 1) & 0xFFFF
        message = _Message(stream, ssn, ordered, max_retransmits, expires_at)
        pieces = [payload[i : i + MAX_FRAGMENT] for i in range(0, len(payload), MAX_FRAGMENT)]
        pieces = pieces or [b""]
        for index, piece in enumerate(pieces):
            flags = 0 if ordered else FLAG_UNORDERED
            flags |= FLAG_BEGIN if index == 0 else 0
            flags |= FLAG_END if index == len(pieces) - 1 else 0
            tsn = self.next_tsn
            self.next_tsn = (tsn + 1) & 0xFFFFFFFF
            encoded = data_chunk(flags, tsn, stream, ssn, ppid, piece)
            item = _Chunk(tsn, message, encoded, len(piece))
            message.chunks.append(item)
            self._chunks[tsn] = item
            self._unsent.append(item)
            self.buffered += len(piece)

    def reset(self, streams: tuple[int, ...]) -> None:
        """Our outgoing streams were reset (all when empty): their SSNs start again at 0."""
        for number in streams or tuple(self._ssn):
            self._ssn.pop(number, None)

    @property
    def queued_chunks(self) -> int:
        """Chunks held (queued, in flight or waiting for the cumulative ack)."""
        return len(self._chunks)

    def take(self, now: float) -> list[bytes]:
        """DATA chunks to send now: retransmissions first, then new ones, as the windows allow."""
        out: list[bytes] = []
        if self._resend:
            self._resend.sort(key=lambda c: (c.tsn - self.cumulative_ack) & 0xFFFFFFFF)
            while self._resend and len(out) < MAX_BURST_CHUNKS:
                item = self._resend[0]
                if self.flight_size and self.flight_size + item.size > self.cwnd:
                    break
                self._resend.pop(0)
                if item.acked or item.message.abandoned or item.tsn not in self._chunks:
                    continue
                if self._give_up(item, now, resending=True):
                    continue
                item.retransmits += 1
                self.retransmissions += 1
                out.append(self._sent(item, now))
        while self._unsent and len(out) < MAX_BURST_CHUNKS:
            item = self._unsent[0]
            if item.message.abandoned:
                self._unsent.popleft()
                continue
            if self.flight_size and (
                self.flight_size + item.size > self.cwnd or item.size > self.peer_rwnd
            ):
                break
            self._unsent.popleft()
            if self._give_up(item, now, resending=False):
                continue
            out.append(self._sent(item, now))
        return out

    def _sent(self, item: _Chunk, now: float) -> bytes:
        item.sent_at = now
        item.in_flight = True
        item.misses = 0
        self.flight_size += item.size
        self.peer_rwnd = max(0, self.peer_rwnd - item.size)
        if self.t3_at is None:
            self.t3_at = now + self.rto
        return item.encoded

    def _give_up(self, item: _Chunk, now: float, resending: bool) -> bool:
        """Abandon a partially reliable message past its retransmissions or lifetime."""
        message = item.message
        if not self.partial_reliability:
            return False
        limit = message.max_retransmits
        spent = resending and limit is not None and item.retransmits >= limit
        expired = message.expires_at is not None and now >= message.expires_at
        if not (spent or expired):
            return False
        message.abandoned = True
        self.abandoned += 1
        for part in message.chunks:
            if part.tsn in self._chunks and not part.acked:
                self.buffered -= part.size
                if part.in_flight:
                    part.in_flight = False
                    self.flight_size -= part.size
        self._advance_ack_point()
        return True

    def _advance_ack_point(self) -> None:
        at = (self.advanced_ack + 1) & 0xFFFFFFFF
        while at in self._chunks and self._chunks[at].message.abandoned:  # RFC 3758 3.5 C2
            self.advanced_ack = at
            at = (at + 1) & 0xFFFFFFFF
        self.forward_due = tsn_after(self.advanced_ack, self.cumulative_ack)

    def forward_tsn(self) -> bytes | None:
        """The FORWARD-TSN chunk to send, when abandoned chunks lie beyond the peer's ack."""
        if not self.forward_due:
            return None
        self.forward_due = False
        streams: dict[int, int] = {}
        at = (self.cumulative_ack + 1) & 0xFFFFFFFF
        while at in self._chunks and not tsn_after(at, self.advanced_ack):
            message = self._chunks[at].message
            if message.ordered:
                streams[message.stream] = message.ssn
            at = (at + 1) & 0xFFFFFFFF
        return forward_tsn_chunk(self.advanced_ack, sorted(streams.items()))

    def sack(self, sack: Sack, now: float) -> bool:
        """Apply a SACK; True when it acknowledged something new."""
        cumulative = sack.cumulative_tsn
        if tsn_after(self.cumulative_ack, cumulative) or tsn_after(cumulative, self._highest()):
            return False  # stale, or acknowledging what we never sent
        acked_bytes = 0
        newest: _Chunk | None = None
        advanced = cumulative != self.cumulative_ack
        while self.cumulative_ack != cumulative:
            self.cumulative_ack = (self.cumulative_ack + 1) & 0xFFFFFFFF
            item = self._chunks.pop(self.cumulative_ack, None)
            if item is None:
                continue
            newest = item
            acked_bytes += self._acknowledge(item)
        if tsn_after(self.cumulative_ack, self.advanced_ack):
            self.advanced_ack = self.cumulative_ack
        highest_gap = None
        span = (self._highest() - cumulative) & 0xFFFFFFFF
        covered = 0  # each offset is looked at once, however the blocks overlap
        for start, end in sorted(sack.gaps):
            for offset in range(max(start, covered + 1), min(end, span) + 1):
                item = self._chunks.get((cumulative + offset) & 0xFFFFFFFF)
                if item is not None and not item.acked:
                    acked_bytes += self._acknowledge(item)
                    item.acked = True
                    newest = item
                highest_gap = (cumulative + offset) & 0xFFFFFFFF
            covered = max(covered, end)
        if newest is not None and newest.retransmits == 0 and newest.sent_at is not None:
            self._measure(now - newest.sent_at)
        if highest_gap is not None:
            self._count_misses(highest_gap)
        self.peer_rwnd = max(0, sack.a_rwnd - self.flight_size)
        if acked_bytes:
            self.errors = 0
            self._grow(acked_bytes)
        if self._recovery_until is not None and not tsn_after(
            self._recovery_until, self.cumulative_ack
        ):
            self._recovery_until = None
        if not self.flight_size and not self._resend:
            self.t3_at = None  # RFC 4960 section 6.3.2, R2
        elif advanced or self.t3_at is None:
            self.t3_at = now + self.rto  # R3: the earliest outstanding TSN was acknowledged
        self._advance_ack_point()
        return bool(acked_bytes)

    def _highest(self) -> int:
        return (self.next_tsn - 1) & 0xFFFFFFFF

    def _acknowledge(self, item: _Chunk) -> int:
        if item.message.abandoned or item.acked:
            return 0
        self.buffered -= item.size
        if item.in_flight:
            item.in_flight = False
            self.flight_size -= item.size
        return item.size

    def _count_misses(self, highest: int) -> None:
        """A chunk reported missing below a gap-acked one three times is resent now."""
        for tsn, item in self._chunks.items():
            if not tsn_after(highest, tsn):
                break
            if item.acked or not item.in_flight or item.message.abandoned:
                continue
            item.misses += 1
            if item.misses == 3:
                self._mark_for_resend(item)
                if self._recovery_until is None:
                    self.ssthresh = max(self.cwnd // 2, 4 * MAX_PACKET)
                    self.cwnd = self.ssthresh
                    self._recovery_until = self._highest()

    def _mark_for_resend(self, item: _Chunk) -> None:
        if item.in_flight:
            item.in_flight = False
            self.flight_size -= item.size
        self._resend.append(item)

    def _grow(self, acked_bytes: int) -> None:
        if self.cwnd <= self.ssthresh:
            self.cwnd = min(MAX_CWND, self.cwnd + min(acked_bytes, MAX_PACKET))
            return
        self._partial_bytes_acked += acked_bytes
        if self._partial_bytes_acked >= self.cwnd:
            self._partial_bytes_acked -= self.cwnd
            self.cwnd = min(MAX_CWND, self.cwnd + MAX_PACKET)

    def _measure(self, rtt: float) -> None:
        """RFC 4960 section 6.3.1."""
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar = (1 - _BETA) * self._rttvar + _BETA * abs(self._srtt - rtt)
            self._srtt = (1 - _ALPHA) * self._srtt + _ALPHA * rtt
        self.rto = min(RTO_MAX, max(RTO_MIN, self._srtt + 4 * self._rttvar))

    def expire(self, now: float) -> None:
        """The T3 timer fired: back off, shrink the window, resend everything outstanding."""
        self.t3_at = None
        self.errors += 1
        self.rto = min(RTO_MAX, self.rto * 2)
        self.ssthresh = max(self.cwnd // 2, 4 * MAX_PACKET)
        self.cwnd = MAX_PACKET
        self._partial_bytes_acked = 0
        for item in self._chunks.values():
            if item.in_flight:
                self._mark_for_resend(item)
        if self._resend or self.forward_due:
            self.t3_at = now + self.rto
        self.forward_due = self.forward_due or tsn_after(self.advanced_ack, self.cumulative_ack)
