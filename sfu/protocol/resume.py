"""Bringing paused video back (DESIGN.md, Rooms): a video that does not fit even at its lowest
layer is paused, and resumes, from a keyframe, when it fits.

Pausing removes the very traffic that would show the link has room again, so waiting for the
estimate to grow is not enough: a send-side estimate grows slowly on little traffic, and a
receiver's REMB never does. A receive-side estimator (libwebrtc's REMB, aiortc's) is bounded by
about 1.5 times what it receives, and aiortc only estimates from video: with every video paused
its REMB stays where it was, forever. So a REMB is a floor to test, not a ceiling. The room
subscriber therefore tests the budget that would show the first paused video (by priority) at
its lowest layer (allocation.Allocation.resume), in one of two ways:

- Probe, when it can be probed (transport-cc feedback and an RTX stream to pad on): padding
  brings the send rate to that budget for a second (sfu.protocol.probe), judged by the
  send-side estimator. When it held, the estimate starts from what was delivered, the video
  resumes at once, and the next paused one is probed right after. Padding costs nothing on
  screen, so probes start soon after a pause (PROBE_WAIT) and back off to MAX_PROBE_WAIT while
  they fail.
- Trial, when it cannot: the video itself resumes, for TRIAL_DURATION, whatever it costs.
  It stays when the link showed no congestion meanwhile (no loss in the receiver reports above
  TRIAL_LOSS; with transport-cc, no overuse and no cut of the estimate); otherwise it pauses
  again. With REMB only, what is held then is a count: the first N videos by priority stay
  shown (allocate's `at_least`), one fewer at each report of loss over TRIAL_LOSS. A count,
  not a budget: the sources' rates move by tens of percent from one second to the next.
  A REMB is not judged: a receive-side estimate lags what it receives, and aiortc sends one
  per video stream, each its own. Loss is what every receiver reports. A trial shows video
  that may not fit, so trials start later (TRIAL_WAIT) and back off further (MAX_TRIAL_WAIT).

Nor may the estimate itself resume a video: while one is paused, the send-side estimate
grows no further than 1.5 times what was delivered (bwe.MAX_OVER_DELIVERED), or 15% a second
on audio alone would pass the link's capacity and the allocation would resume the video into
a link that drops it; only a probe or trial that held lifts it past that.

A truly capped link still pauses: each failed probe or trial doubles the wait, and each lossy
report pauses one held video more. One paused video is tested at a time, the best
priority first, so videos come back in the order the allocation would show them.
"""

from __future__ import annotations

PROBE_WAIT = 1.0  # seconds after a pause, or a probe that held, before the next probe
MAX_PROBE_WAIT = 8.0
TRIAL_WAIT = 5.0  # seconds after a pause, or a trial that held, before the next trial
MAX_TRIAL_WAIT = 30.0
TRIAL_DURATION = 3.0  # seconds a trial lasts: receiver reports come about once a second
TRIAL_LOSS = 0.05  # fraction lost in a report that fails a trial, or drops a held budget


class Backoff:
    """When to test a paused video next: `base` seconds after a pause, `after_pass` after a
    test that held, and after a failure twice the last wait, up to `ceiling`."""

    def __init__(self, base: float, ceiling: float, after_pass: float) -> None:
        self.base = base
        self.ceiling = ceiling
        self.after_pass = after_pass
        self.failures = 0
        self.at: float | None = None  # None while nothing is paused

    def due(self, now: float) -> bool:
        """True once the wait since the pause (or the last test) is over."""
        if self.at is None:
            self.at = now + self.base
        return now >= self.at

    def passed(self, now: float) -> None:
        self.failures = 0
        self.at = now + self.after_pass

    def failed(self, now: float) -> None:
        self.failures += 1
        self.at = now + min(self.ceiling, self.base * 2**self.failures)

    def idle(self) -> None:
        """Nothing is paused: the next pause starts from the base wait."""
        self.failures = 0
        self.at = None


class Trial:
    """A paused video resumed on trial: the `videos` it shows, from `now`, against the
    estimator's overuse count and an estimate `floor` (0 when there is no send-side one)."""

    def __init__(self, videos: int, now: float, overuses: int, floor: float) -> None:
        self.videos = videos
        self.ends = now + TRIAL_DURATION
        self._overuses = overuses
        self._floor = floor

    def verdict(
        self, now: float, overuses: int, estimate: float | None, loss: float
    ) -> bool | None:
        """False at the first sign of congestion (loss over TRIAL_LOSS, an overuse, the
        estimate cut below the floor); True once it lasted; None while it runs."""
        if loss > TRIAL_LOSS or overuses != self._overuses or (estimate or 0.0) < self._floor:
            return False
        return True if now >= self.ends else None


def probe_wait() -> Backoff:
    """Probes cost nothing on screen: soon after a pause, and right after one that held."""
    return Backoff(PROBE_WAIT, MAX_PROBE_WAIT, after_pass=0.0)


def trial_wait() -> Backoff:
    """Trials show video that may not fit: later, and as late after one that held."""
    return Backoff(TRIAL_WAIT, MAX_TRIAL_WAIT, after_pass=TRIAL_WAIT)
