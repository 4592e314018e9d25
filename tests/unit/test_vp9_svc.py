"""VP9, one layer or SVC, on both forwarding paths: the same bytes, packet for packet.

A synthetic L3T3_KEY publisher (descriptors written here, RFC 9628 §4.2) feeds players with
different spatial and temporal targets; each scenario runs on the Python loop and on the
compiled fan-out (test_vp8_paths.on_both_paths), and what the bytes say is checked too: the
layers each player gets, the marker on the last packet of its top layer, sequence numbers
with no gap, spatial moves up only at keyframes, temporal ones at U bits.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfu.media import VIDEO, Codec, TrackSpec
from sfu.protocol import fastpath
from sfu.protocol.keyframes import keyframe_detector
from sfu.protocol.simulcast import UPGRADE_HOLD, Choice, LayerPace
from sfu.protocol.svc import ALL_LAYERS, choose_svc
from sfu.routing.publisher_track import PublisherTrack
from sfu.routing.stream_layers import adapt_svc
from sfu.routing.subscriber_track import SubscriberTrack
from sfu.wire import rtp
from sfu.wire.vp9 import parse_vp9, vp9_keyframe_start, vp9_sizes
from tests.unit.test_tracks import FEEDBACK, RNG, Player, packet, payload_of, seq_of
from tests.unit.test_vp8_paths import on_both_paths

VP9 = Codec("VP9", 98, 90000, fmtp="profile-id=0", rtcp_fb=FEEDBACK)
TEMPORAL_PATTERN = (0, 2, 1, 2)
SIZES = ((320, 180), (640, 360), (1280, 720))


def descriptor(
    sid: int,
    tid: int,
    *,
    begins: bool,
    ends: bool,
    inter_picture: bool,
    picture: int,
    switching_up: bool = False,
    inter_layer: bool = False,
    flexible: bool = False,
    sizes: tuple[tuple[int, int], ...] = (),
) -> bytes:
    """A VP9 payload descriptor with a 15-bit picture ID and layer indices; non-flexible
    mode adds TL0PICIDX, flexible mode one P_DIFF when inter-picture predicted; `sizes`
    adds a scalability structure with them."""
    first = 0x80 | 0x20 | (0x40 if inter_picture else 0) | (0x10 if flexible else 0)
    first |= (0x08 if begins else 0) | (0x04 if ends else 0) | (0x02 if sizes else 0)
    out = bytes([first, 0x80 | picture >> 8, picture & 0xFF])
    out += bytes([tid << 5 | (0x10 if switching_up else 0) | sid << 1 | int(inter_layer)])
    if not flexible:
        out += b"\x07"  # TL0PICIDX
    elif inter_picture:
        out += b"\x02"  # P_DIFF 1, no more
    if sizes:
        out += bytes([(len(sizes) - 1) << 5 | 0x10])
        out += b"".join(w.to_bytes(2, "big") + h.to_bytes(2, "big") for w, h in sizes)
    return out


class SvcPublisher:
    """An L3T3_KEY (K-SVC) sender: every picture has three spatial layer frames of two
    packets each; a keyframe every `key_every` pictures, where the upper layers lean on the
    one below (D) and nothing earlier (P=0); otherwise each layer leans on its own past.
    Frames above TID 0 carry U, as libvpx's do in the 0-2-1-2 pattern."""

    def __init__(
        self, seq: int = 65520, key_every: int = 8, flexible: bool = False, lowest: int = 0
    ) -> None:
        spec = TrackSpec("0", VIDEO, [VP9], ssrc=0x0D0D0D0D)
        self.track = PublisherTrack(spec, keyframe_interval=1.0)
        self.seq, self.pictures, self.key_every, self.flexible = seq, 0, key_every, flexible
        self.lowest = lowest  # the smallest spatial layer sent (Chromium stops smaller ones)

    def send_picture(self, now: float) -> None:
        key = self.pictures % self.key_every == 0
        tid = 0 if key else TEMPORAL_PATTERN[self.pictures % len(TEMPORAL_PATTERN)]
        for sid, index in itertools.product(range(self.lowest, 3), range(2)):
            body = descriptor(
                sid,
                tid,
                begins=index == 0,
                ends=index == 1,
                inter_picture=not key,
                picture=(0x7FF0 + self.pictures) & 0x7FFF,
                switching_up=tid > 0,
                inter_layer=key and sid > self.lowest,
                flexible=self.flexible,
                sizes=SIZES if key and sid == self.lowest and index == 0 else (),
            )
            body += bytes([sid << 4 | index]) * 40
            last = sid == 2 and index == 1
            data = packet(self.seq, 3000 * self.pictures, body, ssrc=0x0D0D0D0D, marker=last)
            self.track.forward(data, now)
            self.seq = (self.seq + 1) & 0xFFFF
        self.pictures += 1


def vp9_player() -> Player:
    made = Player()
    spec = TrackSpec("0", VIDEO, [Codec("VP9", 100, 90000, fmtp="profile-id=0")])
    made.track = SubscriberTrack(made.session, spec, RNG[0])  # type: ignore[arg-type]
    return made


def layers_of(data: bytes) -> tuple[int, int, bool, bool]:
    """(SID, TID, E bit, marker) of a packet as a player got it."""
    read = parse_vp9(data, rtp.header_length(data))
    assert read is not None
    return read.sid, read.tid, read.ends, bool(data[1] & 0x80)


def assert_numbered_without_gaps(sent: list[bytes]) -> None:
    for before, after in itertools.pairwise(sent):
        assert (seq_of(after) - seq_of(before)) & 0xFFFF == 1


def assert_marker_ends_each_picture(sent: list[bytes], top: int) -> None:
    """The marker is on exactly the last packet of the top spatial layer sent."""
    for data in sent:
        sid, _, ends, marker = layers_of(data)
        assert marker == (ends and sid == top), layers_of(data)


@pytest.mark.parametrize("flexible", [False, True])
def test_each_player_gets_its_layers_with_the_marker_on_its_top_one(flexible: bool) -> None:
    drops: list[tuple[int, ...]] = []

    def scenario() -> list[list[bytes]]:
        publisher = SvcPublisher(flexible=flexible)
        full, base, middle = vp9_player(), vp9_player(), vp9_player()
        for each in (full, base, middle):
            each.attach(publisher.track)
        base.track.target_spatial, base.track.target_temporal = 0, 0
        middle.track.target_spatial, middle.track.target_temporal = 1, 1
        for index in range(17):
            publisher.send_picture(index / 30)
        drops.append(tuple(p.track.temporal_drops for p in (full, base, middle)))
        return [full.take(), base.take(), middle.take()]

    full, base, middle = on_both_paths(scenario)
    assert len(full) == 17 * 6
    assert {layers_of(p)[:2] for p in base} == {(0, 0)}
    assert len(base) == 5 * 2  # pictures 0, 4, 8, 12, 16: TID 0, base layer only
    assert {layers_of(p)[0] for p in middle} == {0, 1}
    assert {layers_of(p)[1] for p in middle} == {0, 1}
    for sent, top in ((full, 2), (base, 0), (middle, 1)):
        assert_numbered_without_gaps(sent)
        assert_marker_ends_each_picture(sent, top)
    # 92 of 102 left out for the base player; the middle one loses 8 pictures of TID 2
    # (48 packets) and the top layer of the 9 others (18 packets).
    assert drops == [(0, 92, 66)] * 2


def test_spatial_up_waits_for_a_keyframe_down_and_temporal_moves_do_not() -> None:
    timeline: list[list[tuple[int, int]]] = []

    def scenario() -> list[list[bytes]]:
        publisher = SvcPublisher(key_every=8)
        mover = vp9_player()
        mover.attach(publisher.track)
        mover.track.target_spatial, mover.track.target_temporal = 0, 0
        seen: list[tuple[int, int]] = []
        for index in range(20):
            if index == 3:  # up to every layer: spatial at picture 8, temporal at a U bit
                mover.track.target_spatial, mover.track.target_temporal = 2, 2
            if index == 13:  # down at once, at the next picture
                mover.track.target_spatial, mover.track.target_temporal = 1, 0
            publisher.send_picture(index / 30)
            seen.append((mover.track.current_spatial, mover.track.current_temporal))
        timeline.append(seen)
        return [mover.take()]

    (sent,) = on_both_paths(scenario)
    python, compiled = timeline
    assert python == compiled
    # Pictures 0-2 at (0, 0); the target moves at 3: TID 2 comes in at picture 3 (U bit),
    # SID 2 at picture 8 (keyframe); down at 13.
    assert python[:3] == [(0, 0)] * 3
    assert python[3:8] == [(0, 2)] * 5
    assert python[8:13] == [(2, 2)] * 5
    assert python[13:] == [(1, 0)] * 7
    assert_numbered_without_gaps(sent)
    tops = [layers_of(p)[0] for p in sent if layers_of(p)[3]]
    # Pictures 0 and 3-7 (1 and 2 are above TID 0), 8-12, then 16, the one of TID 0 left.
    assert tops == [0] * 6 + [2] * 5 + [1]


def test_a_single_layer_vp9_stream_passes_as_it_is() -> None:
    """No L bit: every packet is layer (0, 0), and a player's targets change nothing."""

    def scenario() -> list[list[bytes]]:
        spec = TrackSpec("0", VIDEO, [VP9], ssrc=1)
        track = PublisherTrack(spec, 1.0)
        one = vp9_player()
        one.attach(track)
        one.track.target_spatial = one.track.target_temporal = 0
        for index in range(4):
            key = index == 0
            head = bytes([0x80 | (0 if key else 0x40) | 0x08, index])
            tail = bytes([0x80 | (0 if key else 0x40) | 0x04, index])
            track.forward(packet(10 + 2 * index, 3000 * index, head + b"\x11" * 30, ssrc=1), 0)
            last = packet(11 + 2 * index, 3000 * index, tail + b"\x22" * 30, ssrc=1, marker=True)
            track.forward(last, 0)
        return [one.take()]

    (sent,) = on_both_paths(scenario)
    assert len(sent) == 8
    assert [bool(p[1] & 0x80) for p in sent] == [False, True] * 4


TRUNCATED = [
    b"\x80",  # I set, no picture ID
    b"\x80\x81",  # 15-bit picture ID cut short
    b"\x20",  # L set, no layer byte
    b"\x20\x00",  # non-flexible: no TL0PICIDX
    b"\x50\x01\x01\x01",  # flexible and P: a fourth P_DIFF announced
    b"\x50\x01",  # P_DIFF announces another, none follows
    b"\x02",  # V set, no scalability structure
    b"\x02\x50\x01\x40",  # V with sizes for three layers, one byte of them
]


def test_truncated_descriptors_are_dropped_and_counted_on_both_paths() -> None:
    counts: list[int] = []

    def scenario() -> list[list[bytes]]:
        publisher = SvcPublisher()
        one = vp9_player()
        one.attach(publisher.track)
        publisher.send_picture(0.0)
        for index, body in enumerate(TRUNCATED):
            publisher.track.forward(packet(100 + index, 3000, body, ssrc=0x0D0D0D0D), 0.1)
        counts.append(publisher.track.stats().to_json()["payload_drops"]["vp9_descriptor"])
        return [one.take()]

    (sent,) = on_both_paths(scenario)
    assert len(sent) == 6  # the keyframe picture only
    assert counts == [len(TRUNCATED)] * 2
    assert all(parse_vp9(body, 0) is None for body in TRUNCATED)


def test_keyframes_sizes_and_the_detector() -> None:
    key = descriptor(0, 0, begins=True, ends=False, inter_picture=False, picture=1, sizes=SIZES)
    assert vp9_keyframe_start(key) and keyframe_detector("VP9")(key)
    assert vp9_sizes(key, 0) == list(SIZES)
    upper = descriptor(
        1, 0, begins=True, ends=False, inter_picture=False, picture=1, inter_layer=True
    )
    inter = descriptor(0, 0, begins=True, ends=False, inter_picture=True, picture=2)
    middle = descriptor(0, 0, begins=False, ends=True, inter_picture=False, picture=1)
    assert not any(vp9_keyframe_start(p) for p in (upper, inter, middle, b"", b"\x80"))
    assert vp9_sizes(inter, 0) == []
    flexible = descriptor(
        2, 1, begins=True, ends=True, inter_picture=True, picture=9, flexible=True
    )
    read = parse_vp9(flexible, 0)
    assert read is not None and (read.sid, read.tid, read.begins, read.ends) == (2, 1, True, True)


def test_the_compiled_path_is_used_when_built() -> None:
    """The VP9 rule goes to the extension as its own value (never the VP8 ids rule)."""
    publisher = SvcPublisher()
    assert publisher.track.payload_rule == fastpath.PAYLOAD_VP9_SVC
    assert payload_of(packet(1, 0, b"\x00\x01")) == b"\x00\x01"


RATES = [200_000.0, 700_000.0, 2_000_000.0]  # each spatial layer with those below it


@pytest.mark.parametrize(
    ("choice", "estimate", "target"),
    [
        (Choice(), None, (2, ALL_LAYERS)),  # no estimate yet: everything
        (Choice(), 3_000_000.0, (2, ALL_LAYERS)),
        (Choice(), 1_000_000.0, (1, ALL_LAYERS)),
        (Choice(), 300_000.0, (0, ALL_LAYERS)),
        (Choice(), 100_000.0, (0, 0)),  # not even the base layer: its base frame rate only
        (Choice(max_spatial=0), 3_000_000.0, (0, ALL_LAYERS)),
        (Choice(max_temporal=1), 3_000_000.0, (2, 1)),
        (Choice(max_width=700), None, (1, ALL_LAYERS)),  # 1280 wide is over the cap
        (Choice(spatial=2, temporal=0), 100_000.0, (2, 0)),  # pinned whatever the link
        (Choice(temporal=1), 1_000_000.0, (1, 1)),
    ],
)
def test_choose_svc(choice: Choice, estimate: float | None, target: tuple[int, int]) -> None:
    assert choose_svc(choice, RATES, SIZES, estimate) == target


def test_choose_svc_before_any_layer_is_measured() -> None:
    assert choose_svc(Choice(), [], [], 1.0) == (ALL_LAYERS, ALL_LAYERS)
    assert choose_svc(Choice(max_spatial=1), [], [], None) == (1, ALL_LAYERS)


@given(st.binary(max_size=64), st.integers(0, 8))
def test_descriptor_readers_never_raise_or_read_past_the_end(data: bytes, start: int) -> None:
    read = parse_vp9(data, start)
    assert read is None or read.size_at < len(data)
    for width, height in vp9_sizes(data, start):
        assert 0 <= width < 65536 and 0 <= height < 65536
    assert isinstance(vp9_keyframe_start(data), bool)


def test_adapt_svc_moves_down_at_once_and_up_as_the_pace_allows() -> None:
    publisher = SvcPublisher()
    one = vp9_player()
    one.attach(publisher.track)
    publisher.send_picture(0.0)  # starts the player
    publisher.track.spatial_rates = list(RATES)
    publisher.track.spatial_sizes = list(SIZES)
    track, pace = one.track, LayerPace()
    adapt_svc(track, 3_000_000.0, pace, 10.0)
    assert (track.target_spatial, track.target_temporal) == (2, ALL_LAYERS)
    adapt_svc(track, 300_000.0, pace, 11.0)  # the link shrank: down at once
    assert (track.target_spatial, track.target_temporal) == (0, ALL_LAYERS)
    publisher.send_picture(11.0)  # the next picture: the player gets the base layer only
    assert track.current_spatial == 0
    publisher.track.poll_requests()
    adapt_svc(track, 3_000_000.0, pace, 12.0)  # room again, but an upgrade waits its hold
    assert track.target_spatial == 0
    adapt_svc(track, 3_000_000.0, pace, 11.0 + UPGRADE_HOLD * 2)
    assert track.target_spatial == 2
    # Up to a layer above the one it gets: a keyframe is asked for, K-SVC's switching point.
    assert [type(r).__name__ for r in publisher.track.poll_requests()] == ["KeyframeNeeded"]
    track.choice = Choice(spatial=1, temporal=0)  # pinned: whatever the estimate says
    adapt_svc(track, 100.0, pace, 30.0)
    assert (track.target_spatial, track.target_temporal) == (1, 0)


def test_the_layers_event_lists_a_vp9_streams_spatial_layers() -> None:
    from sfu.routing.stats import Layer
    from signaling.observe.events import layers_data

    layers = tuple(
        Layer(1, None, width, height, rate - below, True, sid)
        for sid, ((width, height), rate, below) in enumerate(
            zip(SIZES, RATES, [0.0, *RATES[:-1]], strict=True)
        )
    )
    assert layers_data(layers) == {
        "1": [
            {"spatialLayerId": 0, "width": 320, "height": 180, "bitrate": 200000, "active": True},
            {"spatialLayerId": 1, "width": 640, "height": 360, "bitrate": 500000, "active": True},
            {"spatialLayerId": 2, "width": 1280, "height": 720, "bitrate": 1300000, "active": True},
        ]
    }


def test_a_stream_without_its_smallest_layer_still_starts_and_switches() -> None:
    """Chromium scaling its capture down stops SID 0: pictures begin at SID 1, keyframes
    too; players still start, and targets still move at each picture's first packet."""
    timeline: list[list[tuple[int, int]]] = []

    def scenario() -> list[list[bytes]]:
        publisher = SvcPublisher(key_every=4, lowest=1)
        one = vp9_player()
        one.attach(publisher.track)
        seen = []
        for index in range(10):
            if index == 2:
                one.track.target_spatial = 1  # down at the next picture
            if index == 6:
                one.track.target_spatial = 2  # up at the keyframe of picture 8
            publisher.send_picture(index / 30)
            seen.append((one.track.current_spatial, one.track.current_temporal))
        timeline.append(seen)
        return [one.take()]

    (sent,) = on_both_paths(scenario)
    assert timeline[0] == timeline[1]
    assert [s for s, _ in timeline[0]] == [7, 7, 1, 1, 1, 1, 1, 1, 2, 2]
    assert_numbered_without_gaps(sent)
    assert {layers_of(p)[0] for p in sent} == {1, 2}
    assert choose_svc(Choice(spatial=0), [0.0, 300_000.0, 900_000.0], [], None)[0] == 1
    assert choose_svc(Choice(), [0.0, 300_000.0, 900_000.0], [], 100_000.0) == (1, 0)
