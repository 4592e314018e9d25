"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions).

Browsers estimate their send bandwidth from when each packet arrived here; without this
feedback a publisher's bitrate never leaves its starting point.
"""

from __future__ import annotations

import struct
from itertools import accumulate

from sfu.wire.rtp import RTCP_RTPFB, RtpError

FMT_TRANSPORT_CC = 15
TICK_US = 250  # receive deltas are in 250 µs units
REFERENCE_US = 64_000  # the reference time is in 64 ms units
MAX_STATUSES = 1000  # per feedback packet; older unreported packets are given up


class TwccRecorder:
    """Arrival times by transport-wide sequence number, turned into feedback packets."""

    def __init__(self) -> None:
        self._arrivals: dict[int, int] = {}  # extended sequence number -> arrival (µs)
        self._highest: int | None = None
        self._next_base: int | None = None
        self._feedback_count = 0
        self.feedback_sent = 0

    def record(self, seq: int, arrival_us: int) -> None:
        """Note one packet's transport-wide sequence number (16 bits, unwrapped here)."""
        highest = self._highest
        if highest is None:
            extended = seq
        else:
            delta = (seq - highest) & 0xFFFF
            extended = highest + delta if delta < 0x8000 else highest + delta - 0x10000
        if self._next_base is not None and extended < self._next_base:
            return  # already reported as lost; too late to matter
        if highest is None or extended > highest:
            self._highest = extended
        self._arrivals.setdefault(extended, arrival_us)

    def build(self, sender_ssrc: int, media_ssrc: int) -> bytes | None:
        """One feedback packet for everything since the last one, or None if nothing arrived."""
        if not self._arrivals or self._highest is None:
            return None
        base = min(self._arrivals) if self._next_base is None else self._next_base
        end = self._highest
        if end - base + 1 > MAX_STATUSES:
            base = end - MAX_STATUSES + 1
        # Deltas run in sequence order, so the reference is the first packet in that order.
        first_arrival = next(self._arrivals[s] for s in range(base, end + 1) if s in self._arrivals)
        reference = first_arrival // REFERENCE_US
        previous = reference * REFERENCE_US
        symbols: list[int] = []
        deltas = bytearray()
        last = base - 1
        for seq in range(base, end + 1):
            arrival = self._arrivals.get(seq)
            if arrival is None:
                symbols.append(0)
                last = seq
                continue
            ticks = round((arrival - previous) / TICK_US)
            if 0 <= ticks <= 0xFF:
                symbols.append(1)
                deltas.append(ticks)
            elif -0x8000 <= ticks <= 0x7FFF:
                symbols.append(2)
                deltas += struct.pack("!h", ticks)
            else:
                break  # the rest goes in the next packet, with its own reference time
            previous += ticks * TICK_US
            last = seq
        if last < base:
            return None
        chunks = bytearray()
        for start in range(0, len(symbols), 7):
            group = symbols[start : start + 7]
            word = 0xC000
            for position, symbol in enumerate(group):
                word |= symbol << (12 - 2 * position)
            chunks += struct.pack("!H", word)
        body = (
            struct.pack("!II", sender_ssrc, media_ssrc)
            + struct.pack("!HH", base & 0xFFFF, len(symbols))
            + struct.pack("!I", (reference & 0xFFFFFF) << 8 | self._feedback_count)
            + chunks
            + deltas
        )
        padding = -(len(body) + 4) % 4
        first = 0x80 | FMT_TRANSPORT_CC
        if padding:
            body += bytes(padding - 1) + bytes((padding,))
            first |= 0x20
        self._feedback_count = (self._feedback_count + 1) & 0xFF
        self.feedback_sent += 1
        for seq in [s for s in self._arrivals if s <= last]:
            del self._arrivals[seq]
        self._next_base = last + 1
        return struct.pack("!BBH", first, RTCP_RTPFB, (len(body) + 4) // 4 - 1) + body


MAX_FEEDBACK_STATUSES = 4096  # per feedback we read from a player; more is refused


def feedback_range(body: bytes) -> tuple[int, int]:
    """A transport-wide CC feedback's base sequence number and status count, from its header
    alone (nothing is decoded); RtpError if too short or over MAX_FEEDBACK_STATUSES."""
    if len(body) < 12:
        raise RtpError("transport-cc feedback too short")
    base, count = struct.unpack_from("!HH", body, 4)
    if count > MAX_FEEDBACK_STATUSES:
        raise RtpError(f"transport-cc feedback reports {count} packets")
    return base, count


# Status chunk decoding by table: a 1-bit vector is two 7-symbol halves, a 2-bit vector a
# 4-symbol high part and a 3-symbol low part; each a bytes of symbols, joined at C speed.
_ONE_BIT = tuple(bytes(v >> (6 - i) & 1 for i in range(7)) for v in range(128))
_TWO_BIT_HIGH = tuple(bytes(v >> (6 - 2 * i) & 3 for i in range(4)) for v in range(256))
_TWO_BIT_LOW = tuple(bytes(v >> (4 - 2 * i) & 3 for i in range(3)) for v in range(64))
_DELTA_FORMAT = bytes.maketrans(b"\x01\x02", b"Bh")  # symbol -> its receive delta's format


def parse_feedback(
    body: bytes, skip: int = 0, end: int = MAX_FEEDBACK_STATUSES
) -> tuple[int, list[int | None]]:
    """Statuses skip..end-1 of a transport-wide CC feedback: the sequence number of the first
    and, for each, its arrival in µs on the feedback's clock, or None if not received.

    `body` is what follows the sender SSRC; RtpError for anything malformed. Statuses past
    `end` are not decoded (their chunks are only stepped over to find the deltas), so the
    work is linear in `end` and in the body's length, whatever count the header claims;
    per status it is one step of a list comprehension, the rest runs in C."""
    base, count = feedback_range(body)
    end = min(end, count)
    (reference,) = struct.unpack_from("!I", body, 8)
    symbols = bytearray()  # of statuses 0..end-1
    covered = 0  # statuses the chunks read so far describe
    pos = 12
    while covered < count:
        if pos + 2 > len(body):
            raise RtpError("transport-cc status chunks run past the end")
        chunk = body[pos] << 8 | body[pos + 1]
        pos += 2
        if not chunk & 0x8000:  # run length: one symbol repeated
            run = chunk & 0x1FFF
            if covered < end:
                symbols += bytes((chunk >> 13 & 0x03,)) * min(run, end - covered)
            covered += run
        elif chunk & 0x4000:  # seven 2-bit symbols
            if covered < end:
                symbols += _TWO_BIT_HIGH[chunk >> 6 & 0xFF] + _TWO_BIT_LOW[chunk & 0x3F]
            covered += 7
        else:  # fourteen 1-bit symbols
            if covered < end:
                symbols += _ONE_BIT[chunk >> 7 & 0x7F] + _ONE_BIT[chunk & 0x7F]
            covered += 14
    del symbols[end:]  # a vector chunk's symbols past the end are padding
    if 3 in symbols:
        raise RtpError("transport-cc status symbol 3 is reserved")
    layout = "!" + symbols.replace(b"\x00", b"").translate(_DELTA_FORMAT).decode()
    if pos + struct.calcsize(layout) > len(body):
        raise RtpError("transport-cc receive deltas run past the end")
    ticks = accumulate(struct.unpack_from(layout, body, pos))
    start = (reference >> 8) * REFERENCE_US
    arrivals = [start + TICK_US * next(ticks) if symbol else None for symbol in symbols]
    return (base + skip) & 0xFFFF, arrivals[skip:]
