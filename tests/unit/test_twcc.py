"""TwccRecorder feedback checked by an independent transport-cc decoder.

The decoder follows draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1: base sequence
number, packet status count, 24-bit signed reference time in 64 ms, feedback packet count,
run-length and status-vector chunks, then 1-byte (unsigned) or 2-byte (signed) receive deltas
in 250 µs units, padded to 32 bits (with the RTCP P bit when the last byte counts padding).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

import pytest

from sfu.protocol.twcc import (
    MAX_FEEDBACK_STATUSES,
    MAX_STATUSES,
    TwccRecorder,
    feedback_range,
    parse_feedback,
)
from sfu.wire.rtp import RTCP_RTPFB, RtpError, split_rtcp

NOT_RECEIVED, SMALL, LARGE = 0, 1, 2


@dataclass
class Feedback:
    sender_ssrc: int
    media_ssrc: int
    base: int
    count: int
    reference_us: int
    fb_count: int
    arrivals: dict[int, int | None]  # 16-bit seq -> arrival (µs) or None when not received
    symbols: list[int]


def decode_chunks(data: bytes, pos: int, count: int) -> tuple[list[int], int]:
    """Status symbols from packet chunks at pos; returns (symbols, position after chunks)."""
    symbols: list[int] = []
    for _ in range(count):  # every chunk carries at least one status
        if len(symbols) >= count:
            break
        assert pos + 2 <= len(data), "chunks run past the packet"
        (chunk,) = struct.unpack_from("!H", data, pos)
        pos += 2
        if not chunk & 0x8000:  # run length chunk: T=0, S(2), run length(13)
            symbol = chunk >> 13 & 0x3
            run = chunk & 0x1FFF
            assert run > 0
            symbols += [symbol] * run
        elif chunk & 0x4000:  # status vector of seven 2-bit symbols
            symbols += [chunk >> (12 - 2 * i) & 0x3 for i in range(7)]
        else:  # status vector of fourteen 1-bit symbols
            symbols += [chunk >> (13 - i) & 0x1 for i in range(14)]
    assert len(symbols) >= count
    return symbols[:count], pos


def decode(packet: bytes) -> Feedback:
    """One transport-cc feedback packet; asserts on anything malformed."""
    assert len(packet) % 4 == 0
    first, packet_type, length = struct.unpack_from("!BBH", packet)
    assert first >> 6 == 2
    assert first & 0x1F == 15
    assert packet_type == RTCP_RTPFB
    assert (length + 1) * 4 == len(packet)
    end = len(packet)
    if first & 0x20:
        padding = packet[-1]
        assert 1 <= padding <= 3
        assert packet[end - padding : end - 1] == bytes(padding - 1)
        end -= padding
    sender, media, base, count, ref_word = struct.unpack_from("!IIHHI", packet, 4)
    reference = ref_word >> 8
    if reference & 0x800000:
        reference -= 0x1000000
    symbols, pos = decode_chunks(packet, 20, count)
    assert 3 not in symbols, "reserved status symbol"
    arrivals: dict[int, int | None] = {}
    clock = reference * 64_000
    for index, symbol in enumerate(symbols):
        seq = (base + index) & 0xFFFF
        if symbol == NOT_RECEIVED:
            arrivals[seq] = None
            continue
        if symbol == SMALL:
            delta = packet[pos]
            pos += 1
        else:
            (delta,) = struct.unpack_from("!h", packet, pos)
            pos += 2
        assert pos <= end, "deltas run past the packet"
        clock += delta * 250
        arrivals[seq] = clock
    assert end - pos < 4 and packet[pos:end] == bytes(end - pos), "junk after the deltas"
    return Feedback(
        sender, media, base, count, reference * 64_000, ref_word & 0xFF, arrivals, symbols
    )


def build(recorder: TwccRecorder) -> Feedback:
    data = recorder.build(0x5E5E5E5E, 0x3D3D3D3D)
    assert data is not None
    (packet,) = split_rtcp(data)  # the SFU's own parser accepts it too
    assert packet.packet_type == RTCP_RTPFB
    feedback = decode(data)
    assert (feedback.sender_ssrc, feedback.media_ssrc) == (0x5E5E5E5E, 0x3D3D3D3D)
    return feedback


def check(feedback: Feedback, arrivals: dict[int, int], lost: set[int]) -> None:
    """Every received packet decodes within rounding of its arrival; the lost ones as lost."""
    assert {s for s, t in feedback.arrivals.items() if t is None} == lost
    decoded = {s: t for s, t in feedback.arrivals.items() if t is not None}
    assert set(decoded) == set(arrivals)
    for seq, arrival in arrivals.items():
        assert abs(decoded[seq] - arrival) <= 125, (seq, decoded[seq], arrival)


def test_pattern_of_received_and_lost() -> None:
    recorder = TwccRecorder()
    arrivals = {}
    base_time = 5_000_321
    for seq in range(20):
        if seq in (3, 7, 8):
            continue
        arrivals[seq] = base_time + seq * 1_130 + (seq % 3) * 77
    arrivals[12] += 90_000  # a 90 ms hiccup: needs a 2-byte delta
    arrivals[13] += 90_000
    arrivals[15] = arrivals[14] - 3_000  # reordered: arrives before 14 (negative delta)
    for seq in sorted(arrivals, key=lambda s: arrivals[s]):
        recorder.record(seq, arrivals[seq])
    feedback = build(recorder)
    assert (feedback.base, feedback.count, feedback.fb_count) == (0, 20, 0)
    check(feedback, arrivals, {3, 7, 8})
    assert feedback.symbols[12] == LARGE
    assert feedback.symbols[15] == LARGE
    assert feedback.symbols[1] == SMALL
    assert feedback.reference_us <= min(arrivals.values()) < feedback.reference_us + 64_000
    assert recorder.feedback_sent == 1


def test_nothing_recorded_gives_none() -> None:
    recorder = TwccRecorder()
    assert recorder.build(1, 2) is None
    recorder.record(10, 1000)
    build(recorder)
    assert recorder.build(1, 2) is None


def test_consecutive_feedback_continues() -> None:
    recorder = TwccRecorder()
    first = {seq: 100_000 + 2_000 * seq for seq in range(10)}
    for seq, t in first.items():
        recorder.record(seq, t)
    one = build(recorder)
    check(one, first, set())
    second = {seq: 100_000 + 2_000 * seq for seq in range(12, 18)}
    for seq, t in second.items():
        recorder.record(seq, t)
    recorder.record(4, 999_999)  # already reported: ignored
    two = build(recorder)
    assert (two.base, two.count, two.fb_count) == (10, 8, 1)
    check(two, second, {10, 11})
    recorder.record(18, 200_000)
    three = build(recorder)
    assert (three.base, three.count, three.fb_count) == (18, 1, 2)


def test_packet_reported_lost_is_not_reported_again() -> None:
    recorder = TwccRecorder()
    recorder.record(0, 1000)
    recorder.record(2, 3000)
    check(build(recorder), {0: 1000, 2: 3000}, {1})
    recorder.record(1, 4000)  # too late
    recorder.record(3, 5000)
    feedback = build(recorder)
    assert (feedback.base, feedback.count) == (3, 1)
    check(feedback, {3: 5000}, set())


def test_feedback_count_wraps_at_256() -> None:
    recorder = TwccRecorder()
    counts = []
    for seq in range(260):
        recorder.record(seq, 1000 * seq)
        counts.append(build(recorder).fb_count)
    assert counts == [i & 0xFF for i in range(260)]


def test_sequence_wrap_within_one_feedback() -> None:
    recorder = TwccRecorder()
    arrivals = {seq & 0xFFFF: 10_000 + 500 * i for i, seq in enumerate(range(65530, 65542))}
    for seq, t in arrivals.items():
        recorder.record(seq, t)
    feedback = build(recorder)
    assert (feedback.base, feedback.count) == (65530, 12)
    check(feedback, arrivals, set())


def test_sequence_wrap_across_feedback() -> None:
    recorder = TwccRecorder()
    for seq in range(65528, 65536):
        recorder.record(seq, seq)
    one = build(recorder)
    assert (one.base, one.count) == (65528, 8)
    arrivals = {0: 70_000, 1: 70_250, 3: 71_000}
    for seq, t in arrivals.items():
        recorder.record(seq, t)
    two = build(recorder)
    assert (two.base, two.count, two.fb_count) == (0, 4, 1)
    check(two, arrivals, {2})


def test_large_gap_in_one_feedback() -> None:
    recorder = TwccRecorder()
    arrivals = {seq: 1_000 * seq for seq in [*range(5), *range(600, 605)]}
    for seq, t in arrivals.items():
        recorder.record(seq, t)
    feedback = build(recorder)
    assert (feedback.base, feedback.count) == (0, 605)
    check(feedback, arrivals, set(range(5, 600)))


def test_gap_beyond_max_statuses() -> None:
    recorder = TwccRecorder()
    for seq in range(5):
        recorder.record(seq, 1_000 * seq)
    later = {seq: 2_000_000 + 1_000 * seq for seq in range(5000, 5005)}
    for seq, t in later.items():
        recorder.record(seq, t)
    feedback = build(recorder)
    assert feedback.count <= MAX_STATUSES
    assert (feedback.base + feedback.count - 1) & 0xFFFF == 5004
    decoded = {s: t for s, t in feedback.arrivals.items() if t is not None}
    assert set(decoded) == set(later)
    for seq, t in later.items():
        assert abs(decoded[seq] - t) <= 125


def test_arrival_gap_too_long_for_one_packet() -> None:
    """Deltas beyond ±8.19 s cannot be coded: the rest goes in a packet of its own."""
    recorder = TwccRecorder()
    recorder.record(0, 1_000_000)
    recorder.record(1, 11_000_000)
    one = build(recorder)
    assert (one.base, one.count) == (0, 1)
    check(one, {0: 1_000_000}, set())
    two = build(recorder)
    assert (two.base, two.count, two.fb_count) == (1, 1, 1)
    check(two, {1: 11_000_000}, set())


@pytest.mark.parametrize("packets", [1, 2, 3, 4, 5, 6, 7, 8, 13, 14, 15, 29, 30, 31, 100])
def test_length_field_and_padding(packets: int) -> None:
    recorder = TwccRecorder()
    arrivals = {seq: 64_000 * 3 + 300 * seq for seq in range(packets)}
    for seq, t in arrivals.items():
        recorder.record(seq, t)
    data = recorder.build(1, 2)
    assert data is not None
    assert len(data) % 4 == 0
    assert (struct.unpack_from("!H", data, 2)[0] + 1) * 4 == len(data)
    check(decode(data), arrivals, set())


def test_old_packet_received_very_late_does_not_stall_feedback() -> None:
    recorder = TwccRecorder()
    recorder.record(1, 0)
    recorder.record(0, 10_000_000)  # seq 0 held back 10 s in the network
    reported: set[int] = set()
    for step in range(5):
        recorder.record(2 + step, 10_020_000 + 20_000 * step)
        data = recorder.build(1, 2)
        if data is not None:
            reported |= set(decode(data).arrivals)
    assert {2, 3, 4, 5, 6} <= reported


def random_feedback(rng: random.Random) -> tuple[bytes, list[int | None]]:
    """A feedback body (after the sender SSRC) mixing all three chunk kinds, 1- and 2-byte
    deltas and losses, and the arrivals it means, built apart from the SFU's encoder."""
    count = rng.randint(1, 300)
    symbols = [rng.choice((NOT_RECEIVED, SMALL, SMALL, LARGE)) for _ in range(count)]
    chunks = bytearray()
    index = 0
    while index < count:
        kind = rng.choice(("run", "one-bit", "two-bit"))
        if kind == "run":
            run = 1
            while index + run < count and symbols[index + run] == symbols[index] and run < 40:
                run += 1
            chunks += struct.pack("!H", symbols[index] << 13 | run)
            index += run
        elif kind == "one-bit" and LARGE not in symbols[index : index + 14]:
            group = symbols[index : index + 14]
            chunks += struct.pack("!H", 0x8000 | sum(s << (13 - i) for i, s in enumerate(group)))
            index += 14
        else:
            group = symbols[index : index + 7]
            chunks += struct.pack(
                "!H", 0xC000 | sum(s << (12 - 2 * i) for i, s in enumerate(group))
            )
            index += 7
    deltas = bytearray()
    arrivals: list[int | None] = []
    clock = 3 * 64_000
    for symbol in symbols:
        if symbol == NOT_RECEIVED:
            arrivals.append(None)
            continue
        delta = rng.randint(0, 255) if symbol == SMALL else rng.randint(-0x8000, 0x7FFF)
        deltas += bytes((delta,)) if symbol == SMALL else struct.pack("!h", delta)
        clock += delta * 250
        arrivals.append(clock)
    head = struct.pack("!IHHI", 0x3D3D3D3D, 65500, count, 3 << 8 | 7)
    return head + bytes(chunks) + bytes(deltas), arrivals


def test_parse_feedback_matches_an_independent_encoding_and_slices() -> None:
    rng = random.Random(7)
    for _ in range(200):
        body, arrivals = random_feedback(rng)
        assert parse_feedback(body) == (65500, arrivals)
        skip = rng.randint(0, len(arrivals))
        end = rng.randint(skip, len(arrivals) + 5)
        first, part = parse_feedback(body, skip, end)
        assert (first, part) == ((65500 + skip) & 0xFFFF, arrivals[skip:end])


def test_parse_feedback_decodes_only_up_to_end() -> None:
    """4,096 statuses claimed in one run-length chunk; asked for 10, it makes 10."""
    body = struct.pack("!IHHI", 1, 100, MAX_FEEDBACK_STATUSES, 0) + struct.pack("!H", 4096)
    assert parse_feedback(body, 2, 10) == (102, [None] * 8)
    assert feedback_range(body) == (100, MAX_FEEDBACK_STATUSES)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (struct.pack("!IHH", 1, 0, 1), "too short"),
        (struct.pack("!IHHI", 1, 0, 0xFFFF, 0), "reports 65535 packets"),
        (struct.pack("!IHHI", 1, 0, 100, 0) + struct.pack("!H", 50), "chunks run past"),
        (struct.pack("!IHHI", 1, 0, 14, 0) + b"\xbf\xff" + bytes(13), "deltas run past"),
        (struct.pack("!IHHI", 1, 0, 1, 0) + b"\xe0\x00\x01", "deltas run past"),  # 2 bytes: 1
        (struct.pack("!IHHI", 1, 0, 1, 0) + b"\xf0\x00" + bytes(4), "reserved"),
    ],
)
def test_malformed_feedback_is_refused(body: bytes, error: str) -> None:
    with pytest.raises(RtpError, match=error):
        parse_feedback(body)
