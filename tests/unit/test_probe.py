"""Probing before an upgrade: the padding packets and schedule alone, then in memory a player
whose link fits the next layer (probes, moves up) and one whose link does not (stays, waits
longer), the packets as the player decrypts them, the rate bound, and players not probed."""

from __future__ import annotations

import itertools

import pytest

from bench.sdp import TRANSPORT_CC_ID, VIDEO_RTX_PT
from sfu.protocol.probe import (
    MAX_PACKETS_PER_CALL,
    MAX_PADDING,
    MAX_PROBE_RATE,
    PROBE_DURATION,
    Probe,
    padding_packet,
    probe_rate,
)
from sfu.protocol.simulcast import MAX_UPGRADE_HOLD, UPGRADE_HOLD, Choice
from sfu.wire import rtp
from tests.harness import Harness, Peer, record_rtp
from tests.unit.test_simulcast_adaptation import run_until
from tests.unit.test_simulcast_switching import handler, layer_of


def test_a_padding_packet_is_rtp_with_only_padding() -> None:
    packet = padding_packet(97, 0x1234, 5, 0xABC, 200)
    assert packet[0] & 0x20 and packet[0] >> 6 == 2  # P bit, version 2
    assert packet[-1] == 200
    start, end = rtp.payload_bounds(packet)
    assert start == end  # no payload at all
    assert (packet[1] & 0x7F, int.from_bytes(packet[2:4], "big")) == (97, 0x1234)
    assert int.from_bytes(packet[8:12], "big") == 0xABC
    for bad in (0, MAX_PADDING + 1):
        with pytest.raises(ValueError, match="padding"):
            padding_packet(97, 0, 0, 1, bad)


def test_the_probe_rate_is_the_gap_to_the_target_and_capped() -> None:
    assert probe_rate(600_000, 300_000) == 300_000
    assert probe_rate(300_000, 600_000) == 0
    assert probe_rate(50_000_000, 100_000) == MAX_PROBE_RATE


def test_the_schedule_keeps_to_its_rate_and_stops() -> None:
    probe = Probe(target=900_000, rate=600_000, now=0.0, overuses=0)
    sent_bits = 0
    for tick in range(1, 41):  # 2 s of 50 ms ticks, the padding lasts 1 s of them
        sizes = probe.paddings(tick * 0.05, packet_overhead=30)
        assert len(sizes) <= MAX_PACKETS_PER_CALL and all(1 <= s <= MAX_PADDING for s in sizes)
        sent_bits += sum(8 * (s + 30) for s in sizes)
        if tick * 0.05 > PROBE_DURATION:
            assert sizes == []
    assert 600_000 * PROBE_DURATION <= sent_bits <= 600_000 * PROBE_DURATION + 8 * 300
    late = Probe(target=9e6, rate=MAX_PROBE_RATE, now=0.0, overuses=0)
    assert len(late.paddings(10.0, packet_overhead=30)) == MAX_PACKETS_PER_CALL  # a late tick


def test_the_verdict_fails_at_once_on_overuse_and_passes_only_when_delivered() -> None:
    probe = Probe(target=900_000, rate=300_000, now=0.0, overuses=2)
    assert probe.verdict(0.5, 2, 1e6, 800_000) is None  # still running
    assert probe.verdict(0.6, 3, 1e6, 800_000) is False  # a new overuse
    assert Probe(900_000, 300_000, 0.0, 0).verdict(0.5, 0, 800_000, None) is False  # cut
    held = Probe(target=900_000, rate=300_000, now=0.0, overuses=0)
    assert held.verdict(1.2, 0, 1e6, 880_000) is None
    assert held.verdict(2.0, 0, 1e6, 500_000) is True  # the best seen after the padding counts
    short = Probe(target=900_000, rate=300_000, now=0.0, overuses=0)
    assert short.verdict(2.0, 0, 1e6, 500_000) is False  # the link delivered too little


def settled_on_q(rate: float, **options: bool) -> tuple[Harness, Peer]:
    """A player pinned to the lowest layer behind a `rate` bottleneck for a while, then set
    to auto: its estimate has grown on a link that q fits, so it wants to move up."""
    h = Harness()
    _, player = h.simulcast_pair(**options)
    player.down.rate = rate
    handler(player).set_choice(Choice(rid="q"), None, h.now)
    h.run(8.0)
    assert layer_of(player) == "q"
    handler(player).set_choice(Choice(), None, h.now)
    return h, player


def run_until_probe(h: Harness, player: Peer, within: float = 10.0) -> None:
    for _ in range(round(within / 0.05)):
        if handler(player).probe is not None:
            return
        h.run(0.05)
    raise AssertionError(f"no probe within {within} s")


def test_a_link_that_fits_the_next_layer_is_probed_then_the_player_moves_up() -> None:
    h, player = settled_on_q(1_000_000)  # h (0.6 Mbit/s) fits, f (1.2 Mbit/s) does not
    p = handler(player)
    run_until_probe(h, player)
    assert layer_of(player) == "q"  # probing first, not moved yet
    run_until(h, player, {"h"}, 5)
    assert p.probes == 1 and p.failed_probes == 0 and p.probe_packets > 50
    h.run(20.0)  # later probes of f fail: the player never plays it
    assert layer_of(player) == "h" and p.failed_probes >= 1
    assert p.stats().to_json()["probe_bytes"] == p.probe_bytes > 0


def test_a_link_that_does_not_fit_is_probed_and_the_hold_doubles() -> None:
    h, player = settled_on_q(400_000)  # q (0.3 Mbit/s) fits, h does not
    p = handler(player)
    assert p.pace.hold == UPGRADE_HOLD
    run_until_probe(h, player)
    started = h.now
    for _ in range(60):
        h.run(0.05)
        if p.probe is None:
            break
    assert p.probe is None and p.failed_probes == 1
    assert p.pace.hold == min(MAX_UPGRADE_HOLD, 2 * UPGRADE_HOLD)
    assert p.pace.changed_at >= started  # the longer hold counts from the failure
    assert layer_of(player) == "q" and p.tracks[1].pending is None
    assert h.router.snapshot()[0]["player_sessions"][0]["failed_probes"] == 1


def test_probe_packets_are_srtp_rtx_padding_the_player_decrypts() -> None:
    h, player = settled_on_q(1_000_000)
    packets = record_rtp(player)
    run_until_probe(h, player)
    h.run(1.5)
    track = handler(player).tracks[1]
    padding = [plain for _, plain in packets if plain[1] & 0x7F == VIDEO_RTX_PT]
    assert len(padding) == handler(player).probe_packets > 50
    assert player.stats.unprotect_errors == 0
    rtx_seqs = [int.from_bytes(plain[2:4], "big") for plain in padding]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(rtx_seqs))
    for plain in padding:
        assert int.from_bytes(plain[8:12], "big") == track.rtx_ssrc
        start, end = rtp.payload_bounds(plain)
        assert plain[0] & 0x20 and start == end and 1 <= plain[-1] <= MAX_PADDING
    # Every packet, media or padding, has its own transport-wide number: feedback measures all.
    numbers = [rtp.parse_extensions(plain).get(TRANSPORT_CC_ID) for _, plain in packets]
    assert None not in numbers and len(set(numbers)) == len(numbers)
    assert handler(player).transport_feedback > 0  # and the player fed them back


def test_the_padding_rate_stays_within_the_gap_to_the_target_layer() -> None:
    h, player = settled_on_q(1_000_000)
    packets = record_rtp(player)
    run_until_probe(h, player)
    p = handler(player)
    layers = {layer.rid: layer for layer in p.tracks[1].source.layers}  # type: ignore[union-attr]
    assert p.probe is not None
    rate = p.probe.rate
    assert 0 < rate <= min(MAX_PROBE_RATE, layers["h"].bitrate - layers["q"].bitrate)
    began = h.now
    h.run(2.0)
    padding = [(at, plain) for at, plain in packets if plain[1] & 0x7F == VIDEO_RTX_PT]
    padding_bits = sum(8 * len(plain) for _, plain in padding)
    assert padding_bits <= rate * PROBE_DURATION + 8 * 300  # at most one packet over
    assert padding_bits >= 0.8 * rate * PROBE_DURATION  # and it did bring the rate up
    assert all(at - began < PROBE_DURATION + 0.3 for at, _ in padding)  # then it stopped


@pytest.mark.parametrize("options", [{"rtx": False}, {"transport_cc": False}])
def test_players_without_rtx_or_transport_cc_step_up_unprobed(options: dict) -> None:
    h, player = settled_on_q(5_000_000, **options)
    run_until(h, player, {"f"}, 20)
    p = handler(player)
    assert (p.probes, p.probe_packets) == (0, 0)
