"""VP8 ids of simulcast layers on both forwarding paths: the same bytes, packet for packet.

Each scenario runs twice with the same 'random' numbers, once on the Python loop and once on
the compiled fan-out (sfu.protocol._fanout, real sockets on 127.0.0.1, SRTP undone before
comparing), and the players' plaintext must match byte for byte; each also checks what the bytes say
(ids continuous across switches, the frames a temporal limit leaves out, NACKs refused).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from sfu.media import VIDEO, Codec, TrackSpec
from sfu.protocol import fastpath
from sfu.protocol.simulcast import vp8_ids
from sfu.routing.publisher_track import PublisherTrack
from sfu.routing.subscriber_track import MAX_RESENDS_PER_RTCP, SubscriberTrack
from sfu.wire import rtp
from tests.unit.test_tracks import (
    FEEDBACK,
    RNG,
    KnownRandom,
    Player,
    packet,
    payload_of,
    seq_of,
    simulcast_layer,
)

if fastpath.fanout is None:
    pytest.skip(f"no compiled path to compare with: {fastpath.WHY}", allow_module_level=True)

# L1T3: the temporal layer of each frame in a four-frame cycle.
TEMPORAL_PATTERN = (0, 2, 1, 2)
PLAYER_EXTENSIONS = {4: rtp.MID_URI, 2: rtp.ABS_SEND_TIME_URI, 7: rtp.TRANSPORT_CC_URI}
FRAME_INTERVAL = 1 / 30


def descriptor(start: bool, picture: int, bits: int, tl0: int, tid: int) -> bytes:
    """A VP8 payload descriptor with picture ID, TL0PICIDX and TID (RFC 7741 §4.2)."""
    ids = bytes([0x80 | picture >> 8, picture & 0xFF]) if bits == 15 else bytes([picture])
    return bytes([0x90 if start else 0x80, 0xE0]) + ids + bytes([tl0, tid << 6])


class Layer:
    """A publisher's simulcast layer sending VP8 frames of `size` packets, each packet with
    the frame's ids; TL0PICIDX counts base-layer frames, as an encoder's does."""

    def __init__(self, rid: str, ssrc: int, seq: int, picture: int, bits: int, tl0: int) -> None:
        self.track = simulcast_layer(rid, ssrc)
        self.ssrc, self.seq, self.picture, self.bits, self.tl0 = ssrc, seq, picture, bits, tl0
        self.frames = 0

    def send(self, key: bool, now: float, size: int = 2) -> None:
        tid = 0 if key else TEMPORAL_PATTERN[self.frames % len(TEMPORAL_PATTERN)]
        if tid == 0 and self.frames:
            self.tl0 = (self.tl0 + 1) & 0xFF
        for index in range(size):
            body = descriptor(index == 0, self.picture, self.bits, self.tl0, tid)
            if index == 0:
                body += b"\x50\x02\x00\x9d\x01\x2a" if key else b"\x31\x05\x00"
            body += bytes([index]) * 30
            data = packet(self.seq, 3000 * self.frames, body, ssrc=self.ssrc, marker=index == 1)
            self.track.forward(data, now)
            self.seq = (self.seq + 1) & 0xFFFF
        self.picture = (self.picture + 1) & (0x7FFF if self.bits == 15 else 0x7F)
        self.frames += 1


def player(extensions: bool = False) -> Player:
    """A test player; with `extensions`, one that agreed to mid, abs-send-time and twcc."""
    made = Player()
    if extensions:
        made.session.transport_seq = 0x1234
        codec = Codec("VP8", 102, 90000, rtcp_fb=FEEDBACK)
        spec = TrackSpec("v1", VIDEO, [codec], extensions=PLAYER_EXTENSIONS)
        made.track = SubscriberTrack(made.session, spec, RNG[0])  # type: ignore[arg-type]
    return made


def on_both_paths(scenario: Callable[[], list[list[bytes]]]) -> list[list[bytes]]:
    """What `scenario` sends each player, the same on both paths (asserted)."""
    results = []
    for compiled in (False, True):
        with pytest.MonkeyPatch.context() as patch:
            RNG[0] = KnownRandom()  # the same SSRCs and bases on both runs
            if not compiled:
                patch.setattr(fastpath, "fanout", None)
            results.append(scenario())
    python, compiled_result = results
    assert [len(sent) for sent in python] == [len(sent) for sent in compiled_result]
    for index, (ours, theirs) in enumerate(zip(python, compiled_result, strict=True)):
        assert ours == theirs, f"player {index}: the paths differ"
    return python


def ids_of(data: bytes) -> tuple[int, int, int]:
    """(picture ID, TL0PICIDX, TID) of a packet as a player got it."""
    ids = vp8_ids(data, rtp.header_length(data))
    assert ids is not None
    return ids.picture, ids.tl0, ids.tid


def assert_continuous(sent: list[bytes], frames_apart: int = 1) -> None:
    """Picture IDs (modulo 7 bits, what every layer shares) stay or step by `frames_apart`
    (more when a temporal limit leaves frames out), TL0PICIDX stays or steps by one from
    frame to frame; sequence numbers step by one."""
    for before, after in itertools.pairwise(sent):
        (picture_a, tl0_a, _), (picture_b, tl0_b, _) = ids_of(before), ids_of(after)
        step = (picture_b - picture_a) & 0x7F
        assert step in (0, frames_apart), (hex(picture_a), hex(picture_b))
        assert (tl0_b - tl0_a) & 0xFF in (0, 1), (tl0_a, tl0_b)
        assert (seq_of(after) - seq_of(before)) & 0xFFFF == 1


def drive(layers: list[Layer], frames: int, events: dict[int, Callable[[float], None]]) -> None:
    """Every layer sends `frames` frames in step, a keyframe every 6th; events[i] runs before
    frame i."""
    for index in range(frames):
        now = index * FRAME_INTERVAL
        if index in events:
            events[index](now)
        for layer in layers:
            layer.send(key=index % 6 == 0, now=now)


def test_layer_switches_give_the_same_bytes_and_continuous_ids() -> None:
    """Three layers: 7-bit picture IDs that wrap, 15-bit ones that wrap, a TL0PICIDX that
    wraps; players with and without extensions (one buffer per layout on the Python path)
    switch back and forth at keyframes."""
    switches: list[int] = []

    def scenario() -> list[list[bytes]]:
        q = Layer("q", 0x0A0A0A0A, 65500, picture=120, bits=7, tl0=3)
        h = Layer("h", 0x0B0B0B0B, 100, picture=0x7FF5, bits=15, tl0=90)
        f = Layer("f", 0x0C0C0C0C, 30000, picture=0x1234, bits=15, tl0=250)
        layers = [q, h, f]
        one, two, three = player(), player(extensions=True), player()
        one.attach(q.track)
        two.attach(q.track)
        three.attach(f.track)
        tracks_of = [one.track, two.track, three.track]
        moves = {
            4: (one, h),
            9: (two, f),
            15: (one, f),
            16: (three, q),
            22: (two, h),
            27: (one, q),
            33: (three, h),
        }
        events = {
            index: (lambda now, who=who, to=to: who.track.switch_to(to.track, now))
            for index, (who, to) in moves.items()
        }
        drive(layers, 40, events)
        switches.extend(track.layer_switches for track in tracks_of)
        return [one.take(), two.take(), three.take()]

    sent = on_both_paths(scenario)
    assert switches == [3, 2, 2] * 2  # on each path, every move landed on a keyframe
    for packets in sent:
        assert len(packets) > 60
        assert_continuous(packets)
    assert all(rtp.parse_extensions(data).keys() == {2, 4, 7} for data in sent[1])


def test_temporal_drops_are_the_same_and_nacks_for_dropped_numbers_are_refused() -> None:
    answers: list[tuple[int, int, int]] = []

    def scenario() -> list[list[bytes]]:
        layer = Layer("q", 0x0A0A0A0A, 65530, picture=0x7FFE, bits=15, tl0=254)
        full, base, two_layers = player(), player(extensions=True), player()
        for each in (full, base, two_layers):
            each.attach(layer.track)
        layer.send(key=True, now=0.0)
        base.track.limit_temporal(0)
        two_layers.track.limit_temporal(1)
        for index in range(1, 13):  # the last one, of TID 0, comes after the last drop
            layer.send(key=False, now=index * FRAME_INTERVAL)
        sent = [full.take(), base.take(), two_layers.take()]
        track = base.track
        newest, before_last_drop = seq_of(sent[1][-1]), seq_of(sent[1][-3])
        assert track.retransmit([before_last_drop, newest], 1.0, MAX_RESENDS_PER_RTCP) == 1
        resent = base.take()
        assert len(resent) == 1 and payload_of(resent[0]) == payload_of(sent[1][-1])
        answers.append(
            (track.temporal_drops, track.retransmit_misses, two_layers.track.temporal_drops)
        )
        return [*sent, resent]

    full, base, two_layers, _ = on_both_paths(scenario)
    assert [ids_of(p)[2] for p in full[::2]] == [0, 2, 1, 2, 0, 2, 1, 2, 0, 2, 1, 2, 0]
    assert [ids_of(p)[2] for p in base] == [0] * 8  # frames 0, 4, 8 and 12
    assert [ids_of(p)[2] for p in two_layers[::2]] == [0, 1, 0, 1, 0, 1, 0]
    assert_continuous(full)
    assert_continuous(base, frames_apart=4)  # no gap in the numbers, the base layer's ids
    assert_continuous(two_layers, frames_apart=2)
    # 9 frames of TID 1 and 2 left out (6 of TID 2); the NACK from before the last was refused.
    assert answers == [(18, 1, 12)] * 2


def truncated_descriptors() -> Iterator[bytes]:
    """VP8 payloads whose descriptor announces a field past the end of the packet."""
    yield b"\x90"  # X set, no extension byte
    yield b"\x90\x80"  # I set, no picture ID
    yield b"\x90\x80\x81"  # 15-bit picture ID cut after its first byte
    yield b"\x90\xc0\x05"  # L set, no TL0PICIDX
    yield b"\x90\xe0\x05\x07"  # T set, no TID byte
    yield b"\x80\x10"  # K set, no KEYIDX byte


FILLER = b"\xaa" * 8
# In the order sent: the first with ids continues from those left behind, (0x7fff, 255).
DESCRIPTORS = [
    b"\x10\x31\x05\x00",  # no X: nothing to rewrite, the ids left behind stay pending
    b"\x90\xe0\xff\xff\xff\x40\x31",  # 15-bit picture ID, TL0PICIDX, TID 1: both wrap
    b"\x90\x00\x31\x05\x00",  # X with no optional field
    b"\x90\x80\x7f\x31",  # 7-bit picture ID only, at its wrap
    b"\x90\x40\xff\x31",  # TL0PICIDX only, at its wrap
    b"\x90\x20\x80\x31",  # TID 2 only: left out
    b"\x90\x10\x80\x31",  # KEYIDX only: no TID, never left out
]


def test_descriptor_shapes_and_truncated_descriptors_on_both_paths() -> None:
    """A started player with offsets, ids left behind (as after a switch) and a temporal limit
    of 1 gets each shape rewritten alike on both paths; a truncated one passes as it is."""

    shifted_drops: list[int] = []

    def scenario() -> list[list[bytes]]:
        layer = Layer("q", 0x0A0A0A0A, 500, picture=3, bits=15, tl0=9)
        shifted = player()
        shifted.attach(layer.track)
        layer.send(key=True, now=0.0)
        shifted.take()
        track = shifted.track
        track.limit_temporal(1)
        track.vp8_after = (0x7FFF, 255)  # the next ids follow these: 0 and 0
        bodies = [body + FILLER for body in DESCRIPTORS] + list(truncated_descriptors())
        for index, body in enumerate(bodies):
            layer.track.forward(packet(502 + index, 3000, body), 0.1)
        shifted_drops.append(track.temporal_drops)
        return [shifted.take()]

    (sent,) = on_both_paths(scenario)
    payloads = [payload_of(data) for data in sent]
    assert payloads == [
        b"\x10\x31\x05\x00" + FILLER,
        b"\x90\xe0\x80\x00\x00\x40\x31" + FILLER,  # (0x7fff, 255) + 1: both offsets are 1
        b"\x90\x00\x31\x05\x00" + FILLER,
        b"\x90\x80\x00\x31" + FILLER,  # 0x7f + 1 in 7 bits
        b"\x90\x40\x00\x31" + FILLER,
        b"\x90\x10\x80\x31" + FILLER,
        *truncated_descriptors(),  # as they came, none left out
    ]
    assert shifted_drops == [1, 1]


def test_a_single_layer_vp8_track_passes_its_ids_as_they_are() -> None:
    """Only a VP8 simulcast layer has its ids continued: a single-layer VP8 track passes them
    as they are, whatever offsets a player carries."""
    spec = TrackSpec("0", VIDEO, [Codec("VP8", 96, 90000, rtcp_fb=FEEDBACK)], ssrc=1)
    assert simulcast_layer().vp8_layer and not PublisherTrack(spec, 1.0).vp8_layer

    def scenario() -> list[list[bytes]]:
        single = PublisherTrack(spec, 1.0)
        carried = player()
        carried.attach(single)
        carried.track.picture_offset = 40
        carried.track.max_temporal = 0
        body = descriptor(True, 0x0100, 15, 7, 2) + b"\x50\x02\x00\x9d\x01\x2a"
        single.forward(packet(1, 0, body, ssrc=1), 0.0)
        single.forward(packet(2, 0, descriptor(False, 0x0100, 15, 7, 2), ssrc=1), 0.0)
        return [carried.take()]

    (sent,) = on_both_paths(scenario)
    assert [ids_of(data) for data in sent] == [(0x0100, 7, 2)] * 2
