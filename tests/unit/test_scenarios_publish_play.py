"""Publish and play in memory: order of arrival, keyframe start, rewriting across source changes."""

from __future__ import annotations

import itertools

from bench.sdp import AUDIO_PT, VIDEO_PT
from tests.harness import Harness, Peer


def assert_continuous(packets: list, clock_step_max: int) -> None:
    """Sequence numbers step by one and timestamps never go back or jump far, on one SSRC."""
    assert packets, "no packets"
    assert len({p.ssrc for p in packets}) == 1
    for before, after in itertools.pairwise(packets):
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


def test_publish_before_play_starts_on_a_keyframe():
    h = Harness()
    publisher = h.publisher("s")
    h.connect(publisher)
    h.run(0.5)
    plis_before = publisher.stats.plis
    player = h.player("s")
    h.connect(player)
    h.run(1.0)
    assert publisher.stats.plis > plis_before  # the new player asked for a keyframe
    assert first_video(player).keyframe
    assert_continuous(player.media_packets(VIDEO_PT), 90000)


def test_rewriting_is_continuous_across_a_publisher_ssrc_change():
    h = Harness()
    publisher, player = h.pair()
    h.run(1.0)
    before = len(player.media_packets(VIDEO_PT))
    publisher.media.restart_ssrcs()
    h.run(1.0)
    video = player.media_packets(VIDEO_PT)
    assert len(video) > before + 30
    assert video[before].keyframe  # the new source starts on a keyframe
    assert_continuous(video, 90000)
    assert_continuous(player.media_packets(AUDIO_PT), 48000)


def test_rewriting_is_continuous_when_the_publisher_leaves_and_comes_back():
    h = Harness()
    first = h.publisher("s")
    player = h.player("s")
    h.connect(first, player)
    h.run(1.0)
    h.router.close(first.session.id, "DELETE")
    first.silent = True
    h.run(0.5)
    before = len(player.media_packets(VIDEO_PT))
    second = h.publisher("s")
    h.connect(second)
    h.run(1.0)
    video = player.media_packets(VIDEO_PT)
    assert len(video) > before + 30
    assert video[before].keyframe
    assert_continuous(video, 2 * 90000)  # the pause shows as a timestamp jump, not a reset
    assert_continuous(player.media_packets(AUDIO_PT), 2 * 48000)


def test_several_players_each_get_their_own_ssrcs():
    h = Harness()
    publisher = h.publisher("s")
    players = [h.player("s") for _ in range(3)]
    h.connect(publisher, *players)
    h.run(0.5)
    ssrcs = [{r.ssrc for r in p.media_packets(VIDEO_PT)} for p in players]
    assert all(len(s) == 1 for s in ssrcs)
    assert len(set.union(*ssrcs)) == 3
    assert h.router.resource_counts()["sessions"] == 4
