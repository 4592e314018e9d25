"""The depacketizers and the jitter buffer on their own: real frames cut the way browsers cut
them come back whole; bad payloads, holes and floods are bounded, counted and skipped."""

from __future__ import annotations

import random

import pytest

from bench.egress_media import h264_payloads, video_frames, vp8_payloads
from sfu.egress.depacketize import (
    H264Frames,
    PayloadError,
    Piece,
    h264_nal_units,
    h264_size,
    vp8_frame,
    vp8_payload,
    vp8_size,
)
from sfu.egress.track import JITTER_DELAY, MAX_PACKETS, TrackReceiver, extend
from sfu.media import AUDIO, VIDEO


def pieces(payloads: list[bytes], seq: int = 0, ts: int = 0) -> list[Piece]:
    last = len(payloads) - 1
    return [Piece(seq + i, ts, i == last, p) for i, p in enumerate(payloads)]


def test_vp8_frames_come_back_whole_with_their_size():
    frames = video_frames("libvpx", 40)
    for index, (frame, keyframe) in enumerate(frames):
        data, key = vp8_frame(pieces(vp8_payloads(frame, index)))
        assert (data, key) == (frame, keyframe)
    assert vp8_size(frames[0][0]) == (320, 240)
    assert vp8_size(frames[1][0]) is None  # not a keyframe


def test_h264_access_units_come_back_with_parameter_sets_before_keyframes():
    frames = video_frames("libx264", 40)
    assembler = H264Frames()
    for frame, keyframe in frames:
        data, key = assembler.frame(pieces(h264_payloads(frame)))
        assert key == keyframe
        assert data.startswith(b"\x00\x00\x00\x01")
        if keyframe:
            kinds = [unit[0] & 0x1F for unit in data.split(b"\x00\x00\x00\x01") if unit]
            assert kinds[:2] == [7, 8] and 5 in kinds
    assert assembler.sps is not None
    assert h264_size(assembler.sps) == (320, 240)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x80", b"\x80\x80", b"\x90\x80\x80", b"\x90"],  # descriptors cut short
)
def test_bad_vp8_descriptors_are_refused(payload):
    with pytest.raises(PayloadError):
        vp8_payload(payload)


@pytest.mark.parametrize(
    ("payload", "partial"),
    [
        (b"", None),
        (b"\x7c", None),  # FU-A with no header
        (b"\x7c\x05\x00", None),  # a middle fragment with no start
        (b"\x78\x00\x09\x65", None),  # STAP-A whose unit runs past the end
        (b"\x78\x00\x00", None),  # STAP-A unit of size 0
        (b"\x7e\x00", None),  # type 30: not a packetization this supports
    ],
)
def test_bad_h264_payloads_are_refused(payload, partial):
    with pytest.raises(PayloadError):
        h264_nal_units(payload, partial)


def test_an_sps_cut_short_is_refused():
    with pytest.raises(PayloadError):
        h264_size(b"\x67\x42")


def test_sequence_numbers_and_timestamps_extend_across_wraps():
    assert extend(5, 65535 + 65536, 16) == 65536 * 2 + 5
    assert extend(65535, 65536 * 2 + 5, 16) == 65535 + 65536
    assert extend(10, 2**32 + 2**32 - 10, 32) == 2 * 2**32 + 10


def test_reordered_and_repeated_packets_make_frames_in_order():
    frames = video_frames("libvpx", 10)
    receiver = TrackReceiver(VIDEO, 90000)
    packets = []
    seq = 65530  # wraps on the way
    for index, (frame, _) in enumerate(frames):
        for piece in pieces(vp8_payloads(frame, index), seq, index * 3000):
            packets.append(piece)
        seq += len(vp8_payloads(frame, index))
    shuffled = packets[1:]  # the first is first: a player starts on a keyframe's first packet
    random.Random(4).shuffle(shuffled)
    for piece in [packets[0], *shuffled, *shuffled[:5]]:
        receiver.push(piece.seq & 0xFFFF, piece.timestamp, piece.marker, piece.payload, "vp8")
    out = receiver.poll(0.0)
    assert [f.data for f in out] == [f for f, _ in frames]
    assert receiver.late == 5


def test_a_hole_is_asked_for_then_given_up_and_video_waits_for_a_keyframe():
    frames = video_frames("libvpx", 40)  # keyframes at 0 and 30
    receiver = TrackReceiver(VIDEO, 90000)
    seq, lost = 0, None
    for index, (frame, _) in enumerate(frames):
        for i, payload in enumerate(vp8_payloads(frame, index)):
            last = i == len(vp8_payloads(frame, index)) - 1
            if index == 5 and lost is None:
                lost = seq  # never arrives
            else:
                receiver.push(seq & 0xFFFF, index * 3000, last, payload, "vp8")
            seq += 1
    assert [f.keyframe for f in receiver.poll(0.0)] == [True] * 1 + [False] * 4
    receiver.nacks(0.0)  # noticed
    assert receiver.nacks(0.1) == [lost]
    assert receiver.nacks(0.15) == []  # not again so soon
    assert receiver.poll(JITTER_DELAY / 2) == []  # still waiting for it
    out = receiver.poll(JITTER_DELAY + 0.01)
    assert out[0].keyframe and len(out) == 10  # frames 30..39: 6..29 skipped
    assert receiver.lost == 1 and receiver.skipped_frames == 24


def test_a_jump_far_ahead_starts_over_instead_of_holding_everything():
    receiver = TrackReceiver(AUDIO, 48000)
    receiver.push(1, 0, False, b"a", "opus")
    receiver.push(1 + MAX_PACKETS + 5, 960, False, b"b", "opus")
    assert [f.data for f in receiver.poll(0.0)] == [b"a", b"b"]
    assert len(receiver._held) == 0
