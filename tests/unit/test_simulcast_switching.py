"""Simulcast in memory: layers learnt by RID, one layer per player, clean switches."""

from __future__ import annotations

import itertools

import pytest

from bench.sdp import VIDEO_PT
from sfu.protocol.simulcast import Choice
from sfu.routing.player import Player
from sfu.routing.publisher import Publisher
from tests.harness import Harness, Peer, Received
from tests.unit.test_scenarios_publish_play import assert_continuous


def handler(peer: Peer) -> Player:
    return peer.session.handler  # type: ignore[return-value]


def layer_of(player: Peer) -> str:
    return handler(player).stats().tracks[1].to_json()["layer"]


def assert_vp8_continuous(packets: list[Received]) -> None:
    """Picture IDs and TL0PICIDX stay or step by one from packet to packet, never jump."""
    assert all(p.picture_id is not None and p.tl0 is not None for p in packets)
    for before, after in itertools.pairwise(packets):
        assert (after.picture_id - before.picture_id) & 0x7FFF in (0, 1), (before, after)
        assert (after.tl0 - before.tl0) & 0xFF in (0, 1), (before, after)


def video(player: Peer, since: float = 0.0) -> list[Received]:
    return [p for p in player.media_packets(VIDEO_PT) if p.at >= since]


def test_three_layers_learnt_by_rid_and_auto_climbs_to_the_top() -> None:
    h = Harness()
    publisher, player = h.simulcast_pair()
    h.run(10.0)  # one layer up at a time, the upgrade hold between steps
    publisher_handler: Publisher = publisher.session.handler  # type: ignore[assignment]
    layers = [t for t in publisher_handler.tracks if t.kind == "video"]
    assert sorted(t.rid for t in layers) == ["f", "h", "q"]
    assert all(t.ssrc is not None and t.packets > 0 for t in layers)
    assert [t.rid for t in publisher_handler.groups[1]] == ["q", "h", "f"]  # ranked by bitrate
    assert layer_of(player) == "f"  # no estimate, no cap: the top layer
    packets = video(player)
    assert packets[0].keyframe
    assert_continuous(packets, 90000)
    assert_vp8_continuous(packets)
    stats = h.router.snapshot()[0]
    assert {t.get("rid") for t in stats["tracks"]} >= {"q", "h", "f"}


def test_pinned_layers_switch_on_keyframes_with_everything_continuous() -> None:
    h = Harness()
    _, player = h.simulcast_pair()
    h.run(3.0)
    for rid in ("q", "h", "f", "q"):
        asked = h.now
        handler(player).set_choice(Choice(rid=rid), None, h.now)
        h.run(1.5)
        assert layer_of(player) == rid
        after = video(player, asked)
        first_new = next(p for p in after if p.keyframe)  # the switch lands on a keyframe
        assert first_new.at - asked < 0.5  # the PLI to that layer was answered
    packets = video(player)
    assert_continuous(packets, 2 * 90000)
    assert_vp8_continuous(packets)
    snapshot = handler(player).stats().tracks[1].to_json()
    assert snapshot["layer_switches"] >= 4 and snapshot["choice"] == "q"


def test_each_player_gets_its_own_layer() -> None:
    h = Harness()
    _, low = h.simulcast_pair()
    high = h.player("s")
    h.connect(high)
    handler(low).set_choice(Choice(rid="q"), None, h.now)
    h.run(3.0)
    assert (layer_of(low), layer_of(high)) == ("q", "f")
    recent_low, recent_high = video(low, h.now - 1), video(high, h.now - 1)
    assert len(recent_high) > 3 * len(recent_low) > 0  # 4 packets a frame against 1
    assert_vp8_continuous(video(low))


def test_nack_answers_come_from_the_layer_sent_with_rewritten_ids() -> None:
    h = Harness()
    _, player = h.simulcast_pair()
    h.run(2.0)
    handler(player).set_choice(Choice(rid="h"), None, h.now)
    h.run(2.0)
    sent = video(player, h.now - 0.5)
    wanted = sent[-5]
    track = handler(player).tracks[1]
    assert track.retransmit([wanted.seq], h.now, 10) == 1
    h.run(0.1)
    repair = [p for p in player.received if p.original_seq == wanted.seq]
    assert repair, "no RTX for the NACKed packet"


def test_unknown_rid_is_refused_and_packets_without_rid_are_counted() -> None:
    h = Harness()
    publisher, player = h.simulcast_pair()
    h.run(1.0)
    with pytest.raises(LookupError, match="no layer with rid"):
        handler(player).set_choice(Choice(rid="zz"), None, h.now)
    with pytest.raises(LookupError, match="mediaId"):
        handler(player).set_choice(Choice(rid="q"), "nope", h.now)
    layer = publisher.media.layers[0]  # type: ignore[union-attr]
    layer.ssrc, layer.rid = 12345, "x"  # a new SSRC that names a rid never offered
    h.run(0.5)
    publisher_handler: Publisher = publisher.session.handler  # type: ignore[assignment]
    assert publisher_handler.unknown_rid_packets > 0
    assert h.router.sessions.drops["unknown_rid"] == publisher_handler.unknown_rid_packets
