"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions).

Browsers estimate their send bandwidth from when each packet arrived here; without this
feedback a publisher's bitrate never leaves its starting point.
"""

from __future__ import annotations

import struct

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


def parse_feedback(body: bytes) -> tuple[int, list[int | None]]:
    """A transport-wide CC feedback's base sequence number and, for each packet from it on,
    its arrival in µs on the feedback's clock, or None if not received. `body` is what
    follows the sender SSRC; RtpError for anything malformed or over the bound."""
    if len(body) < 12:
        raise RtpError("transport-cc feedback too short")
    base, count, reference = struct.unpack_from("!HHI", body, 4)
    if count > MAX_FEEDBACK_STATUSES:
        raise RtpError(f"transport-cc feedback reports {count} packets")
    symbols: list[int] = []
    pos = 12
    while len(symbols) < count:
        if pos + 2 > len(body):
            raise RtpError("transport-cc status chunks run past the end")
        (chunk,) = struct.unpack_from("!H", body, pos)
        pos += 2
        if not chunk & 0x8000:  # run length: one symbol repeated
            symbols += [chunk >> 13 & 0x03] * min(chunk & 0x1FFF, count - len(symbols))
        elif chunk & 0x4000:  # seven 2-bit symbols
            symbols += [chunk >> (12 - 2 * i) & 0x03 for i in range(7)][: count - len(symbols)]
        else:  # fourteen 1-bit symbols
            symbols += [chunk >> (13 - i) & 0x01 for i in range(14)][: count - len(symbols)]
    arrival = (reference >> 8) * REFERENCE_US
    arrivals: list[int | None] = []
    for symbol in symbols:
        if symbol == 0:
            arrivals.append(None)
            continue
        size = 1 if symbol == 1 else 2
        if symbol == 3 or pos + size > len(body):
            raise RtpError("transport-cc receive deltas run past the end")
        delta = body[pos] if size == 1 else struct.unpack_from("!h", body, pos)[0]
        pos += size
        arrival += delta * TICK_US
        arrivals.append(arrival)
    return base, arrivals
