"""RTP header helpers and RTCP builders/parsers of sfu/wire/rtp.py, with hand-built packets."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.wire import rtp
from sfu.wire.rtp import ReportBlock, RtcpPacket, RtpError


def rtp_packet(
    seq: int = 1,
    ts: int = 0,
    ssrc: int = 0x01020304,
    pt: int = 96,
    marker: bool = False,
    payload: bytes = b"payload!",
    csrcs: tuple[int, ...] = (),
    ext: tuple[int, bytes] | None = None,
    padding: int = 0,
) -> bytes:
    """An RTP packet built field by field; ext is (profile, element bytes before 32-bit pad)."""
    first = 0x80 | len(csrcs)
    if ext is not None:
        first |= 0x10
    if padding:
        first |= 0x20
    out = bytes([first, (0x80 if marker else 0) | pt]) + struct.pack("!HII", seq, ts, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrcs)
    if ext is not None:
        profile, data = ext
        data += bytes(-len(data) % 4)
        out += struct.pack("!HH", profile, len(data) // 4) + data
    out += payload
    if padding:
        out += bytes(padding - 1) + bytes([padding])
    return out


def rtcp(packet_type: int, count: int, ssrc: int, body: bytes) -> bytes:
    """One RTCP packet with a correct length field (body must be a multiple of 4 bytes)."""
    assert len(body) % 4 == 0
    return struct.pack("!BBHI", 0x80 | count, packet_type, 1 + len(body) // 4, ssrc) + body


# --- RTP headers ---------------------------------------------------------------------------


def test_is_rtcp_boundaries() -> None:
    assert not rtp.is_rtcp(bytes([0x80, 191]))
    assert rtp.is_rtcp(bytes([0x80, 192]))
    assert rtp.is_rtcp(bytes([0x80, 200]))
    assert rtp.is_rtcp(bytes([0x80, 223]))
    assert not rtp.is_rtcp(bytes([0x80, 0x80 | 96]))  # marker + PT 96 = 224
    assert not rtp.is_rtcp(b"\x80")


@pytest.mark.parametrize(
    ("csrcs", "ext", "expected"),
    [
        ((), None, 12),
        ((1, 2), None, 20),
        ((), (0xBEDE, b"\x10\xaa"), 12 + 4 + 4),
        ((), (0xBEDE, bytes(5)), 12 + 4 + 8),
        ((7,), (0x1000, b"\x01\x02\xaa\xbb"), 16 + 4 + 4),
        (tuple(range(15)), (0xBEDE, b""), 12 + 60 + 4),
    ],
)
def test_header_length_and_payload_bounds(
    csrcs: tuple[int, ...], ext: tuple[int, bytes] | None, expected: int
) -> None:
    packet = rtp_packet(csrcs=csrcs, ext=ext, payload=b"0123456789")
    assert rtp.header_length(packet) == expected
    start, end = rtp.payload_bounds(packet)
    assert (start, end) == (expected, expected + 10)
    assert packet[start:end] == b"0123456789"


def test_payload_bounds_excludes_padding() -> None:
    packet = rtp_packet(payload=b"abcdef", padding=5, csrcs=(9,))
    start, end = rtp.payload_bounds(packet)
    assert packet[start:end] == b"abcdef"
    assert len(packet) - end == 5


def test_payload_bounds_padding_longer_than_payload() -> None:
    packet = bytearray(rtp_packet(payload=b"ab", padding=2))
    packet[-1] = 9  # claims 9 bytes of padding, only 4 after the header
    with pytest.raises(RtpError):
        rtp.payload_bounds(bytes(packet))


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        b"\x80\x60" + bytes(9),  # 11 bytes
        b"\x40\x60" + bytes(10),  # version 1
        b"\x00\x60" + bytes(10),  # version 0
        b"\x82\x60" + bytes(10) + bytes(4),  # 2 CSRCs announced, 1 present
        b"\x90\x60" + bytes(10) + b"\xbe\xde",  # extension header cut short
        b"\x90\x60" + bytes(10) + b"\xbe\xde\x00\x02" + bytes(4),  # extension body cut short
    ],
)
def test_header_length_rejects_truncated(packet: bytes) -> None:
    with pytest.raises(RtpError):
        rtp.header_length(packet)


def test_strip_extensions_keeps_header_and_payload() -> None:
    packet = rtp_packet(
        seq=4242,
        ts=0xDEADBEEF,
        marker=True,
        csrcs=(0xCAFEBABE,),
        ext=(0xBEDE, b"\x22\x01\x02\x03\x51\x99"),
        payload=b"the payload",
        padding=3,
    )
    stripped = rtp.strip_extensions(packet)
    assert not stripped[0] & 0x10
    assert stripped[0] | 0x10 == packet[0]  # V, P and CC untouched
    assert stripped[1:16] == packet[1:16]  # marker/PT, seq, ts, SSRC, the CSRC
    assert rtp.header_length(stripped) == 16
    start, end = rtp.payload_bounds(stripped)
    assert stripped[start:end] == b"the payload"
    assert stripped[end:] == packet[-3:]
    assert len(packet) - len(stripped) == 4 + 8
    assert rtp.parse_extensions(stripped) == {}


def test_strip_extensions_without_extension_is_identity() -> None:
    packet = rtp_packet(csrcs=(1,))
    assert rtp.strip_extensions(packet) == packet


def test_parse_one_byte_extensions() -> None:
    # id 1 len 1, a padding byte, id 3 len 3, id 2 len 2; then id 15 stops parsing.
    elements = b"\x10\x07" + b"\x00" + b"\x32abc" + b"\x21\x01\x02" + b"\xf0" + b"\x41zz"
    packet = rtp_packet(ext=(0xBEDE, elements))
    assert rtp.parse_extensions(packet) == {1: b"\x07", 3: b"abc", 2: b"\x01\x02"}
    assert rtp.find_extension(packet, 3) == b"abc"
    assert rtp.find_extension(packet, 4) is None
    assert rtp.find_extension(packet, 0) is None


def test_parse_two_byte_extensions() -> None:
    # id 5 empty, padding, id 200 with 3 bytes, id 16 with 17 bytes (too long for one-byte form)
    elements = b"\x05\x00" + b"\x00" + b"\xc8\x03xyz" + b"\x10\x11" + bytes(range(17))
    packet = rtp_packet(ext=(0x1000, elements), csrcs=(3, 4))
    found = rtp.parse_extensions(packet)
    assert found == {5: b"", 200: b"xyz", 16: bytes(range(17))}
    assert rtp.find_extension(packet, 200) == b"xyz"
    # the appbits nibble of the two-byte profile is ignored
    assert rtp.parse_extensions(rtp_packet(ext=(0x100F, elements))) == found


def test_parse_extensions_unknown_profile_and_none() -> None:
    assert rtp.parse_extensions(rtp_packet(ext=(0xABCD, b"\x10\x07"))) == {}
    assert rtp.parse_extensions(rtp_packet()) == {}
    assert rtp.find_extension(rtp_packet(), 1) is None


def test_extension_elements_locate_values_and_find_agrees_with_parse() -> None:
    """The one-pass scan gives each element's bounds; a repeated ID resolves to its last value
    in both lookups, and an element running past its block makes find_extension None."""
    elements = b"\x10\x07" + b"\x11ab" + b"\x00"  # id 1 twice (1 byte, then 2 bytes)
    packet = rtp_packet(ext=(0xBEDE, elements))
    assert list(rtp.extension_elements(packet)) == [(1, 17, 18), (1, 19, 21)]
    assert rtp.find_extension(packet, 1) == rtp.parse_extensions(packet)[1] == b"ab"
    broken = rtp_packet(ext=(0xBEDE, b"\x10\x07\x2f\x00"))  # id 2 claims 16 bytes
    assert rtp.find_extension(broken, 1) is None
    with pytest.raises(RtpError):
        list(rtp.extension_elements(broken))


def test_find_extension_on_truncated_packet_is_none() -> None:
    packet = rtp_packet(ext=(0xBEDE, b"\x10\x07\x00\x00"), payload=b"")
    assert rtp.find_extension(packet, 1) == b"\x07"
    assert rtp.find_extension(packet[:-2], 1) is None


@pytest.mark.parametrize(
    "call",
    [
        lambda: rtp.find_extension(b"", 1),
        lambda: rtp.parse_extensions(b""),
        lambda: rtp.strip_extensions(b""),
    ],
    ids=["find_extension", "parse_extensions", "strip_extensions"],
)
def test_empty_packet_never_raises_index_error(call) -> None:
    try:
        result = call()
    except RtpError:
        return
    assert result in (None, {}, b"")


# --- RTCP ----------------------------------------------------------------------------------


def test_pli_bytes() -> None:
    assert rtp.pli(0x01020304, 0xA0B0C0D0) == bytes.fromhex("81ce000201020304a0b0c0d0")
    (packet,) = rtp.split_rtcp(rtp.pli(7, 9))
    assert (packet.packet_type, packet.fmt, packet.ssrc) == (rtp.RTCP_PSFB, rtp.FMT_PLI, 7)
    assert rtp.feedback_media_ssrc(packet) == 9


def test_split_compound_rtcp() -> None:
    block = ReportBlock(0x55, 3, 17, 70000, 12, 0xAABBCCDD, 655)
    compound = (
        rtp.sender_report(0x11, 1 << 40, 1234, 10, 1000)
        + rtp.receiver_report(0x22, [block])
        + rtcp(rtp.RTCP_SDES, 1, 0x33, b"\x01\x03abc\x00\x00\x00")
        + rtp.pli(0x44, 0x11)
        + rtp.nack(0x44, 0x11, [5, 6, 40])
    )
    packets = rtp.split_rtcp(compound)
    assert [(p.packet_type, p.fmt, p.ssrc) for p in packets] == [
        (rtp.RTCP_SR, 0, 0x11),
        (rtp.RTCP_RR, 1, 0x22),
        (rtp.RTCP_SDES, 1, 0x33),
        (rtp.RTCP_PSFB, rtp.FMT_PLI, 0x44),
        (rtp.RTCP_RTPFB, rtp.FMT_NACK, 0x44),
    ]
    assert [len(p.body) for p in packets] == [20, 24, 8, 4, 4 + 8]
    assert rtp.report_blocks(packets[1]) == [block]
    assert sorted(rtp.nack_sequence_numbers(packets[4])) == [5, 6, 40]
    assert rtp.split_rtcp(b"") == []


@pytest.mark.parametrize(
    "datagram",
    [
        rtp.pli(1, 2)[:-1],  # length runs past the end
        rtp.pli(1, 2) + rtp.pli(1, 2)[:10],  # second packet cut short
        rtp.pli(1, 2) + b"\x80\xc9\x00\x00",  # 4 trailing bytes
        b"\x81\xce\x00\x09" + bytes(8),  # length field says 40 bytes, 12 present
        b"\x41\xce\x00\x02" + bytes(8),  # version 1
        rtp.pli(1, 2) + b"\x01\xce\x00\x02" + bytes(8),  # version 0 in the second
        b"\x80",
    ],
)
def test_split_rtcp_bad_lengths(datagram: bytes) -> None:
    with pytest.raises(RtpError):
        rtp.split_rtcp(datagram)


def nack_round_trip(numbers: list[int]) -> tuple[list[int], int]:
    """(sequence numbers parsed back, number of PID+BLP entries) of rtp.nack(numbers)."""
    data = rtp.nack(0xAAAA, 0xBBBB, numbers)
    (packet,) = rtp.split_rtcp(data)
    assert (packet.packet_type, packet.fmt, packet.ssrc) == (rtp.RTCP_RTPFB, rtp.FMT_NACK, 0xAAAA)
    assert rtp.feedback_media_ssrc(packet) == 0xBBBB
    return rtp.nack_sequence_numbers(packet), (len(data) - 12) // 4


def test_nack_single_entry() -> None:
    numbers, entries = nack_round_trip([100])
    assert (numbers, entries) == ([100], 1)
    numbers, entries = nack_round_trip(list(range(100, 117)))  # PID + all 16 BLP bits
    assert (sorted(numbers), entries) == (list(range(100, 117)), 1)


def test_nack_wraps_at_65535() -> None:
    numbers, entries = nack_round_trip([65533, 65535, 0, 1, 10])
    assert entries == 1
    assert numbers == [65533, 65535, 0, 1, 10]


def test_nack_gap_larger_than_16_starts_a_new_entry() -> None:
    numbers, entries = nack_round_trip([100, 117, 118, 200])
    assert entries == 3
    assert sorted(numbers) == [100, 117, 118, 200]
    numbers, entries = nack_round_trip(list(range(0, 34)))
    assert (sorted(numbers), entries) == (list(range(34)), 2)


def test_nack_parse_hand_built() -> None:
    fci = struct.pack("!HH", 65534, 0b1000_0000_0000_0101) + struct.pack("!HH", 7, 0)
    (packet,) = rtp.split_rtcp(rtcp(rtp.RTCP_RTPFB, 1, 1, struct.pack("!I", 2) + fci))
    assert rtp.nack_sequence_numbers(packet) == [65534, 65535, 1, 14, 7]


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=80))
def test_nack_round_trip_property(numbers: list[int]) -> None:
    parsed, entries = nack_round_trip(numbers)
    assert sorted(parsed) == sorted(set(numbers))
    assert entries <= len(set(numbers))


def test_sender_report_round_trip() -> None:
    ntp = 0xE1234567_89ABCDEF
    data = rtp.sender_report(0x01020304, ntp, 0x1_0000_0005, 77, 0x1_0000_0010)
    assert len(data) == 28
    assert data[:4] == b"\x80\xc8\x00\x06"
    (packet,) = rtp.split_rtcp(data)
    assert packet.ssrc == 0x01020304
    assert rtp.parse_sender_info(packet) == (ntp, 5)  # the RTP timestamp wraps to 32 bits
    assert struct.unpack_from("!II", packet.body, 12) == (77, 0x10)
    assert rtp.report_blocks(packet) == []


def test_sender_report_with_report_block() -> None:
    sender_info = struct.pack("!QIII", 0x1122334455667788, 90000, 5, 500)
    block = struct.pack("!IIIIII", 0x99, 0x40FFFFFE, 0x0001_0010, 33, 0x33445566, 0x8000)
    (packet,) = rtp.split_rtcp(rtcp(rtp.RTCP_SR, 1, 0x77, sender_info + block))
    assert rtp.parse_sender_info(packet) == (0x1122334455667788, 90000)
    assert rtp.report_blocks(packet) == [
        ReportBlock(0x99, 0x40, -2, 0x10010, 33, 0x33445566, 0x8000)
    ]


def test_short_sender_report() -> None:
    with pytest.raises(RtpError):
        rtp.parse_sender_info(RtcpPacket(rtp.RTCP_SR, 0, 1, bytes(19)))


def test_receiver_report_round_trip() -> None:
    blocks = [
        ReportBlock(1, 0, 0, 0, 0, 0, 0),
        ReportBlock(0xFFFFFFFF, 255, -5, 0x0003_FFFF, 4000, 0xDEADBEEF, 65536),
        ReportBlock(3, 25, 0x7FFFFF, 1, 2, 3, 4),
        ReportBlock(4, 1, -0x800000, 1, 2, 3, 4),
    ]
    data = rtp.receiver_report(0xABCDEF01, blocks)
    assert len(data) == 8 + 24 * len(blocks)
    (packet,) = rtp.split_rtcp(data)
    assert (packet.packet_type, packet.fmt, packet.ssrc) == (rtp.RTCP_RR, 4, 0xABCDEF01)
    assert rtp.report_blocks(packet) == blocks
    # cumulative lost -5 is 24-bit two's complement on the wire
    assert data[8 + 24 + 5 : 8 + 24 + 8] == b"\xff\xff\xfb"


def test_receiver_report_caps_at_31_blocks() -> None:
    blocks = [ReportBlock(i, 0, i, i, 0, 0, 0) for i in range(40)]
    (packet,) = rtp.split_rtcp(rtp.receiver_report(1, blocks))
    assert rtp.report_blocks(packet) == blocks[:31]


def test_empty_receiver_report() -> None:
    data = rtp.receiver_report(5, [])
    assert data == b"\x80\xc9\x00\x01\x00\x00\x00\x05"


def test_report_block_past_end() -> None:
    with pytest.raises(RtpError):
        rtp.report_blocks(RtcpPacket(rtp.RTCP_RR, 2, 1, bytes(24)))
    assert rtp.report_blocks(RtcpPacket(rtp.RTCP_PSFB, 2, 1, b"")) == []


def remb(bitrate_exp: int, mantissa: int, ssrcs: list[int]) -> bytes:
    """A REMB (draft-alvestrand-rmcat-remb) built by hand."""
    body = struct.pack("!I", 0) + b"REMB"
    body += bytes([len(ssrcs), bitrate_exp << 2 | mantissa >> 16]) + struct.pack(
        "!H", mantissa & 0xFFFF
    )
    body += b"".join(struct.pack("!I", s) for s in ssrcs)
    return rtcp(rtp.RTCP_PSFB, 15, 0x1234, body)


def test_remb_bitrate() -> None:
    (packet,) = rtp.split_rtcp(remb(3, 187500, [0xAA, 0xBB]))
    assert rtp.remb_bitrate(packet) == 1_500_000
    (packet,) = rtp.split_rtcp(remb(0, 0x3FFFF, [1]))
    assert rtp.remb_bitrate(packet) == 0x3FFFF
    (packet,) = rtp.split_rtcp(remb(20, 0x20001, [1]))
    assert rtp.remb_bitrate(packet) == 0x20001 << 20


def test_remb_bitrate_other_packets() -> None:
    (packet,) = rtp.split_rtcp(rtp.pli(1, 2))
    assert rtp.remb_bitrate(packet) is None
    not_remb = RtcpPacket(rtp.RTCP_PSFB, 15, 1, bytes(4) + b"ABCD" + bytes(8))
    assert rtp.remb_bitrate(not_remb) is None
    with pytest.raises(RtpError):
        rtp.remb_bitrate(RtcpPacket(rtp.RTCP_PSFB, 15, 1, bytes(4) + b"REMB\x01\x00"))


def test_fir_targets() -> None:
    fci = struct.pack("!IB3x", 0x1111, 1) + struct.pack("!IB3x", 0x2222, 9)
    (packet,) = rtp.split_rtcp(rtcp(rtp.RTCP_PSFB, rtp.FMT_FIR, 5, bytes(4) + fci))
    assert packet.fmt == rtp.FMT_FIR
    assert rtp.fir_targets(packet) == [0x1111, 0x2222]
    assert rtp.fir_targets(RtcpPacket(rtp.RTCP_PSFB, 4, 5, bytes(4) + fci[:12])) == [0x1111]


def test_feedback_without_media_ssrc() -> None:
    with pytest.raises(RtpError):
        rtp.feedback_media_ssrc(RtcpPacket(rtp.RTCP_PSFB, 1, 1, b"\x00\x01"))


# --- robustness: arbitrary bytes raise RtpError or nothing ---------------------------------

rtp_like = st.builds(
    lambda first, rest: bytes([first]) + rest,
    st.sampled_from([0x80, 0x90, 0xA0, 0xB0, 0x8F, 0x9F, 0xBF, 0x00, 0x50]),
    st.binary(max_size=100),
)


def rtp_parsers(packet: bytes) -> None:
    for parser in (rtp.header_length, rtp.payload_bounds, rtp.strip_extensions):
        with contextlib.suppress(RtpError):
            parser(packet)
    with contextlib.suppress(RtpError):
        rtp.parse_extensions(packet)
    for ext_id in (0, 1, 5, 15, 200):
        rtp.find_extension(packet, ext_id)


@settings(max_examples=400)
@given(st.one_of(rtp_like, st.binary(min_size=1, max_size=100)))
def test_rtp_parsers_only_raise_rtp_error(packet: bytes) -> None:
    rtp_parsers(packet)


def rtcp_parsers(packet: RtcpPacket) -> None:
    for parser in (
        rtp.feedback_media_ssrc,
        rtp.fir_targets,
        rtp.nack_sequence_numbers,
        rtp.parse_sender_info,
        rtp.report_blocks,
        rtp.remb_bitrate,
    ):
        with contextlib.suppress(RtpError):
            parser(packet)


@settings(max_examples=400)
@given(st.binary(max_size=120))
def test_rtcp_parsers_only_raise_rtp_error(datagram: bytes) -> None:
    try:
        packets = rtp.split_rtcp(datagram)
    except RtpError:
        return
    for packet in packets:
        rtcp_parsers(packet)


@settings(max_examples=400)
@given(
    st.sampled_from([rtp.RTCP_SR, rtp.RTCP_RR, rtp.RTCP_RTPFB, rtp.RTCP_PSFB, 0]),
    st.integers(0, 31),
    st.binary(max_size=80),
)
def test_rtcp_parsers_on_any_body(packet_type: int, fmt: int, body: bytes) -> None:
    rtcp_parsers(RtcpPacket(packet_type, fmt, 1, body))
    # REMB-shaped bodies of every length
    rtcp_parsers(RtcpPacket(rtp.RTCP_PSFB, 15, 1, body[:4].ljust(4, b"\0") + b"REMB" + body[4:]))
