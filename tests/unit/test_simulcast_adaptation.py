"""Automatic layer choice in memory: a player behind a bottleneck settles on a lower layer,
keeps playing, and climbs back when the bottleneck goes; its neighbours are not affected."""

from __future__ import annotations

import itertools
import struct

from sfu.wire import rtp
from tests.harness import Harness, Peer
from tests.unit.test_scenarios_publish_play import assert_continuous
from tests.unit.test_simulcast_switching import assert_vp8_continuous, handler, layer_of, video


def run_until(h: Harness, player: Peer, rids: set[str], within: float) -> float:
    """Run until the player's layer is one of `rids` (checked every 0.5 s); seconds taken."""
    started = h.now
    for _ in range(round(within / 0.5)):
        if layer_of(player) in rids:
            return h.now - started
        h.run(0.5)
    raise AssertionError(f"still on {layer_of(player)} after {within} s, not {rids}")


def assert_no_jumps(packets: list) -> None:
    """One SSRC; sequence numbers, timestamps and VP8 ids only move forward, by no more than
    the bottleneck's drops explain (it loses packets, so steps above one are allowed)."""
    assert len({p.ssrc for p in packets}) == 1
    for before, after in itertools.pairwise(packets):
        assert 0 < (after.seq - before.seq) & 0xFFFF < 64, (before, after)
        assert (after.ts - before.ts) & 0xFFFFFFFF < 4 * 90000, (before, after)
        assert (after.picture_id - before.picture_id) & 0x7FFF < 16, (before, after)
        assert (after.tl0 - before.tl0) & 0xFF < 16, (before, after)


def longest_gap(player: Peer, since: float) -> float:
    times = [p.at for p in video(player, since)]
    return max((b - a for a, b in itertools.pairwise(times)), default=float("inf"))


def test_a_bottleneck_moves_the_player_down_and_back_up() -> None:
    h = Harness()
    _, player = h.simulcast_pair()
    free = h.player("s")
    h.connect(free)
    run_until(h, player, {"f"}, 15)
    run_until(h, free, {"f"}, 15)
    free_switches = handler(free).tracks[1].layer_switches
    limited = h.now
    player.down.rate = 400_000  # the top layer alone is 1.2 Mbit/s
    run_until(h, player, {"q"}, 10)
    seen = []
    for _ in range(20):  # and it stays low, still playing; an upgrade probe may come and go
        h.run(0.5)
        seen.append(layer_of(player))
    assert "f" not in seen and seen.count("q") > len(seen) // 2, seen
    # Still decoding: a failed probe may cut the estimate below q itself for a while, and then
    # only q's base temporal layer is sent (a quarter of its 30 packets a second).
    assert len(video(player, h.now - 2)) > 10
    assert longest_gap(player, limited + 3) < 1.0  # no freeze once it settled
    snapshot = handler(player).stats().to_json()
    assert snapshot["estimate"] < 1_000_000 and snapshot["overuses"] >= 1
    lifted = h.now
    player.down.rate = 0
    run_until(h, player, {"f"}, 20)
    assert longest_gap(player, lifted) < 1.0  # no freeze across the switches up
    assert layer_of(free) == "f"  # the neighbour on a free link never moved
    assert handler(free).tracks[1].layer_switches == free_switches
    assert_no_jumps(video(player))
    assert_continuous(video(free), 4 * 90000)
    assert_vp8_continuous(video(free))


def test_a_mid_bottleneck_settles_on_the_middle_layer() -> None:
    h = Harness()
    _, player = h.simulcast_pair()
    run_until(h, player, {"f"}, 15)
    player.down.rate = 900_000  # h (0.6 Mbit/s) fits, f does not
    run_until(h, player, {"h"}, 10)
    h.run(20)
    switches = handler(player).tracks[1].layer_switches
    h.run(10)
    # At most one more probe of the top layer in 10 s: the hold backs off after failures.
    assert handler(player).tracks[1].layer_switches - switches <= 2
    assert layer_of(player) in {"h", "f"}
    assert len(video(player, h.now - 1)) > 40


def remb(sender_ssrc: int, bitrate: int) -> bytes:
    """A REMB (draft-alvestrand-rmcat-remb) for one SSRC: exponent and 18-bit mantissa."""
    exponent = max(0, bitrate.bit_length() - 18)
    value = exponent << 18 | bitrate >> exponent
    body = struct.pack("!II", sender_ssrc, 0) + b"REMB" + bytes([1]) + value.to_bytes(3, "big")
    body += struct.pack("!I", 1)
    return struct.pack("!BBH", 0x80 | 15, rtp.RTCP_PSFB, (len(body) + 4) // 4 - 1) + body


def test_a_player_that_sends_only_remb_follows_it() -> None:
    h = Harness()
    _, player = h.simulcast_pair(transport_cc=False)
    run_until(h, player, {"f"}, 15)
    assert handler(player).estimate() is None  # no feedback of any kind: no limit
    player.send_rtcp(remb(player.rtcp_ssrc, 200_000))
    run_until(h, player, {"q"}, 5)  # down at once, all the way
    assert handler(player).stats().to_json()["estimate"] == 200_000


def test_below_the_lowest_layer_only_its_base_temporal_layer_is_sent() -> None:
    h = Harness()
    _, player = h.simulcast_pair()
    run_until(h, player, {"f"}, 15)
    player.down.rate = 150_000  # even q (0.3 Mbit/s) does not fit; its base frames do
    track = handler(player).tracks[1]
    for _ in range(40):
        h.run(0.5)
        if track.max_temporal == 0 and layer_of(player) == "q":
            break
    assert (layer_of(player), track.max_temporal) == ("q", 0)
    h.run(4.0)
    recent = video(player, h.now - 2)
    assert recent and {p.temporal_id for p in recent} == {0}  # a quarter of the frames
    assert_continuous(recent, 90000)  # renumbered: no gap where frames were left out
    assert len({p.tl0 for p in recent}) >= 10  # base frames keep coming, ~7.5 a second
    assert handler(player).stats().to_json()["tracks"][1]["temporal_drops"] > 0
    player.down.rate = 0
    for _ in range(60):
        h.run(0.5)
        if track.max_temporal is None:
            break
    assert track.max_temporal is None
    h.run(2.0)
    assert {p.temporal_id for p in video(player, h.now - 1)} == {0, 1, 2}
