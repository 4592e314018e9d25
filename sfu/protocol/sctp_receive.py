"""The receiving half of an SCTP association: TSNs, SACKs, reassembly and stream order.

Everything the peer can make us hold is bounded by one byte budget (the advertised receive
window): fragments of unfinished messages and whole messages waiting for an earlier one on an
ordered stream. DATA beyond the window, in bytes or in TSNs, is dropped unacknowledged, so the
peer sends it again later; a message longer than the largest we accept is thrown away as it
arrives, and FORWARD-TSN (RFC 3758) lets the peer skip what it abandoned.
"""

from __future__ import annotations

import bisect
import collections
from dataclasses import dataclass, field

from sfu.wire.sctp import FLAG_BEGIN, FLAG_END, FLAG_UNORDERED, DataChunk

MAX_TSN_AHEAD = 4096  # TSNs held above the cumulative one; also bounds the gap blocks we make
MAX_GAP_REPORTS = 16  # gap blocks per SACK
MAX_DUPLICATE_REPORTS = 16


def tsn_after(a: int, b: int) -> bool:
    """a > b in 32-bit serial number arithmetic (RFC 1982)."""
    return 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000


def ssn_after(a: int, b: int) -> bool:
    return 0 < ((a - b) & 0xFFFF) < 0x8000


class Ranges:
    """TSNs received above the cumulative one, as sorted runs of unwrapped serial numbers, so a
    SACK's gap blocks cost the blocks it reports, not the window."""

    __slots__ = ("ends", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __contains__(self, serial: int) -> bool:
        i = bisect.bisect_right(self.starts, serial) - 1
        return i >= 0 and self.ends[i] >= serial

    def add(self, serial: int) -> None:
        starts, ends = self.starts, self.ends
        i = bisect.bisect_right(starts, serial)
        left = i > 0 and ends[i - 1] == serial - 1
        right = i < len(starts) and starts[i] == serial + 1
        if left and right:
            ends[i - 1] = ends[i]
            del starts[i], ends[i]
        elif left:
            ends[i - 1] = serial
        elif right:
            starts[i] = serial
        else:
            starts.insert(i, serial)
            ends.insert(i, serial)

    def advance(self, cumulative: int) -> int:
        """The new cumulative serial: runs up to it are dropped, one starting next joins it."""
        starts, ends = self.starts, self.ends
        while starts and starts[0] <= cumulative + 1:
            cumulative = max(cumulative, ends[0])
            del starts[0], ends[0]
        return cumulative


@dataclass(frozen=True)
class Received:
    """A whole message from the peer."""

    stream: int
    ppid: int
    data: bytes


@dataclass
class _Stream:
    next_ssn: int = 0
    fragments: dict[int, DataChunk] = field(default_factory=dict)  # by TSN
    waiting: dict[int, Received | None] = field(default_factory=dict)  # by SSN; None: skipped
    open_tsn: int = -1  # the last TSN of the message arriving in sequence on this stream
    open_bytes: int = 0
    discarding: bool = False  # the message arriving is too large: drop its fragments


class Inbound:
    """Receive state from the peer's initial TSN on; `accept` returns whole messages."""

    def __init__(
        self,
        initial_tsn: int,
        buffer_bytes: int,
        max_message_size: int,
        drops: collections.Counter[str],
    ) -> None:
        self._cumulative = initial_tsn - 1  # unwrapped: serial numbers only grow
        self.buffer_bytes = buffer_bytes
        self.max_message_size = max_message_size
        self.buffered = 0
        self._above = Ranges()
        self._duplicates: list[int] = []
        self._streams: dict[int, _Stream] = {}
        self.drops = drops

    @property
    def cumulative_tsn(self) -> int:
        return self._cumulative & 0xFFFFFFFF

    @property
    def window(self) -> int:
        return max(0, self.buffer_bytes - self.buffered)

    def accept(self, chunk: DataChunk) -> list[Received]:
        """Take one DATA chunk; the messages it completes, in the order to deliver them."""
        tsn = chunk.tsn
        ahead = (tsn - self._cumulative) & 0xFFFFFFFF
        serial = self._cumulative + ahead
        if not 0 < ahead < 0x80000000 or serial in self._above:
            if len(self._duplicates) < MAX_DUPLICATE_REPORTS:
                self._duplicates.append(tsn)
            self.drops["sctp_duplicate_tsn"] += 1
            return []
        if ahead > MAX_TSN_AHEAD:
            self.drops["sctp_beyond_window"] += 1
            return []
        if len(chunk.payload) > self.window and not self._completes_next(chunk):
            self.drops["sctp_receive_buffer_full"] += 1
            return []
        self._above.add(serial)
        self._cumulative = self._above.advance(self._cumulative)
        stream = self._streams.setdefault(chunk.stream, _Stream())
        if chunk.flags & (FLAG_BEGIN | FLAG_END) == FLAG_BEGIN | FLAG_END:
            stream.discarding = False
            return self._complete(stream, chunk, chunk.payload)
        return self._fragment(stream, chunk)

    def _completes_next(self, chunk: DataChunk) -> bool:
        """A whole message that is the next in order is taken even with the window shut: it
        leaves at once, and refusing it could leave the window shut for good."""
        stream = self._streams.get(chunk.stream)
        next_ssn = 0 if stream is None else stream.next_ssn
        whole = chunk.flags & (FLAG_BEGIN | FLAG_END) == FLAG_BEGIN | FLAG_END
        in_order = chunk.flags & FLAG_UNORDERED or chunk.ssn == next_ssn
        return whole and bool(in_order) and chunk.tsn == (self.cumulative_tsn + 1) & 0xFFFFFFFF

    def _fragment(self, stream: _Stream, chunk: DataChunk) -> list[Received]:
        tsn = chunk.tsn
        if chunk.flags & FLAG_BEGIN:
            stream.open_tsn, stream.open_bytes, stream.discarding = tsn, 0, False
        in_sequence = tsn == (stream.open_tsn + 1) & 0xFFFFFFFF or chunk.flags & FLAG_BEGIN
        if stream.discarding and in_sequence:
            stream.open_tsn = tsn
            if chunk.flags & FLAG_END:
                stream.discarding = False
                self._skip(stream, chunk)
            return []
        if in_sequence:
            stream.open_tsn = tsn
            stream.open_bytes += len(chunk.payload)
            if stream.open_bytes > self.max_message_size:
                self._refuse_open_message(stream, chunk)
                return []
        stream.fragments[tsn] = chunk
        self.buffered += len(chunk.payload)
        last = tsn
        while not stream.fragments[last].flags & FLAG_END:
            last = (last + 1) & 0xFFFFFFFF
            if last not in stream.fragments:
                return []
        first = tsn
        while not stream.fragments[first].flags & FLAG_BEGIN:
            first = (first - 1) & 0xFFFFFFFF
            if first not in stream.fragments:
                return []
        parts = []
        at = first
        while True:
            part = stream.fragments.pop(at)
            parts.append(part.payload)
            self.buffered -= len(part.payload)
            if at == last:
                break
            at = (at + 1) & 0xFFFFFFFF
        data = b"".join(parts)
        if len(data) > self.max_message_size:
            self.drops["sctp_message_too_large"] += 1
            self._skip(stream, chunk)
            return []
        return self._complete(stream, chunk, data)  # every fragment has the message's SSN

    def _refuse_open_message(self, stream: _Stream, chunk: DataChunk) -> None:
        """Throw away what arrived of a message grown past the largest we accept."""
        self.drops["sctp_message_too_large"] += 1
        at = (chunk.tsn - 1) & 0xFFFFFFFF
        while at in stream.fragments:
            part = stream.fragments.pop(at)
            self.buffered -= len(part.payload)
            if part.flags & FLAG_BEGIN:
                break
            at = (at - 1) & 0xFFFFFFFF
        stream.discarding = not chunk.flags & FLAG_END
        if not stream.discarding:
            self._skip(stream, chunk)

    def _skip(self, stream: _Stream, chunk: DataChunk) -> None:
        """An ordered message we will not deliver must not hold back the ones after it."""
        if not chunk.flags & FLAG_UNORDERED:
            self._complete(stream, chunk, None)

    def _complete(self, stream: _Stream, chunk: DataChunk, data: bytes | None) -> list[Received]:
        message = None if data is None else Received(chunk.stream, chunk.ppid, data)
        if chunk.flags & FLAG_UNORDERED:
            return [] if message is None else [message]
        if chunk.ssn != stream.next_ssn:
            if ssn_after(chunk.ssn, stream.next_ssn) and chunk.ssn not in stream.waiting:
                stream.waiting[chunk.ssn] = message
                self.buffered += 0 if data is None else len(data)
            return []
        stream.next_ssn = (stream.next_ssn + 1) & 0xFFFF
        out = [] if message is None else [message]
        return out + self._release(stream)

    def _release(self, stream: _Stream) -> list[Received]:
        out: list[Received] = []
        while stream.next_ssn in stream.waiting:
            message = stream.waiting.pop(stream.next_ssn)
            stream.next_ssn = (stream.next_ssn + 1) & 0xFFFF
            if message is not None:
                self.buffered -= len(message.data)
                out.append(message)
        return out

    def forward(self, new_cumulative: int, streams: list[tuple[int, int]]) -> list[Received]:
        """FORWARD-TSN: the peer gave up on everything up to `new_cumulative`."""
        ahead = (new_cumulative - self._cumulative) & 0xFFFFFFFF
        if not 0 < ahead < 0x80000000:
            return []
        if ahead > MAX_TSN_AHEAD:
            self.drops["sctp_beyond_window"] += 1
            return []
        self._cumulative = self._above.advance(self._cumulative + ahead)
        for stream in self._streams.values():
            stale = [t for t in stream.fragments if not tsn_after(t, self.cumulative_tsn)]
            for t in stale:
                self.buffered -= len(stream.fragments.pop(t).payload)
            if stale:
                stream.discarding = False
        out: list[Received] = []
        for number, ssn in streams:
            stream = self._streams.get(number)
            if stream is None or ssn_after(stream.next_ssn, ssn):
                continue
            for waiting_ssn in [s for s in stream.waiting if not ssn_after(s, ssn)]:
                message = stream.waiting.pop(waiting_ssn)
                self.buffered -= 0 if message is None else len(message.data)
            stream.next_ssn = (ssn + 1) & 0xFFFF
            out += self._release(stream)
        return out

    def reset(self, streams: tuple[int, ...]) -> None:
        """The peer reset these streams (all when empty): their next message has SSN 0."""
        for number in streams or tuple(self._streams):
            stream = self._streams.pop(number, None)
            if stream is not None:
                self.buffered -= sum(len(c.payload) for c in stream.fragments.values())
                self.buffered -= sum(len(m.data) for m in stream.waiting.values() if m)

    def sack_fields(self) -> tuple[int, int, list[tuple[int, int]], list[int]]:
        """(cumulative TSN, window, gap blocks, duplicate TSNs) for the next SACK; it takes
        the duplicates, which are reported once."""
        above, base = self._above, self._cumulative
        runs = zip(above.starts[:MAX_GAP_REPORTS], above.ends[:MAX_GAP_REPORTS], strict=True)
        gaps = [(start - base, end - base) for start, end in runs]
        duplicates, self._duplicates = self._duplicates, []
        return self.cumulative_tsn, self.window, gaps, duplicates

    @property
    def has_gaps(self) -> bool:
        return bool(self._above.starts)
