"""Opus RED (RFC 2198) on both forwarding paths: a RED player gets the packet as sent, any
other the primary block alone, the same bytes on the Python loop and the compiled fan-out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfu.media import AUDIO, Codec, TrackSpec
from sfu.routing.publisher_track import PublisherTrack
from sfu.routing.subscriber_track import SubscriberTrack
from sfu.wire import red
from tests.unit.test_tracks import RNG, Player, packet, payload_of
from tests.unit.test_vp8_paths import on_both_paths

RED = Codec("red", 63, 48000, 2, fmtp="111/111")
OPUS = Codec("opus", 111, 48000, 2, fmtp="minptime=10;useinbandfec=1")
PRIMARY = b"\x78" + b"\x01" * 60
REDUNDANT = b"\x78" + b"\x02" * 50


def red_payload(*redundant: bytes, primary: bytes = PRIMARY) -> bytes:
    """RED blocks over Opus 111: each redundant block 960 samples older than the next."""
    headers = b""
    for index, block in enumerate(redundant):
        offset = 960 * (len(redundant) - index)
        headers += bytes([0x80 | 111]) + (offset << 10 | len(block)).to_bytes(3, "big")
    return headers + bytes([111]) + b"".join(redundant) + primary


def audio_player(codecs: list[Codec]) -> Player:
    made = Player()
    spec = TrackSpec("0", AUDIO, codecs)
    made.track = SubscriberTrack(made.session, spec, RNG[0])  # type: ignore[arg-type]
    return made


def test_red_players_get_red_and_the_others_its_primary_block() -> None:
    drops: list[int] = []

    def scenario() -> list[list[bytes]]:
        spec = TrackSpec("0", AUDIO, [RED, OPUS], ssrc=5)
        source = PublisherTrack(spec, 1.0)
        with_red = audio_player([Codec("red", 100, 48000, 2, fmtp="111/111"), OPUS])
        without = audio_player([Codec("opus", 109, 48000, 2)])
        for each in (with_red, without):
            each.attach(source)
        bodies = [red_payload(), red_payload(REDUNDANT), red_payload(REDUNDANT, REDUNDANT)]
        bodies.append(b"\xef\x00\x00")  # a redundant block's header cut short: unreadable
        for index, body in enumerate(bodies):
            source.forward(packet(10 + index, 960 * index, body, ssrc=5, pt=63), 0.02 * index)
        drops.append(source.stats().to_json()["payload_drops"]["red"])
        return [with_red.take(), without.take()]

    with_red, without = on_both_paths(scenario)
    assert [p[1] & 0x7F for p in with_red] == [100] * 4
    assert [payload_of(p)[-len(PRIMARY) :] for p in with_red[:3]] == [PRIMARY] * 3
    assert [p[1] & 0x7F for p in without] == [109] * 3
    assert [payload_of(p) for p in without] == [PRIMARY] * 3
    assert drops == [1, 1]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x80\x00\x00",  # header cut short
        b"\xef\x00\x00\x05\x6f",  # a 5-byte block announced, none there
        b"\xef\x00\x00\x00" * 9 + b"\x6f",  # more blocks than MAX_BLOCKS
    ],
)
def test_unreadable_red(payload: bytes) -> None:
    assert red.primary_block(payload, 0, len(payload)) is None


@given(st.binary(max_size=48))
def test_primary_block_never_points_past_the_end(payload: bytes) -> None:
    found = red.primary_block(payload, 0, len(payload))
    assert found is None or 0 < found[0] <= len(payload)
