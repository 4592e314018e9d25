"""The VP9 RTP payload descriptor (RFC 9628 §4.2): what an SFU reads of a packet's frame.

Each packet says which spatial (SID) and temporal (TID) layer its frame belongs to, whether
it begins or ends that layer frame (B, E), whether the frame is predicted from earlier
pictures (P) or from the layer below (D), and whether higher temporal layers may be joined
after it (U). Flexible (F=1) and non-flexible mode differ only in the fields that follow.
The compiled fan-out (_fanout_svc.c, litesfu_parse_vp9) reads descriptors by the same rule.
"""

from __future__ import annotations

from typing import NamedTuple

MAX_PDIFFS = 3  # reference indices a flexible-mode frame may list (RFC 9628 §4.2)


class Vp9Descriptor(NamedTuple):
    """One packet's descriptor; layer ids are 0 when the L bit is clear (one layer)."""

    sid: int
    tid: int
    begins: bool  # B: the first packet of a layer frame
    ends: bool  # E: the last packet of a layer frame
    inter_picture: bool  # P: predicted from an earlier picture
    switching_up: bool  # U: higher temporal layers may be joined after this picture
    inter_layer: bool  # D: predicted from the spatial layer below in the same picture
    size_at: int  # offset of the scalability structure's first width, -1 without V and Y
    spatial_layers: int  # N_S + 1 from the scalability structure, 0 without one


def parse_vp9(payload: bytes | bytearray, start: int) -> Vp9Descriptor | None:
    """The descriptor at `start`; None when a field it announces lies past the end, or it
    announces more reference indices than RFC 9628 allows: such a packet is not forwarded."""
    end = len(payload)
    if start >= end:
        return None
    first = payload[start]
    pos = start + 1
    if first & 0x80:  # I: picture ID, 7 or 15 bits
        if pos >= end:
            return None
        pos += 2 if payload[pos] & 0x80 else 1
    flexible = bool(first & 0x10)
    sid = tid = 0
    switching_up = inter_layer = False
    if first & 0x20:  # L: layer indices
        if pos >= end:
            return None
        layers = payload[pos]
        tid, switching_up, sid, inter_layer = (
            layers >> 5,
            bool(layers & 0x10),
            layers >> 1 & 0x07,
            bool(layers & 0x01),
        )
        pos += 1 if flexible else 2  # non-flexible: TL0PICIDX follows
    if first & 0x40 and flexible:  # P and F: up to three P_DIFF bytes, N bit chaining
        for count in range(MAX_PDIFFS + 1):
            if count == MAX_PDIFFS or pos >= end:
                return None
            more = payload[pos] & 0x01
            pos += 1
            if not more:
                break
    size_at, spatial_layers = -1, 0
    if first & 0x02:  # V: scalability structure
        if pos >= end:
            return None
        head = payload[pos]
        spatial_layers = (head >> 5) + 1
        pos += 1
        if head & 0x10:  # Y: a width and height per spatial layer
            size_at = pos
            pos += 4 * spatial_layers
    if pos > end:
        return None
    return Vp9Descriptor(
        sid,
        tid,
        bool(first & 0x08),
        bool(first & 0x04),
        bool(first & 0x40),
        switching_up,
        inter_layer,
        size_at,
        spatial_layers,
    )


def vp9_keyframe_start(payload: bytes) -> bool:
    """The first packet of a keyframe: the lowest layer's frame begins (B), predicted from
    no earlier picture (P=0) and no layer below (D=0; SID 0, or the lowest Chromium still
    sends once it has stopped the smaller ones). Every layer above it in that picture then
    depends only on layers of the same picture, so a player may start, or move up, here."""
    descriptor = parse_vp9(payload, 0)
    return (
        descriptor is not None
        and descriptor.begins
        and not descriptor.inter_picture
        and not descriptor.inter_layer
    )


def vp9_sizes(payload: bytes | bytearray, start: int) -> list[tuple[int, int]]:
    """Each spatial layer's width and height from a scalability structure (sent with
    keyframes), lowest first; [] when the packet carries none."""
    descriptor = parse_vp9(payload, start)
    if descriptor is None or descriptor.size_at < 0:
        return []
    at = descriptor.size_at
    return [
        (
            int.from_bytes(payload[at + 4 * i : at + 4 * i + 2], "big"),
            int.from_bytes(payload[at + 4 * i + 2 : at + 4 * i + 4], "big"),
        )
        for i in range(descriptor.spatial_layers)
    ]
