"""RTCP in memory: NACK/RTX under loss, receiver and sender reports, transport-wide feedback."""

from __future__ import annotations

import itertools

from bench.sdp import VIDEO_PT
from tests.harness import Harness


def test_nacks_under_five_percent_player_loss_are_answered_with_rtx():
    h = Harness(seed=5)
    _publisher, player = h.pair(auto_nack=True)
    player.down.loss = 0.05
    h.run(3.0)
    assert player.down.dropped > 5
    track = next(t for t in player.session.handler.tracks if t.kind == "video")
    assert track.nacks_received > 0
    assert track.retransmissions > 0
    repaired = player.repaired()
    video_seqs = {r.seq for r in player.media_packets(VIDEO_PT)}
    assert repaired, "no RTX packet arrived"
    assert repaired - video_seqs, "RTX repaired nothing that was lost"
    assert {r.payload_type for r in player.received if r.original_seq is not None} == {97}


def test_receiver_reports_reach_the_publisher_every_second_with_the_real_loss():
    h = Harness(seed=7)
    publisher = h.publisher("s")
    h.connect(publisher)
    publisher.up.loss = 0.1
    h.run(4.05)
    reports = publisher.stats.receiver_reports
    times = sorted({at for at, _ in reports})
    assert 3 <= len(times) <= 5
    assert all(0.9 < b - a < 1.1 for a, b in itertools.pairwise(times))
    video = [b for _, b in reports if b.ssrc == publisher.media.video_ssrc]
    assert video[-1].cumulative_lost > 0
    caused = publisher.up.dropped / publisher.up.sent
    reported = sum(b.fraction_lost for b in video[1:]) / len(video[1:]) / 256
    assert abs(reported - caused) < 0.1, (reported, caused)


def test_players_get_sender_reports_once_the_publisher_sent_one():
    h = Harness()
    _publisher, player = h.pair()
    h.run(3.05)
    sources = {r.ssrc for r in player.received}
    reports = player.stats.sender_reports
    assert len(reports) >= 2
    assert {ssrc for _, ssrc in reports} <= sources


def test_transport_wide_feedback_reaches_the_publisher_about_every_50_ms():
    h = Harness()
    publisher, player = h.pair()
    h.run(1.0)
    feedback = [t for t in publisher.stats.transport_feedback if t > h.now - 0.5]
    assert 7 <= len(feedback) <= 11
    player_handler = player.session.handler
    assert player_handler.transport_feedback > 5  # the player's own feedback was read too


def test_a_players_pli_reaches_the_publisher():
    h = Harness()
    publisher, player = h.pair()
    h.run(1.0)
    before = publisher.stats.plis
    player.send_pli(player.media_packets(VIDEO_PT)[-1].ssrc)
    h.run(0.1)
    assert publisher.stats.plis == before + 1
