"""Keyframe detection from RTP payload headers, without decoding, so a new player can start on one.

Only the first packet of a keyframe matters: the SFU starts a player's stream there.
"""

from __future__ import annotations

from collections.abc import Callable

from sfu.wire.vp9 import vp9_keyframe_start

_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28


def vp8_keyframe_start(payload: bytes) -> bool:
    """RFC 7741 §4.2/§4.3: descriptor with S=1 and partition 0, then a frame header with P=0."""
    if len(payload) < 2:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x07:
        return False
    pos = 1
    if first & 0x80:  # X: extension byte follows
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture ID, 7 or 15 bits
            if pos >= len(payload):
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/KEYIDX byte
            pos += 1
    return pos < len(payload) and not payload[pos] & 0x01


def _h264_starts_with(payload: bytes, nal_types: tuple[int, ...]) -> bool:
    """The packet holds a NAL unit of one of `nal_types`, alone or in a STAP-A, or (for an
    IDR) begins one in an FU-A."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in nal_types:
        return True
    if nal_type == _H264_FU_A:
        return len(payload) > 1 and payload[1] & 0x80 != 0 and payload[1] & 0x1F in nal_types
    if nal_type == _H264_STAP_A:
        pos = 1
        for _ in range(64):
            if pos + 2 >= len(payload):
                break
            size = int.from_bytes(payload[pos : pos + 2], "big")
            if payload[pos + 2] & 0x1F in nal_types:
                return True
            pos += 2 + size
    return False


def h264_keyframe_start(payload: bytes) -> bool:
    """RFC 6184: the packet that begins an IDR access unit, the one carrying its SPS, alone or
    in a STAP-A (the PPS and the IDR slice follow, in it or in the next packets, single or
    FU-A). A player starting or switching layers on a bare IDR slice would decode it with no
    SPS or with the other layer's (another size): a broken picture."""
    return _h264_starts_with(payload, (_H264_SPS,))


def h264_idr_start(payload: bytes) -> bool:
    """The first packet of an IDR slice: single NAL, in a STAP-A, or an FU-A start."""
    return _h264_starts_with(payload, (_H264_IDR,))


class H264KeyframeStart:
    """One H264 stream's keyframe starts. Senders over WebRTC put SPS and PPS in band before
    every IDR, and once this stream has shown one only a packet carrying an SPS counts; a
    sender that gives its parameter sets only in the SDP (sprop-parameter-sets) never does,
    and its players start on an IDR as the decoder then expects."""

    __slots__ = ("in_band",)

    def __init__(self) -> None:
        self.in_band = False  # an SPS has been seen in this stream's packets

    def __call__(self, payload: bytes) -> bool:
        if h264_keyframe_start(payload):
            self.in_band = True
            return True
        return not self.in_band and h264_idr_start(payload)


def _always(payload: bytes) -> bool:
    """Audio has no keyframes: every packet is a fine place to start."""
    return True


KEYFRAME_DETECTORS: dict[str, Callable[[bytes], bool]] = {
    "vp8": vp8_keyframe_start,
    "vp9": vp9_keyframe_start,
    "opus": _always,
}


def keyframe_detector(codec_name: str) -> Callable[[bytes], bool]:
    """The detector for one stream of a codec (by rtpmap name, any case): H264's learns from
    the stream, so each stream gets its own; unknown codecs start anywhere."""
    if codec_name.lower() == "h264":
        return H264KeyframeStart()
    return KEYFRAME_DETECTORS.get(codec_name.lower(), _always)
