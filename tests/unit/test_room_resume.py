"""Paused video comes back (sfu.protocol.resume): the allocation names what to test, the
back-off and trial rules alone, then in memory a REMB-only subscriber whose low REMB paused
every video (resumed on trial, kept when the link carries it, paused again with a growing
wait when it does not)."""

from __future__ import annotations

import itertools

from sfu.media import AUDIO, VIDEO
from sfu.protocol.allocation import LayerOption, Priority, Want, allocate
from sfu.protocol.resume import (
    MAX_TRIAL_WAIT,
    TRIAL_DURATION,
    TRIAL_WAIT,
    Trial,
    probe_wait,
    trial_wait,
)
from sfu.routing.router import SUBSCRIBE
from tests.harness import Harness, Peer, record_rtp
from tests.unit.room_peers import TWO_EACH, Participant, assigned
from tests.unit.test_simulcast_adaptation import remb

LOW_REMB = 200_000  # what aiortc's REMB sat at: both audios fit, no 0.6 Mbit/s video does


def test_the_allocation_names_the_first_paused_video_and_its_budget() -> None:
    audio = Want("a", AUDIO, (LayerOption(0, None, 50_000),))
    speaker = Want("s", VIDEO, (LayerOption(0, None, 300_000),), Priority.SPEAKER)
    other = Want("o", VIDEO, (LayerOption(0, None, 200_000),), Priority.OTHER)
    wants = [audio, other, speaker]
    assert allocate(100_000, wants).resume == ("s", 350_000)
    assert allocate(400_000, wants).resume == ("o", 550_000)
    assert allocate(550_000, wants).resume is None
    assert allocate(None, wants).resume is None  # unknown: nothing paused
    held = allocate(100_000, wants, at_least=1)  # the speaker's video is shown whatever it costs
    assert (held.shown, held.paused, held.resume) == (1, 1, ("o", 550_000))
    assert held.allocated == 350_000


def test_the_backoff_waits_doubles_on_failure_and_resets() -> None:
    wait = trial_wait()
    assert not wait.due(0.0) and not wait.due(TRIAL_WAIT - 0.1) and wait.due(TRIAL_WAIT)
    waits = []
    for _ in range(5):
        wait.failed(100.0)
        assert wait.at is not None
        waits.append(wait.at - 100.0)
    assert waits == [10.0, 20.0, 30.0, 30.0, 30.0]
    wait.passed(200.0)
    assert wait.at == 200.0 + TRIAL_WAIT and wait.failures == 0
    wait.idle()
    assert wait.at is None and not wait.due(300.0)
    probes = probe_wait()
    probes.passed(400.0)
    assert probes.due(400.0)  # the next paused video is probed right after one came back


def test_a_trial_fails_on_loss_overuse_or_a_cut_and_passes_once_it_lasted() -> None:
    trial = Trial(2, 0.0, overuses=1, floor=300_000.0)
    assert trial.verdict(1.0, 1, 350_000.0, 0.0) is None
    assert trial.verdict(1.0, 1, 350_000.0, 0.2) is False
    assert trial.verdict(1.0, 2, 350_000.0, 0.0) is False
    assert trial.verdict(1.0, 1, 250_000.0, 0.0) is False
    assert trial.verdict(TRIAL_DURATION, 1, 300_000.0, 0.01) is True
    remb_only = Trial(2, 0.0, overuses=0, floor=0.0)
    assert remb_only.verdict(TRIAL_DURATION, 0, 150_000.0, 0.0) is True  # a REMB is a floor


class RembOnly(Participant):
    """A subscriber that offers no transport-cc, as aiortc does: REMB is all it can send."""

    def __init__(self, h: Harness, name: str) -> None:
        self.name = name
        self.publisher = None
        self.subscriber = h._peer(SUBSCRIBE, f"r/{name}", None, kinds=TWO_EACH, transport_cc=False)
        self.packets = record_rtp(self.subscriber)


def remb_only_room(h: Harness) -> tuple[Participant, list[Participant]]:
    """Participant a subscribes with REMB only; b and c publish and subscribe as usual."""
    a = RembOnly(h, "a")
    others = [Participant(h, "r", name, TWO_EACH) for name in "bc"]
    h.connect(a.subscriber, *(p for o in others for p in o.peers))
    return a, others


def run_with_remb(h: Harness, peer: Peer, seconds: float, bitrate: int, watch=None) -> None:
    """Run, the peer sending a REMB of `bitrate` every half second; `watch(now)` after each."""
    for _ in range(round(seconds / 0.5)):
        peer.send_rtcp(remb(peer.rtcp_ssrc, bitrate))
        h.run(0.5)
        if watch is not None:
            watch(h.now)


def subscriber_of(participant: Participant):
    return participant.subscriber.session.handler


def test_a_low_remb_pauses_every_video_and_trials_bring_them_back() -> None:
    h = Harness()
    a, _ = remb_only_room(h)
    run_with_remb(h, a.subscriber, 4.0, LOW_REMB)  # the sources' rates are measured by then
    view = a.view(h)
    assert view.paused == 2 and view.estimate == LOW_REMB
    paused_at = h.now
    resumed: list[float] = []

    def watch(now: float) -> None:
        resumed.extend([now - paused_at] * (2 - a.view(h).paused - len(resumed)))

    run_with_remb(h, a.subscriber, 25.0, LOW_REMB, watch)
    view = a.view(h)
    print(f"REMB-only resumes after the pause: {resumed} s; trials {view.trials}")
    assert view.paused == 0 and view.trials == 2 and view.failed_trials == 0
    assert len(resumed) == 2 and resumed[-1] <= 2 * TRIAL_WAIT + TRIAL_DURATION + 2
    slots = assigned(view)
    for other in "bc":
        got = a.on_slot(slots[(other, "video")], since=paused_at + 0.5)
        assert got and got[0][2], "a video on trial starts from a keyframe"
        assert len(a.on_slot(slots[(other, "video")], since=h.now - 1)) > 30  # and it stayed
    assert view.estimate == LOW_REMB and view.allocated > LOW_REMB  # held above the REMB


def test_a_capped_remb_only_link_fails_its_trials_and_waits_longer_each_time() -> None:
    h = Harness()
    a, _ = remb_only_room(h)
    a.subscriber.down.rate = 300_000  # both audios fit, no video does
    run_with_remb(h, a.subscriber, 4.0, LOW_REMB)
    assert a.view(h).paused == 2
    started: list[float] = []

    def watch(now: float) -> None:
        if subscriber_of(a).trials > len(started):
            started.append(now)

    run_with_remb(h, a.subscriber, 60.0, LOW_REMB, watch)
    view = a.view(h)
    gaps = [later - earlier for earlier, later in itertools.pairwise(started)]
    print(f"capped REMB-only trials at {[round(t - started[0], 1) for t in started]} s")
    assert view.trials == len(started) >= 3 and view.failed_trials >= view.trials - 1
    assert gaps[1] > gaps[0] + TRIAL_WAIT / 2  # the wait doubles after each failure
    assert max(gaps) <= MAX_TRIAL_WAIT + TRIAL_DURATION + 1
    assert view.paused == 2 or subscriber_of(a).trial is not None
    audio = a.on_slot(assigned(view)[("b", "audio")], since=h.now - 10)
    assert len(audio) > 300  # audio never paused
