"""RTP and RTCP wire formats (RFC 3550, RFC 4585, RFC 5104): just the fields an SFU touches.

Forwarding rewrites fixed header fields in place, so the RTP side here is about locating parts of
a packet; RTCP is parsed into small tuples because only feedback and sender reports matter.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_RTPFB = 205  # transport-layer feedback: FMT 1 = generic NACK, 15 = transport-wide CC
RTCP_PSFB = 206  # payload-specific feedback: FMT 1 = PLI, 4 = FIR, 15 = application (REMB)

FMT_NACK = 1
FMT_PLI = 1
FMT_FIR = 4

_RTCP_HEADER = struct.Struct("!BBH")
_SSRC_PAIR = struct.Struct("!II")


class RtpError(ValueError):
    """A packet too short or inconsistent to be RTP/RTCP."""


def is_rtcp(packet: bytes) -> bool:
    """RFC 5761 §4: with rtcp-mux, RTCP packet types 192-223 sit where RTP's marker+PT would."""
    return len(packet) > 1 and 191 < packet[1] < 224


def header_length(packet: bytes) -> int:
    """Length of the fixed header, CSRCs and header extension; RtpError if it does not fit."""
    size = len(packet)
    if size < 12 or packet[0] >> 6 != 2:
        raise RtpError("not an RTP packet")
    length = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        if size < length + 4:
            raise RtpError("truncated header extension")
        length += 4 + 4 * int.from_bytes(packet[length + 2 : length + 4], "big")
    if length > size:
        raise RtpError("truncated RTP header")
    return length


def payload_bounds(packet: bytes) -> tuple[int, int]:
    """(start, end) of the payload, excluding padding."""
    start = header_length(packet)
    end = len(packet)
    if packet[0] & 0x20:
        end -= packet[-1]
        if end < start:
            raise RtpError("padding longer than payload")
    return start, end


def strip_extensions(packet: bytes) -> bytes:
    """The packet without its header extension (X bit cleared), for peers that did not agree to
    the publisher's extension IDs."""
    if not packet:
        raise RtpError("empty packet")
    if not packet[0] & 0x10:
        return packet
    fixed = 12 + 4 * (packet[0] & 0x0F)
    end = header_length(packet)
    return bytes((packet[0] & 0xEF,)) + packet[1:fixed] + packet[end:]


def extension_elements(packet: bytes) -> Iterator[tuple[int, int, int]]:
    """(ID, start, end) of each header extension element, in one pass over the block (RFC 8285
    one-byte and two-byte forms); nothing for a packet without one."""
    if not packet:
        raise RtpError("empty packet")
    if not packet[0] & 0x10:
        return
    start = 12 + 4 * (packet[0] & 0x0F)
    end = header_length(packet)
    profile = packet[start] << 8 | packet[start + 1]
    pos = start + 4
    if profile == 0xBEDE:
        while pos < end:
            byte = packet[pos]
            if byte == 0:
                pos += 1
                continue
            ext_id, length = byte >> 4, (byte & 0x0F) + 1
            if ext_id == 15:
                return
            if pos + 1 + length > end:
                raise RtpError("header extension element past its block")
            yield ext_id, pos + 1, pos + 1 + length
            pos += 1 + length
    elif profile & 0xFFF0 == 0x1000:
        while pos + 1 < end:
            ext_id = packet[pos]
            if ext_id == 0:
                pos += 1
                continue
            length = packet[pos + 1]
            if pos + 2 + length > end:
                raise RtpError("header extension element past its block")
            yield ext_id, pos + 2, pos + 2 + length
            pos += 2 + length


def parse_extensions(packet: bytes) -> dict[int, bytes]:
    """Header extension elements by ID (the last of a repeated ID wins)."""
    return {ext_id: packet[begin:end] for ext_id, begin, end in extension_elements(packet)}


MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"  # RFC 8852: a simulcast layer's name
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"


def add_extensions(packet: bytes, elements: list[tuple[int, bytes]]) -> tuple[bytearray, list[int]]:
    """A copy of an extension-less packet with a one-byte-header extension block (RFC 8285
    §4.2) holding `elements` (IDs 1-14, 1-16 bytes each); also where each value starts."""
    start = 12 + 4 * (packet[0] & 0x0F)
    block = bytearray()
    offsets = []
    for ext_id, value in elements:
        block.append(ext_id << 4 | (len(value) - 1))
        offsets.append(start + 4 + len(block))
        block += value
    block += bytes(-len(block) % 4)
    out = bytearray(packet[:start])
    out[0] |= 0x10
    out += b"\xbe\xde" + (len(block) // 4).to_bytes(2, "big") + block + packet[start:]
    return out, offsets


def abs_send_time(now: float) -> bytes:
    """abs-send-time: 24-bit 6.18 fixed-point seconds, wrapping every 64 s."""
    return (int(now * (1 << 18)) & 0xFFFFFF).to_bytes(3, "big")


class RtcpPacket(NamedTuple):
    """One packet of a compound RTCP datagram: type, FMT/count field, sender SSRC and body.
    (A tuple: made for every item of every datagram, at half a frozen dataclass's cost.)"""

    packet_type: int
    fmt: int
    ssrc: int
    body: bytes  # everything after the sender SSRC


# The most packets one compound RTCP datagram may hold. A browser's hold a report, an SDES and
# a few feedback messages; each costs a parse and a handler, so a datagram of hundreds of
# 8-byte items is refused whole instead.
MAX_RTCP_PACKETS = 32


class TooManyRtcpPackets(RtpError):
    """A compound RTCP datagram of more than its limit of packets."""


def split_rtcp(datagram: bytes, limit: int = MAX_RTCP_PACKETS) -> list[RtcpPacket]:
    """Split a compound RTCP datagram; RtpError on a length that runs past the end, and
    TooManyRtcpPackets, before parsing on, at its `limit`-th + 1 packet."""
    packets: list[RtcpPacket] = []
    pos = 0
    size = len(datagram)
    while pos + 8 <= size:
        if len(packets) == limit:
            raise TooManyRtcpPackets(f"more than {limit} packets in one RTCP datagram")
        first, packet_type, words = _RTCP_HEADER.unpack_from(datagram, pos)
        if first >> 6 != 2:
            raise RtpError("bad RTCP version")
        if words == 0:
            raise RtpError("RTCP packet too short for its sender SSRC")
        end = pos + 4 * (words + 1)
        if end > size:
            raise RtpError("RTCP length past end of datagram")
        ssrc = int.from_bytes(datagram[pos + 4 : pos + 8], "big")
        packets.append(RtcpPacket(packet_type, first & 0x1F, ssrc, datagram[pos + 8 : end]))
        pos = end
    if pos != size:
        raise RtpError("trailing bytes after RTCP")
    return packets


def feedback_media_ssrc(packet: RtcpPacket) -> int:
    """The media source SSRC of an RTPFB/PSFB packet (RFC 4585 §6.1)."""
    if len(packet.body) < 4:
        raise RtpError("feedback without media SSRC")
    return int.from_bytes(packet.body[:4], "big")


def fir_targets(packet: RtcpPacket) -> list[int]:
    """SSRCs asked for a full intra frame by an FIR (RFC 5104 §4.3.1: 8-byte FCI entries)."""
    fci = packet.body[4:]
    return [int.from_bytes(fci[i : i + 4], "big") for i in range(0, len(fci) - 7, 8)]


def nack_sequence_numbers(packet: RtcpPacket, limit: int | None = None) -> list[int]:
    """Sequence numbers a generic NACK asks for (RFC 4585 §6.2.1: PID + 16-bit BLP); only
    the first `limit` when given, the entries past them left unread."""
    fci = packet.body[4:]
    lost: list[int] = []
    for i in range(0, len(fci) - 3, 4):
        if limit is not None and len(lost) >= limit:
            return lost[:limit]
        pid, blp = struct.unpack_from("!HH", fci, i)
        lost.append(pid)
        lost.extend((pid + bit + 1) & 0xFFFF for bit in range(16) if blp >> bit & 1)
    return lost if limit is None else lost[:limit]


def nack_count(packet: RtcpPacket) -> int:
    """How many sequence numbers a generic NACK asks for, without listing them: one per
    entry, and one per bit of the BLPs, counted in one big integer (C speed)."""
    entries = (len(packet.body) - 4) // 4
    if entries <= 0:
        return 0
    fci = int.from_bytes(packet.body[4 : 4 + 4 * entries], "big")
    return entries + (fci & int.from_bytes(b"\0\0\xff\xff" * entries, "big")).bit_count()


def pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """Picture Loss Indication (RFC 4585 §6.3.1)."""
    return _RTCP_HEADER.pack(0x80 | FMT_PLI, RTCP_PSFB, 2) + _SSRC_PAIR.pack(
        sender_ssrc, media_ssrc
    )


def sender_report(
    ssrc: int, ntp: int, rtp_timestamp: int, packet_count: int, octet_count: int
) -> bytes:
    """A Sender Report with no report blocks (RFC 3550 §6.4.1); ntp is the 64-bit NTP time."""
    return _RTCP_HEADER.pack(0x80, RTCP_SR, 6) + struct.pack(
        "!IQIII",
        ssrc,
        ntp,
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,
        octet_count & 0xFFFFFFFF,
    )


def parse_sender_info(packet: RtcpPacket) -> tuple[int, int]:
    """(64-bit NTP time, RTP timestamp) of a Sender Report."""
    if len(packet.body) < 20:
        raise RtpError("short sender report")
    ntp, rtp_timestamp = struct.unpack_from("!QI", packet.body, 0)
    return ntp, rtp_timestamp


def find_extension(packet: bytes, ext_id: int) -> bytes | None:
    """One header extension element by ID, from one pass over the block with no dict built
    (per-packet use); the last if repeated, None if absent or the block is malformed."""
    if not packet or not packet[0] & 0x10 or ext_id <= 0:
        return None
    found = None
    try:
        for element_id, begin, end in extension_elements(packet):
            if element_id == ext_id:
                found = packet[begin:end]
    except RtpError:
        return None
    return found


@dataclass(frozen=True)
class ReportBlock:
    """One reception report (RFC 3550 §6.4.1) about a source we send."""

    ssrc: int
    fraction_lost: int  # 0..255, fraction of 256
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int  # middle 32 bits of the NTP time of the last SR received
    delay_since_last_sr: int  # in 1/65536 s


_REPORT_BLOCK = struct.Struct("!IIIIII")


def report_blocks(packet: RtcpPacket) -> list[ReportBlock]:
    """Report blocks of an SR (after its 20-byte sender info) or an RR."""
    if packet.packet_type == RTCP_SR:
        offset = 20
    elif packet.packet_type == RTCP_RR:
        offset = 0
    else:
        return []
    blocks = []
    for index in range(packet.fmt):
        start = offset + 24 * index
        if start + 24 > len(packet.body):
            raise RtpError("report block past end of packet")
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(packet.body, start)
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost_word >> 24, cumulative, highest, jitter, lsr, dlsr))
    return blocks


def receiver_report(sender_ssrc: int, blocks: list[ReportBlock]) -> bytes:
    """A Receiver Report (RFC 3550 §6.4.2) with up to 31 report blocks."""
    blocks = blocks[:31]
    header = _RTCP_HEADER.pack(0x80 | len(blocks), RTCP_RR, 1 + 6 * len(blocks))
    body = b"".join(
        _REPORT_BLOCK.pack(
            b.ssrc,
            (b.fraction_lost & 0xFF) << 24 | (b.cumulative_lost & 0xFFFFFF),
            b.highest_sequence & 0xFFFFFFFF,
            b.jitter & 0xFFFFFFFF,
            b.last_sr & 0xFFFFFFFF,
            b.delay_since_last_sr & 0xFFFFFFFF,
        )
        for b in blocks
    )
    return header + sender_ssrc.to_bytes(4, "big") + body


def nack(sender_ssrc: int, media_ssrc: int, sequence_numbers: list[int]) -> bytes:
    """A generic NACK (RFC 4585 §6.2.1) packing the numbers into PID+BLP entries."""
    fci = bytearray()
    pending = sorted(set(sequence_numbers), key=lambda s: (s - sequence_numbers[0]) & 0xFFFF)
    index = 0
    while index < len(pending):
        pid = pending[index]
        blp = 0
        index += 1
        while index < len(pending):
            distance = (pending[index] - pid) & 0xFFFF
            if not 1 <= distance <= 16:
                break
            blp |= 1 << (distance - 1)
            index += 1
        fci += struct.pack("!HH", pid, blp)
    header = _RTCP_HEADER.pack(0x80 | FMT_NACK, RTCP_RTPFB, 2 + len(fci) // 4)
    return header + _SSRC_PAIR.pack(sender_ssrc, media_ssrc) + bytes(fci)


def remb_bitrate(packet: RtcpPacket) -> int | None:
    """The bitrate of a REMB (PSFB FMT 15 with "REMB" identifier), else None."""
    body = packet.body
    if packet.packet_type != RTCP_PSFB or packet.fmt != 15 or body[4:8] != b"REMB":
        return None
    if len(body) < 12:
        raise RtpError("short REMB")
    exponent = body[9] >> 2
    mantissa = (body[9] & 0x03) << 16 | body[10] << 8 | body[11]
    return mantissa << exponent


def remb_ssrcs(packet: RtcpPacket) -> tuple[int, ...]:
    """The SSRCs a REMB's bitrate is for (at most 255, as many as its body holds)."""
    body = packet.body
    if len(body) < 16:
        return ()
    return struct.unpack_from(f"!{min(body[8], (len(body) - 12) // 4)}I", body, 12)
