"""Keyframe detection from RTP payload headers, without decoding, so a new player can start on one.

Only the first packet of a keyframe matters: the SFU starts a player's stream there.
"""

from __future__ import annotations

from collections.abc import Callable

from sfu.wire import nal
from sfu.wire.vp9 import vp9_keyframe_start


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


def h264_keyframe_start(payload: bytes) -> bool:
    """RFC 6184: the packet that begins an IDR access unit, the one carrying its SPS, alone or
    in a STAP-A (the PPS and the IDR slice follow, in it or in the next packets, single or
    FU-A). A player starting or switching layers on a bare IDR slice would decode it with no
    SPS or with the other layer's (another size): a broken picture."""
    return nal.starts_with(payload, (nal.H264_SPS,), nal.H264)


def h264_idr_start(payload: bytes) -> bool:
    """The first packet of an IDR slice: single NAL, in a STAP-A, or an FU-A start."""
    return nal.starts_with(payload, (nal.H264_IDR,), nal.H264)


class InBandKeyframeStart:
    """One H264 or H265 stream's keyframe starts. Senders over WebRTC put the parameter sets
    in band before every IDR, and once this stream has shown one only a packet carrying
    them counts; a sender that gives them only in the SDP (sprop-parameter-sets) never
    does, and its players start on the random access picture as the decoder then expects."""

    __slots__ = ("_carries_parameters", "_starts_random_access", "in_band")

    def __init__(
        self,
        carries_parameters: Callable[[bytes], bool],
        starts_random_access: Callable[[bytes], bool],
    ) -> None:
        self._carries_parameters = carries_parameters
        self._starts_random_access = starts_random_access
        self.in_band = False  # a parameter set has been seen in this stream's packets

    def __call__(self, payload: bytes) -> bool:
        if self._carries_parameters(payload):
            self.in_band = True
            return True
        return not self.in_band and self._starts_random_access(payload)


class H264KeyframeStart(InBandKeyframeStart):
    """An H264 stream's: an SPS, or while none has come in band, an IDR slice's start."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(h264_keyframe_start, h264_idr_start)


def h265_keyframe_start(payload: bytes) -> bool:
    """RFC 7798: the packet carrying the VPS, SPS or PPS that come before an IRAP picture."""
    return nal.starts_with(payload, nal.H265_PARAMETER_SETS, nal.H265)


def h265_irap_start(payload: bytes) -> bool:
    """The first packet of an IRAP picture's slice (IDR, CRA, BLA): alone, aggregated, or
    the start of a fragmentation unit."""
    return nal.starts_with(payload, nal.H265_IRAP, nal.H265)


def _always(payload: bytes) -> bool:
    """Audio has no keyframes: every packet is a fine place to start."""
    return True


KEYFRAME_DETECTORS: dict[str, Callable[[bytes], bool]] = {
    "vp8": vp8_keyframe_start,
    "vp9": vp9_keyframe_start,
    "opus": _always,
}


def keyframe_detector(codec_name: str) -> Callable[[bytes], bool]:
    """The detector for one stream of a codec (by rtpmap name, any case): H264's and H265's
    learn from the stream, so each stream gets its own; unknown codecs start anywhere."""
    if codec_name.lower() == "h264":
        return H264KeyframeStart()
    if codec_name.lower() == "h265":
        return InBandKeyframeStart(h265_keyframe_start, h265_irap_start)
    return KEYFRAME_DETECTORS.get(codec_name.lower(), _always)
