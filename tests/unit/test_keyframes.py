"""Keyframe start detection from VP8 (RFC 7741), H.264 (RFC 6184) and H.265 (RFC 7798) RTP
payload headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfu.protocol.keyframes import (
    H264KeyframeStart,
    h264_idr_start,
    h264_keyframe_start,
    keyframe_detector,
    vp8_keyframe_start,
)

# VP8 payload header (RFC 7741 §4.3) first bytes: P=0 is a key frame, P=1 an interframe.
VP8_KEY = b"\x50\x02\x00\x9d\x01\x2a\x80\x02\xe0\x01"  # size bits, start code, 640x480
VP8_INTER = b"\x31\x05\x00\x11\x22"


def descriptor(
    *,
    start: bool = True,
    pid: int = 0,
    picture_id: bytes | None = None,
    tl0: bytes | None = None,
    tid: bytes | None = None,
    keyidx_only: bool = False,
) -> bytes:
    """A VP8 payload descriptor (RFC 7741 §4.2) with the optional fields asked for."""
    first = (0x10 if start else 0) | pid
    ext = 0
    rest = b""
    if picture_id is not None:
        ext |= 0x80
        rest += picture_id
    if tl0 is not None:
        ext |= 0x40
        rest += tl0
    if tid is not None:
        ext |= 0x10 if keyidx_only else 0x20
        rest += tid
    if ext:
        return bytes([first | 0x80, ext]) + rest
    return bytes([first])


# Picture ID / TL0PICIDX / TID bytes are chosen so that a parser skipping the wrong number of
# bytes lands on a byte with the opposite P bit and gives the wrong answer.
VP8_DESCRIPTORS = {
    "plain": descriptor(),
    "x-without-fields": bytes([0x90, 0x00]),
    "pictureid-7bit": descriptor(picture_id=b"\x23"),
    "pictureid-15bit": descriptor(picture_id=b"\x81\x23"),
    "pictureid-15bit-even": descriptor(picture_id=b"\x80\x22"),
    "tl0": descriptor(tl0=b"\x11"),
    "tid": descriptor(tid=b"\x41"),
    "keyidx": descriptor(tid=b"\x03", keyidx_only=True),
    "all-15bit": descriptor(picture_id=b"\xff\x01", tl0=b"\x11", tid=b"\xe1"),
    "all-7bit": descriptor(picture_id=b"\x7f", tl0=b"\x10", tid=b"\x20"),
}


@pytest.mark.parametrize("desc", VP8_DESCRIPTORS.values(), ids=VP8_DESCRIPTORS.keys())
def test_vp8_keyframe_start(desc: bytes) -> None:
    assert vp8_keyframe_start(desc + VP8_KEY) is True


@pytest.mark.parametrize("desc", VP8_DESCRIPTORS.values(), ids=VP8_DESCRIPTORS.keys())
def test_vp8_interframe_start(desc: bytes) -> None:
    assert vp8_keyframe_start(desc + VP8_INTER) is False


@pytest.mark.parametrize(
    "payload",
    [
        descriptor(start=False) + VP8_KEY,  # continuation of a partition
        descriptor(start=False, picture_id=b"\x81\x02") + b"\x00" * 8,
        descriptor(pid=1) + VP8_KEY,  # start of partition 1, not of the frame
        descriptor(pid=3, picture_id=b"\x05") + VP8_KEY,
    ],
)
def test_vp8_not_a_frame_start(payload: bytes) -> None:
    assert vp8_keyframe_start(payload) is False


@pytest.mark.parametrize("desc", VP8_DESCRIPTORS.values(), ids=VP8_DESCRIPTORS.keys())
def test_vp8_truncated_never_raises(desc: bytes) -> None:
    payload = desc + VP8_KEY[:1]
    for cut in range(len(payload)):
        assert vp8_keyframe_start(payload[:cut]) is False
    assert vp8_keyframe_start(payload) is True


# --- H.264 -------------------------------------------------------------------------------

SPS = b"\x67\x42\xc0\x1f\xda\x01\x40\x16\xe8"
PPS = b"\x68\xce\x3c\x80"
IDR = b"\x65\x88\x84\x00\x33\xff"
SLICE = b"\x41\x9a\x02\x04"
SEI = b"\x06\x05\x02\xaa\xbb\x80"


def stap_a(*nals: bytes) -> bytes:
    return b"\x78" + b"".join(len(n).to_bytes(2, "big") + n for n in nals)


def fu_a(nal: bytes, start: bool, end: bool) -> bytes:
    indicator = nal[0] & 0xE0 | 28
    header = (0x80 if start else 0) | (0x40 if end else 0) | nal[0] & 0x1F
    return bytes([indicator, header]) + nal[1:]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (IDR, False),  # a bare IDR: no SPS in front of it
        (SPS, True),
        (b"\x27\x42", True),  # SPS with a lower nal_ref_idc
        (PPS, False),
        (SLICE, False),
        (SEI, False),
        (stap_a(SPS, PPS), True),
        (stap_a(SEI, SPS, PPS), True),
        (stap_a(SEI, PPS, IDR), False),
        (stap_a(SPS, PPS, IDR), True),
        (stap_a(SEI, PPS), False),
        (stap_a(SLICE, SLICE), False),
        (fu_a(IDR, start=True, end=False), False),  # its SPS came in the packet before
        (fu_a(IDR, start=False, end=False), False),
        (fu_a(IDR, start=False, end=True), False),
        (fu_a(SLICE, start=True, end=False), False),
        (fu_a(SLICE, start=True, end=True), False),
    ],
    ids=[
        "idr",
        "sps",
        "sps-nri1",
        "pps",
        "slice",
        "sei",
        "stap-sps",
        "stap-sei-sps",
        "stap-idr-no-sps",
        "stap-sps-pps-idr",
        "stap-no-key",
        "stap-slices",
        "fua-idr-start",
        "fua-idr-middle",
        "fua-idr-end",
        "fua-slice-start",
        "fua-slice-whole",
    ],
)
def test_h264_keyframe_start(payload: bytes, expected: bool) -> None:
    assert h264_keyframe_start(payload) is expected


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x7c",  # FU-A indicator alone
        b"\x78",  # STAP-A header alone
        b"\x78\x00",
        b"\x78\x00\x09",  # size without the NAL
        b"\x78\x00\x50\x41",  # size running past the end
        b"\x78\x00\x01\x06\xff\xff",  # second size past the end
    ],
)
def test_h264_truncated_never_raises(payload: bytes) -> None:
    assert h264_keyframe_start(payload) is False
    assert h264_idr_start(payload) is False
    assert H264KeyframeStart()(payload) is False


def test_h264_idr_starts_until_the_stream_shows_its_parameter_sets_in_band() -> None:
    """A sender with sprop-parameter-sets only: its IDR is where players start. Once an SPS
    has come in band, a bare IDR (its SPS went by before the player asked) no longer is."""
    detector = H264KeyframeStart()
    for payload in (IDR, stap_a(SEI, IDR), fu_a(IDR, start=True, end=False)):
        assert detector(payload) is True
    assert detector(fu_a(IDR, start=False, end=False)) is False
    assert detector(SLICE) is False and not detector.in_band
    assert detector(stap_a(SPS, PPS, IDR)) is True and detector.in_band
    for payload in (IDR, stap_a(SEI, IDR), fu_a(IDR, start=True, end=False)):
        assert detector(payload) is False
    assert detector(SPS) is True


def test_h264_truncated_prefixes() -> None:
    payload = stap_a(SEI, SPS)
    results = [h264_keyframe_start(payload[:cut]) for cut in range(len(payload) + 1)]
    assert results[-1] is True
    assert not any(results[: 1 + 2 + len(SEI) + 2])  # before the SPS header byte


@given(st.binary(max_size=64))
def test_detectors_return_bool_on_any_bytes(payload: bytes) -> None:
    assert isinstance(vp8_keyframe_start(payload), bool)
    assert isinstance(h264_keyframe_start(payload), bool)
    assert isinstance(h264_idr_start(payload), bool)


def test_keyframe_detector_by_name() -> None:
    assert keyframe_detector("VP8") is vp8_keyframe_start
    assert keyframe_detector("vp8") is vp8_keyframe_start
    assert isinstance(keyframe_detector("H264"), H264KeyframeStart)
    assert keyframe_detector("h264") is not keyframe_detector("h264")  # one per stream
    assert keyframe_detector("opus")(b"") is True
    assert keyframe_detector("AV1")(VP8_INTER) is True  # unknown: start anywhere


# H265 (RFC 7798): a NAL unit header is two bytes, the type in bits 1-6 of the first.
def h265_nal(kind: int, body: bytes = b"\x11\x22\x33") -> bytes:
    return bytes([kind << 1, 0x01]) + body


H265_VPS, H265_SPS, H265_PPS = h265_nal(32), h265_nal(33), h265_nal(34)
H265_IDR, H265_CRA, H265_TRAIL = h265_nal(19), h265_nal(21), h265_nal(1)


def h265_ap(*units: bytes) -> bytes:
    return bytes([48 << 1, 0x01]) + b"".join(len(u).to_bytes(2, "big") + u for u in units)


def h265_fu(unit: bytes, start: bool) -> bytes:
    return bytes([49 << 1, 0x01, (0x80 if start else 0) | unit[0] >> 1]) + unit[2:]


def test_h265_keyframes_at_parameter_sets_or_irap_until_those_come_in_band() -> None:
    detector = keyframe_detector("H265")
    assert detector is not keyframe_detector("h265")  # one per stream
    for payload in (H265_IDR, H265_CRA, h265_fu(H265_IDR, start=True), h265_ap(H265_IDR)):
        assert detector(payload) is True
    assert detector(h265_fu(H265_IDR, start=False)) is False
    assert detector(H265_TRAIL) is False and detector(h265_ap(H265_TRAIL)) is False
    assert detector(h265_ap(H265_VPS, H265_SPS, H265_PPS)) is True
    assert detector(H265_IDR) is False  # its parameter sets went by: not a place to start
    assert detector(H265_SPS) is True


@given(st.binary(max_size=64))
def test_h265_detector_returns_bool_on_any_bytes(payload: bytes) -> None:
    detector = keyframe_detector("H265")
    assert isinstance(detector(payload), bool)
    assert isinstance(detector(h265_ap(payload, payload)), bool)
