"""The per-player bandwidth estimator and layer pacing on synthetic feedback; TWCC parsing."""

from __future__ import annotations

import pytest

from sfu.protocol.bwe import INITIAL_ESTIMATE, MAX_OVER_DELIVERED, BandwidthEstimator
from sfu.protocol.simulcast import (
    MAX_UPGRADE_HOLD,
    UPGRADE_HOLD,
    Choice,
    LayerPace,
    choose,
    remb_choice,
)
from sfu.protocol.twcc import TwccRecorder, parse_feedback
from sfu.wire import rtp

TICK = 0.05
PACKET = 1200


def run_link(
    bwe: BandwidthEstimator,
    seconds: float,
    send_rate: float,
    link_rate: float,
    loss_every: int = 0,
    start: float = 0.0,
    seq: int = 0,
) -> tuple[float, int]:
    """Send at `send_rate` through a `link_rate` bottleneck (its queue grows when the send
    rate is higher), ticking and feeding back every 50 ms; returns (time, next seq)."""
    per_tick = max(1, round(send_rate * TICK / (8 * PACKET)))
    busy = start
    now = start
    sent = seq * PACKET
    for _ in range(round(seconds / TICK)):
        base = seq
        arrivals: list[int | None] = []
        for i in range(per_tick):
            departure = now + i * TICK / per_tick
            busy = max(busy, departure) + 8 * PACKET / link_rate
            lost = loss_every and (seq + i) % loss_every == 0
            arrivals.append(None if lost else int((busy + 0.02) * 1e6))
        seq += per_tick
        sent += per_tick * PACKET
        now += TICK
        bwe.note_sent(seq & 0xFFFF, sent, now)
        bwe.on_feedback(base & 0xFFFF, arrivals, now + 0.03)
    return now, seq


def test_a_free_link_keeps_the_estimate_up_and_normal() -> None:
    bwe = BandwidthEstimator()
    assert bwe.estimate is None  # nothing known yet
    bwe.note_sent(0, 0, 0.0)
    run_link(bwe, 5, send_rate=1_000_000, link_rate=5_000_000)
    assert bwe.state == "normal" and bwe.overuses == 0
    assert bwe.estimate is not None and bwe.estimate >= INITIAL_ESTIMATE
    assert bwe.delivered_rate(5.0) == pytest.approx(1_000_000, rel=0.1)


def test_a_growing_queue_is_overuse_and_cuts_to_what_got_through() -> None:
    bwe = BandwidthEstimator()
    bwe.note_sent(0, 0, 0.0)
    run_link(bwe, 3, send_rate=1_200_000, link_rate=600_000)
    assert bwe.overuses >= 1
    assert bwe.estimate is not None
    # Cut to DECREASE of what got through, then creeping up again: near the bottleneck,
    # far below both the starting estimate and the 1.2 Mbit/s sent.
    assert 0.5 * 600_000 <= bwe.estimate <= 1.1 * 600_000


def test_heavy_loss_cuts_the_estimate() -> None:
    bwe = BandwidthEstimator()
    bwe.note_sent(0, 0, 0.0)
    run_link(bwe, 3, send_rate=1_000_000, link_rate=50_000_000, loss_every=4)  # 25% lost
    assert bwe.estimate is not None and bwe.estimate < 1_000_000
    assert bwe.loss_fraction(3.0) > 0.1 or bwe.estimate < 0.9 * 1_000_000


def test_the_estimate_recovers_once_the_link_is_free_again() -> None:
    bwe = BandwidthEstimator()
    bwe.note_sent(0, 0, 0.0)
    now, seq = run_link(bwe, 3, send_rate=1_200_000, link_rate=600_000)
    low = bwe.estimate
    assert low is not None
    run_link(bwe, 10, send_rate=500_000, link_rate=50_000_000, start=now, seq=seq)
    assert bwe.estimate is not None and bwe.estimate > 2.5 * low


def test_held_to_delivered_the_estimate_grows_only_to_its_bound_and_is_not_cut_by_it() -> None:
    """200 kbit/s sent after a cut: free, the estimate grows 15% a second however little
    was sent; held, it grows from below to MAX_OVER_DELIVERED times the delivered rate and
    no further, and one above that bound already (a probe proved it) is kept, not cut."""
    ends = {}
    for held, start in ((False, None), (True, None), (True, 100_000.0)):
        bwe = BandwidthEstimator()
        bwe.note_sent(0, 0, 0.0)
        now, seq = run_link(bwe, 3, send_rate=1_200_000, link_rate=600_000)
        after_cut = bwe.delay_estimate
        bwe.held_to_delivered = held
        bwe.delay_estimate = start or after_cut
        run_link(bwe, 10, send_rate=200_000, link_rate=600_000, start=now, seq=seq)
        ends[held, start] = (after_cut, bwe.delay_estimate)
    print(f"estimates (after the cut, 10 s later): {ends}")
    assert ends[False, None][1] > 1_000_000  # past the 600 kbit/s link, on 200 kbit/s
    after_cut, kept = ends[True, None]
    assert after_cut > MAX_OVER_DELIVERED * 200_000 and kept == after_cut
    assert ends[True, 100_000.0][1] == pytest.approx(MAX_OVER_DELIVERED * 200_000, rel=0.1)


def test_only_packets_sent_and_not_yet_reported_are_usable() -> None:
    bwe = BandwidthEstimator()
    assert bwe.usable(0, 10, 10) == (0, 0)  # no notes yet: nothing to group them in
    bwe.note_sent(100, 0, 0.0)
    bwe.note_sent(110, 12_000, 0.05)
    assert bwe.usable(30_000, 2, 120) == (0, 0)  # never sent
    assert bwe.usable(90, 40, 120) == (10, 30)  # 90-99 sent before the oldest note; 120 on not
    assert bwe.usable(115, 20, 118) == (0, 3)  # 115-117 sent since the newest note
    bwe.on_feedback(100, [1_000] * 10, 0.06)
    assert bwe.feedback_used
    assert bwe.usable(100, 15, 115) == (10, 15)  # 100-109 reported already
    bwe.on_feedback(100, [None] * 15, 0.07)  # the same again, and 110-114 as lost
    assert bwe.usable(100, 15, 115) == (0, 0)
    assert bwe.loss_fraction(0.07) == 0.0  # 100-109 were not counted lost a second time


def test_remb_is_the_estimate_when_there_is_no_transport_feedback() -> None:
    bwe = BandwidthEstimator()
    bwe.remb = 300_000.0
    assert bwe.estimate == 300_000.0


def test_feedback_round_trip_and_bad_input() -> None:
    recorder = TwccRecorder()
    for seq, at in [(65534, 1_000), (65535, 2_000), (1, 5_000), (2, 300_000)]:
        recorder.record(seq, at)
    feedback = recorder.build(1, 2)
    assert feedback is not None
    body = rtp.split_rtcp(feedback)[0].body
    assert parse_feedback(body) == (65534, [1_000, 2_000, None, 5_000, 300_000])
    with pytest.raises(rtp.RtpError, match="too short"):
        parse_feedback(body[:8])
    with pytest.raises(rtp.RtpError, match="run past the end"):
        parse_feedback(body[:13])
    with pytest.raises(rtp.RtpError, match="reports 65535 packets"):
        parse_feedback(body[:6] + b"\xff\xff" + body[8:])
    reserved = body[:4] + b"\x00\x00\x00\x01" + body[8:12] + b"\xf0\x00"  # symbol 3
    with pytest.raises(rtp.RtpError, match="reserved"):
        parse_feedback(reserved)


class FakeLayer:
    def __init__(self, rid: str, width: int, bitrate: float) -> None:
        self.rid, self.width, self.height = rid, width, width * 9 // 16
        self.bitrate, self.packets = bitrate, 1


def test_choose_pins_caps_and_fits_the_estimate() -> None:
    layers = [
        FakeLayer("f", 1280, 1_500_000),
        FakeLayer("q", 320, 150_000),
        FakeLayer("h", 640, 500_000),
    ]
    pick = lambda choice, estimate: choose(layers, choice, estimate).rid  # noqa: E731
    assert pick(Choice(), None) == "f"
    assert pick(Choice(), 600_000) == "h"
    assert pick(Choice(), 100_000) == "q"  # nothing fits: the lowest, never nothing
    assert pick(Choice(rid="q"), None) == "q"
    assert pick(Choice(max_width=640), None) == "h"
    assert pick(Choice(max_height=200), 10_000_000) == "q"
    assert choose(layers, Choice(rid="zz"), None) is None


def test_pace_holds_upgrades_and_backs_off_after_a_failed_one() -> None:
    pace = LayerPace()
    assert pace.allows_upgrade(0.0)
    pace.changed(True, 0.0)
    assert not pace.allows_upgrade(UPGRADE_HOLD - 0.1) and pace.allows_upgrade(UPGRADE_HOLD)
    pace.changed(False, 2.0)  # undone within seconds: the upgrade did not fit
    assert pace.hold == 2 * UPGRADE_HOLD
    pace.changed(False, 2.5)  # a second step down is the same failure
    assert pace.hold == 2 * UPGRADE_HOLD
    assert not pace.allows_upgrade(2.5 + UPGRADE_HOLD) and pace.allows_upgrade(
        2.5 + 2 * UPGRADE_HOLD
    )
    pace.changed(True, 20.0)
    assert pace.allows_upgrade(27.0) and pace.hold == UPGRADE_HOLD  # it held: back to normal


def test_a_failed_probe_doubles_the_hold_from_the_failure_up_to_the_most() -> None:
    pace = LayerPace()
    assert pace.allows_upgrade(10.0)
    pace.probe_failed(10.0)
    assert pace.hold == 2 * UPGRADE_HOLD
    assert not pace.allows_upgrade(10.0 + 2 * UPGRADE_HOLD - 0.1)
    assert pace.allows_upgrade(10.0 + 2 * UPGRADE_HOLD)
    for at in (30.0, 50.0, 70.0):
        pace.probe_failed(at)
    assert pace.hold == MAX_UPGRADE_HOLD  # however often the link says no
    pace.changed(True, 80.0)  # a probe that held, its upgrade kept: back to the short hold
    assert pace.allows_upgrade(80.0 + MAX_UPGRADE_HOLD) and pace.hold == UPGRADE_HOLD


def test_remb_moves_down_when_short_and_otherwise_allows_probing_up() -> None:
    q, h, f = (
        FakeLayer("q", 320, 150_000),
        FakeLayer("h", 640, 500_000),
        FakeLayer("f", 1280, 1_500_000),
    )
    layers = [q, h, f]
    # A receiver's REMB sits near what it gets: 1.3 Mbit/s on f is no reason to leave it.
    assert remb_choice(layers, Choice(), f, 1_300_000) is f
    # Well short of the current layer: down to what fits.
    assert remb_choice(layers, Choice(), f, 600_000) is h
    assert remb_choice(layers, Choice(), h, 100_000) is q
    # On q with a REMB that only shows q's rate: the ceiling, which adapt() probes towards.
    assert remb_choice(layers, Choice(), q, 160_000) is f
    assert remb_choice(layers, Choice(max_width=640), q, 160_000) is h
