"""SCTP packets and chunks (RFC 4960, RFC 3758 FORWARD-TSN) as plain values.

A packet is a common header and a list of (type, flags, body) chunks; the typed readers below
turn the bodies the association acts on into values. Every length is checked against the bytes
that are there and every count is bounded, so a hostile packet costs at most its own size to
read; anything malformed raises SctpError with a one-line reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import google_crc32c

__all__ = [
    "Chunk",
    "DataChunk",
    "Init",
    "Packet",
    "Sack",
    "SctpError",
    "chunk",
    "data_chunk",
    "encode_packet",
    "forward_tsn_chunk",
    "init_chunk",
    "param",
    "parse_data",
    "parse_forward_tsn",
    "parse_init",
    "parse_packet",
    "parse_sack",
    "sack_chunk",
]

DATA = 0
INIT = 1
INIT_ACK = 2
SACK = 3
HEARTBEAT = 4
HEARTBEAT_ACK = 5
ABORT = 6
SHUTDOWN = 7
SHUTDOWN_ACK = 8
ERROR = 9
COOKIE_ECHO = 10
COOKIE_ACK = 11
SHUTDOWN_COMPLETE = 14
RECONFIG = 130
FORWARD_TSN = 192

# DATA chunk flags (RFC 4960 section 3.3.1).
FLAG_END = 0x01
FLAG_BEGIN = 0x02
FLAG_UNORDERED = 0x04

# INIT parameters we write or read.
PARAM_STATE_COOKIE = 7
PARAM_SUPPORTED_EXTENSIONS = 0x8008
PARAM_FORWARD_TSN_SUPPORTED = 0xC000

MAX_CHUNKS = 128  # chunks per packet: more than a 64 KiB packet of the smallest useful chunks
MAX_PARAMS = 32  # parameters per INIT
MAX_GAP_BLOCKS = 64  # SACK gap blocks read; more are ignored, costing only retransmissions
MAX_STREAM_ENTRIES = 256  # FORWARD-TSN stream entries read
DATA_HEADER = 16  # chunk header + TSN, stream, SSN, PPID
COMMON_HEADER = 12

_COMMON = struct.Struct("!HHI")
_CHUNK = struct.Struct("!BBH")
_DATA = struct.Struct("!BBHIHHI")
_INIT = struct.Struct("!IIHHI")
_SACK = struct.Struct("!IIHH")


class SctpError(ValueError):
    """A packet or chunk we cannot read; the message is one line."""


Chunk = tuple[int, int, bytes]  # type, flags, body (without the 4-byte chunk header)


@dataclass(frozen=True)
class Packet:
    source_port: int
    destination_port: int
    verification_tag: int
    chunks: list[Chunk]


@dataclass(frozen=True)
class DataChunk:
    flags: int
    tsn: int
    stream: int
    ssn: int
    ppid: int
    payload: bytes


@dataclass(frozen=True)
class Init:
    """An INIT or INIT-ACK: the sender's tag, window, stream counts, first TSN, parameters."""

    tag: int
    a_rwnd: int
    outbound_streams: int
    inbound_streams: int
    initial_tsn: int
    params: dict[int, bytes]


@dataclass(frozen=True)
class Sack:
    cumulative_tsn: int
    a_rwnd: int
    gaps: list[tuple[int, int]]  # (start, end) offsets from cumulative_tsn, inclusive
    duplicates: int


def _checksum(data: bytes) -> bytes:
    return struct.pack("<I", google_crc32c.value(data))


def parse_packet(data: bytes) -> Packet:
    """A whole SCTP packet with a correct CRC32c, its chunks split but not yet interpreted."""
    if len(data) < COMMON_HEADER + _CHUNK.size:
        raise SctpError(f"packet of {len(data)} bytes is too short")
    if _checksum(data[:8] + b"\x00\x00\x00\x00" + data[12:]) != data[8:12]:
        raise SctpError("bad CRC32c")
    source, destination, tag = _COMMON.unpack_from(data)
    chunks: list[Chunk] = []
    pos = COMMON_HEADER
    while pos + _CHUNK.size <= len(data):
        if len(chunks) == MAX_CHUNKS:
            raise SctpError(f"more than {MAX_CHUNKS} chunks in a packet")
        kind, flags, length = _CHUNK.unpack_from(data, pos)
        if length < _CHUNK.size or pos + length > len(data):
            raise SctpError(f"chunk type {kind} has a bad length {length}")
        chunks.append((kind, flags, data[pos + _CHUNK.size : pos + length]))
        pos += (length + 3) & ~3
    if not chunks:
        raise SctpError("packet has no chunk")
    return Packet(source, destination, tag, chunks)


def chunk(kind: int, flags: int = 0, body: bytes = b"") -> bytes:
    """One chunk's bytes, padded to a multiple of four."""
    length = _CHUNK.size + len(body)
    return _CHUNK.pack(kind, flags, length) + body + b"\x00" * (-length % 4)


def encode_packet(source: int, destination: int, tag: int, chunks: list[bytes]) -> bytes:
    """A packet of already encoded chunks, with its CRC32c."""
    body = _COMMON.pack(source, destination, tag) + b"\x00\x00\x00\x00" + b"".join(chunks)
    return body[:8] + _checksum(body) + body[12:]


def parse_data(flags: int, body: bytes) -> DataChunk:
    if len(body) < DATA_HEADER - _CHUNK.size:
        raise SctpError("DATA chunk is too short")
    tsn, stream, ssn, ppid = struct.unpack_from("!IHHI", body)
    return DataChunk(flags, tsn, stream, ssn, ppid, body[12:])


def data_chunk(flags: int, tsn: int, stream: int, ssn: int, ppid: int, payload: bytes) -> bytes:
    length = DATA_HEADER + len(payload)
    head = _DATA.pack(DATA, flags, length, tsn, stream, ssn, ppid)
    return head + payload + b"\x00" * (-length % 4)


def _parse_params(data: bytes) -> dict[int, bytes]:
    params: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(data):
        if len(params) == MAX_PARAMS:
            raise SctpError(f"more than {MAX_PARAMS} INIT parameters")
        kind, length = struct.unpack_from("!HH", data, pos)
        if length < 4 or pos + length > len(data):
            raise SctpError(f"INIT parameter {kind} has a bad length {length}")
        params.setdefault(kind, data[pos + 4 : pos + length])
        pos += (length + 3) & ~3
    return params


def param(kind: int, value: bytes) -> bytes:
    """One INIT parameter, padded."""
    length = 4 + len(value)
    return struct.pack("!HH", kind, length) + value + b"\x00" * (-length % 4)


def parse_init(body: bytes) -> Init:
    if len(body) < _INIT.size:
        raise SctpError("INIT chunk is too short")
    tag, a_rwnd, outbound, inbound, initial_tsn = _INIT.unpack_from(body)
    if tag == 0 or outbound == 0 or inbound == 0:
        raise SctpError("INIT with a zero tag or no streams")
    return Init(tag, a_rwnd, outbound, inbound, initial_tsn, _parse_params(body[_INIT.size :]))


def init_chunk(kind: int, init: Init) -> bytes:
    """An INIT or INIT-ACK chunk of `init`, parameters in their numeric order."""
    fixed = _INIT.pack(
        init.tag, init.a_rwnd, init.outbound_streams, init.inbound_streams, init.initial_tsn
    )
    return chunk(kind, 0, fixed + b"".join(param(k, v) for k, v in sorted(init.params.items())))


def parse_sack(body: bytes) -> Sack:
    if len(body) < _SACK.size:
        raise SctpError("SACK chunk is too short")
    cumulative, a_rwnd, gap_count, dup_count = _SACK.unpack_from(body)
    if len(body) < _SACK.size + 4 * (gap_count + dup_count):
        raise SctpError("SACK chunk is shorter than its gap and duplicate counts")
    gaps = []
    for i in range(min(gap_count, MAX_GAP_BLOCKS)):
        start, end = struct.unpack_from("!HH", body, _SACK.size + 4 * i)
        if 0 < start <= end:
            gaps.append((start, end))
    return Sack(cumulative, a_rwnd, gaps, dup_count)


def sack_chunk(
    cumulative: int, a_rwnd: int, gaps: list[tuple[int, int]], duplicates: list[int]
) -> bytes:
    body = _SACK.pack(cumulative, a_rwnd, len(gaps), len(duplicates))
    body += b"".join(struct.pack("!HH", start, end) for start, end in gaps)
    body += b"".join(struct.pack("!I", tsn) for tsn in duplicates)
    return chunk(SACK, 0, body)


def parse_forward_tsn(body: bytes) -> tuple[int, list[tuple[int, int]]]:
    """The new cumulative TSN and the (stream, SSN) pairs of ordered streams it skips."""
    if len(body) < 4 or len(body) % 4:
        raise SctpError("FORWARD-TSN chunk has a bad length")
    count = min((len(body) - 4) // 4, MAX_STREAM_ENTRIES)
    streams = [struct.unpack_from("!HH", body, 4 + 4 * i) for i in range(count)]
    return struct.unpack_from("!I", body)[0], streams


def forward_tsn_chunk(new_cumulative: int, streams: list[tuple[int, int]]) -> bytes:
    body = struct.pack("!I", new_cumulative)
    body += b"".join(struct.pack("!HH", stream, ssn) for stream, ssn in streams)
    return chunk(FORWARD_TSN, 0, body)
