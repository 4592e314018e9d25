"""Publish and play in memory: order of arrival, keyframe start, rewriting across source changes."""

from __future__ import annotations

from bench.sdp import AUDIO_PT, VIDEO_PT
from tests.harness import Harness, Peer


def assert_continuous(packets: list, clock_step_max: int) -> None:
    """Sequence numbers step by one and timestamps never go back or jump far, on one SSRC."""
    assert packets, "no packets"
    assert len({p.ssrc for p in packets}) == 1
    for before, after in zip(packets, packets[1:], strict=False):
        assert after.seq == (before.seq + 1) & 0xFFFF, (before, after)
        step = (after.ts - before.ts) & 0xFFFFFFFF
        assert step < clock_step_max, (before, after)


def first_video(player: Peer):
    return player.media_packets(VIDEO_PT)[0]


def test_play_before_publish_starts_on_a_keyframe():
    h = Harness()
    player = h.player("s")
    h.connect(player)
    publisher = h.publisher("s")
    h.connect(publisher)
    h.run(1.0)
    assert publisher.stats.plis >= 1
    assert first_video(player).keyframe
    assert len(player.media_packets(AUDIO_PT)) > 30
    assert_continuous(player.media_packets(VIDEO_PT), 90000)
    assert_continuous(player.media_packets(AUDIO_PT), 48000)
