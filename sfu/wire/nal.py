"""H264 (RFC 6184) and H265 (RFC 7798) RTP payloads: which NAL unit types a packet starts or
carries, without decoding.

Both put a NAL unit in a packet alone, several in an aggregation packet (STAP-A, AP), or one
in fragments (FU-A, FU); they differ in the size of the NAL unit header and where its type
lies, which a NalLayout says. Used to find keyframes (sfu.protocol.keyframes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

MAX_AGGREGATED = 64  # NAL units read from one aggregation packet


class NalLayout(NamedTuple):
    header: int  # bytes of a NAL unit header
    type_of: Callable[[int], int]  # the NAL unit type from the header's first byte
    aggregation: int  # the type of an aggregation packet
    fragment: int  # the type of a fragmentation unit
    fragment_type_mask: int  # the bits of the FU header that give the fragment's type


H264 = NalLayout(1, lambda byte: byte & 0x1F, 24, 28, 0x1F)  # STAP-A, FU-A
H265 = NalLayout(2, lambda byte: byte >> 1 & 0x3F, 48, 49, 0x3F)  # AP, FU (no DONL)

H264_IDR, H264_SPS = 5, 7
H265_IRAP = tuple(range(16, 24))  # BLA, IDR, CRA and the reserved IRAP types
H265_PARAMETER_SETS = (32, 33, 34)  # VPS, SPS, PPS


def starts_with(payload: bytes, nal_types: tuple[int, ...], layout: NalLayout) -> bool:
    """The packet holds a NAL unit of one of `nal_types`, alone or aggregated, or begins one
    in a fragmentation unit (its S bit)."""
    at = layout.header
    if len(payload) < at:
        return False
    kind = layout.type_of(payload[0])
    if kind in nal_types:
        return True
    if kind == layout.fragment:
        return (
            len(payload) > at
            and payload[at] & 0x80 != 0
            and payload[at] & layout.fragment_type_mask in nal_types
        )
    if kind == layout.aggregation:
        pos = at
        for _ in range(MAX_AGGREGATED):
            if pos + 2 >= len(payload):
                break
            size = int.from_bytes(payload[pos : pos + 2], "big")
            if layout.type_of(payload[pos + 2]) in nal_types:
                return True
            pos += 2 + size
    return False
