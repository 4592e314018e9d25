"""A player's downlink bandwidth, estimated by the server from its transport-cc feedback.

In the spirit of GCC (draft-ietf-rmcat-gcc): a delay-based part watches whether packets arrive
more spread out than they were sent (a queue growing at the bottleneck), a loss-based part
watches the loss the feedback reports, and the estimate follows them: down to what was really
delivered on overuse or heavy loss, held on underuse, up by a few percent a second otherwise.

Send times are not kept per packet (the compiled fan-out numbers them without telling Python):
the router notes each player's next transport-wide sequence number and bytes sent every feedback
tick, and a packet's send time is the tick after it (a probe's padding, numbered and counted
too, is sent just before a tick: its groups measure the probe). Groups of one tick are what the
delay gradient compares. REMB, when that is all a player sends, is taken as the estimate.
"""

from __future__ import annotations

from collections import deque

MAX_TICKS = 40  # send-side notes kept: 2 s at one per 50 ms; feedback on older packets is stale
MAX_PENDING = 4096  # reports of packets sent since the newest note, held until the next
TREND_WINDOW = 20  # groups in the delay trend's regression
OVERUSE_SLOPE = 0.08  # ms of extra delay per ms: a queue growing at 8% of the link
UNDERUSE_SLOPE = -0.08
OVERUSE_DELAY_MS = 20.0  # and at least this much queueing delay gained over the window
HIGH_LOSS = 0.10
LOW_LOSS = 0.02
DECREASE = 0.85  # of the delivered rate, on overuse
INCREASE_PER_SECOND = 1.15
INITIAL_ESTIMATE = 2_500_000.0  # optimistic: the first overuse or loss brings it down
MIN_ESTIMATE = 50_000.0
RATE_WINDOW = 1.0  # seconds of delivered traffic behind the delivered rate
DECREASE_INTERVAL = 0.3  # at most one cut per this long: its effect takes a round trip to show
MAX_OVER_DELIVERED = 1.5  # when held to it, growth stops at this many times the delivered rate


class _Tick:
    __slots__ = ("at", "bytes", "last_arrival", "lost", "received", "reported", "seq")

    def __init__(self, seq: int, at: float, sent_bytes: int) -> None:
        self.seq = seq  # extended transport-wide sequence number of the next packet
        self.at = at
        self.bytes = sent_bytes
        self.last_arrival: float | None = None  # seconds, on the player's clock
        self.received = 0
        self.lost = 0
        self.reported = False  # every packet of its group has been reported


class BandwidthEstimator:
    """One player's estimate, fed by send-side ticks, feedback and REMB."""

    def __init__(self) -> None:
        self._ticks: deque[_Tick] = deque(maxlen=MAX_TICKS)
        self._highest_reported = -1  # extended, of packets put in their groups
        self._reported_to = -1  # extended: the highest number any feedback reported
        # Reports of packets numbered after the newest note: (first extended number, arrivals
        # in µs or None), grouped once the next note says where their group ends.
        self._pending: list[tuple[int, list[int | None]]] = []
        self._delays: deque[tuple[float, float]] = deque(maxlen=TREND_WINDOW)
        self._accumulated = 0.0
        self._previous: _Tick | None = None
        # (arrival s, bits) per group: trimmed by the player's clock, so bounded by count too.
        self._delivered: deque[tuple[float, float]] = deque(maxlen=MAX_TICKS)
        self._loss: deque[tuple[float, int, int]] = deque()  # (at, received, lost) per group
        self._updated_at: float | None = None
        self._decreased_at = float("-inf")
        self.delay_estimate = INITIAL_ESTIMATE
        self.remb: float | None = None
        self.feedback_used = False
        self.state = "normal"  # of the delay detector: normal, overuse or underuse
        self.overuses = 0
        # Set while the owner sends less than it would like (a room's paused video): the
        # estimate then grows no further than MAX_OVER_DELIVERED times what was delivered,
        # since little traffic proves nothing of the link; a probe proves more.
        self.held_to_delivered = False

    @property
    def estimate(self) -> float | None:
        """Bits per second the player's link carries; None while nothing tells."""
        if self.feedback_used:
            return self.delay_estimate
        return self.remb

    def note_sent(self, next_seq: int, sent_bytes: int, now: float) -> None:
        """Every feedback tick: the player's next transport-wide number and bytes sent so far."""
        ticks = self._ticks
        if ticks:
            last = ticks[-1].seq
            extended = last + ((next_seq - last) & 0xFFFF)
            if extended == last:
                ticks[-1].at, ticks[-1].bytes = now, sent_bytes  # nothing sent since
                return
        else:
            extended = next_seq
        ticks.append(_Tick(extended, now, sent_bytes))
        if self._pending:
            self._assign(now)

    def _group_of(self, seq: int) -> int:
        """The index of the tick after which packet `seq` (extended) was numbered, or -1."""
        ticks = self._ticks
        low, high = 0, len(ticks)
        while low < high:
            mid = (low + high) // 2
            if ticks[mid].seq <= seq:
                low = mid + 1
            else:
                high = mid
        return low if 0 < low < len(ticks) else -1

    def _extend(self, seq: int) -> int:
        """A 16-bit transport-wide number as the extended one nearest the newest note."""
        newest = self._ticks[-1].seq
        return newest + ((seq - newest + 0x8000) & 0xFFFF) - 0x8000

    def _floor(self) -> int:
        """The lowest number feedback may still report: sent after the oldest note kept, and
        after every number reported already (each packet is reported once)."""
        return max(self._ticks[0].seq, self._reported_to + 1)

    def usable(self, base: int, count: int, next_seq: int) -> tuple[int, int]:
        """Of `count` statuses from `base` (16 bits), the offsets [skip, end) of those this
        estimator would use: packets really sent (before `next_seq`, the player's next
        transport-wide number), not too old and not reported before. (0, 0) for none."""
        ticks = self._ticks
        if len(ticks) < 2:
            return 0, 0
        start = self._extend(base)
        newest = ticks[-1].seq
        skip = max(0, self._floor() - start)
        end = min(count, newest + ((next_seq - newest) & 0xFFFF) - start)
        return (skip, end) if skip < end else (0, 0)

    def on_feedback(self, base: int, arrivals: list[int | None], now: float) -> None:
        """One transport-cc feedback: arrivals (µs) or None per packet from `base` on.

        Statuses below _floor() are ignored, and at most MAX_PENDING past the newest note are
        held; the work is a few C-speed passes over the statuses, and Python per group."""
        ticks = self._ticks
        if len(ticks) < 2:
            return
        start = self._extend(base)
        floor = self._floor()
        if start < floor:
            arrivals, start = arrivals[floor - start :], floor
        arrivals = arrivals[: max(0, ticks[-1].seq + MAX_PENDING - start)]
        if not arrivals:
            return
        self._reported_to = start + len(arrivals) - 1
        self._pending.append((start, arrivals))
        self._assign(now)

    def _assign(self, now: float) -> None:
        """Put reported packets sent before the newest note into their groups."""
        ticks = self._ticks
        newest = ticks[-1].seq
        waiting: list[tuple[int, list[int | None]]] = []
        first = len(ticks)
        for start, arrivals in self._pending:
            ready = max(0, newest - start)
            if ready < len(arrivals):
                waiting.append((start + ready, arrivals[ready:]))
            if ready:
                first = min(first, self._count(start, arrivals[:ready]))
        self._pending = waiting
        if first == len(ticks):
            return
        self.feedback_used = True
        trended = False
        for index in range(first, len(ticks)):
            tick = ticks[index]
            if tick.seq - 1 > self._highest_reported:
                break  # its last packet is not reported yet
            if tick.reported:
                continue
            tick.reported = True
            trended |= self._group_done(ticks[index - 1], tick, now)
        if trended:  # once per feedback, not per group: one may complete 200 groups
            self._detect()
        self._update(now)

    def _count(self, start: int, arrivals: list[int | None]) -> int:
        """Add the reports of packets start, start + 1, ... to their groups, one slice per
        group; the index of the first group. They were all numbered before the newest note
        and, being at or above the floor (or the note before the newest, when they waited),
        after the oldest: every one has a group."""
        ticks = self._ticks
        first = index = self._group_of(start)
        done = 0
        while done < len(arrivals):
            tick = ticks[index]
            part = arrivals[done : tick.seq - start]
            done += len(part)
            index += 1
            received = [arrival for arrival in part if arrival is not None]
            tick.lost += len(part) - len(received)
            if received:
                tick.received += len(received)
                at = max(received) / 1e6
                if tick.last_arrival is None or at > tick.last_arrival:
                    tick.last_arrival = at
        self._highest_reported = max(self._highest_reported, start + len(arrivals) - 1)
        return first

    def _group_done(self, before: _Tick, tick: _Tick, now: float) -> bool:
        """A group fully reported: its loss, delivered bits and delay change; True when it
        added a point to the delay trend."""
        packets = tick.seq - before.seq
        if packets <= 0:
            return False
        self._loss.append((now, tick.received, tick.lost))
        if tick.last_arrival is None:
            return False
        size_bits = 8 * (tick.bytes - before.bytes) / packets
        self._delivered.append((tick.last_arrival, tick.received * size_bits))
        previous = self._previous
        self._previous = tick
        if previous is None or previous.last_arrival is None:
            return False
        variation = (tick.last_arrival - previous.last_arrival) - (tick.at - previous.at)
        self._accumulated = max(0.0, self._accumulated + 1000 * variation)
        self._delays.append((1000 * tick.last_arrival, self._accumulated))
        return True

    def _detect(self) -> None:
        """Overuse when the accumulated delay grows steadily over the window (a regression
        slope) and by a noticeable amount; underuse when it drains the same way."""
        points = self._delays
        if len(points) < TREND_WINDOW // 2:
            return
        mean_x = sum(x for x, _ in points) / len(points)
        mean_y = sum(y for _, y in points) / len(points)
        spread = sum((x - mean_x) ** 2 for x, _ in points)
        if spread <= 0:
            return
        slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
        rise = points[-1][1] - points[0][1]
        if slope > OVERUSE_SLOPE and rise > OVERUSE_DELAY_MS:
            if self.state != "overuse":
                self.overuses += 1
            self.state = "overuse"
        elif slope < UNDERUSE_SLOPE:
            self.state = "underuse"
        else:
            self.state = "normal"

    def delivered_rate(self, now: float) -> float | None:
        """Bits per second that reached the player over the last RATE_WINDOW of arrivals."""
        delivered = self._delivered
        if not delivered:
            return None
        newest = delivered[-1][0]
        while delivered and delivered[0][0] < newest - RATE_WINDOW:
            delivered.popleft()
        span = newest - delivered[0][0]
        if span < RATE_WINDOW / 2:
            return None
        return sum(bits for _, bits in delivered) / span

    def loss_fraction(self, now: float) -> float:
        loss = self._loss
        while loss and loss[0][0] < now - RATE_WINDOW:
            loss.popleft()
        received = sum(r for _, r, _ in loss)
        lost = sum(lost for _, _, lost in loss)
        return lost / (received + lost) if received + lost else 0.0

    def _update(self, now: float) -> None:
        elapsed = 0.0 if self._updated_at is None else min(1.0, now - self._updated_at)
        self._updated_at = now
        delivered = self.delivered_rate(now)
        loss = self.loss_fraction(now)
        estimate = self.delay_estimate
        if self.state == "overuse" or loss > HIGH_LOSS:
            if delivered is not None and now - self._decreased_at >= DECREASE_INTERVAL:
                target = DECREASE * delivered
                if loss > HIGH_LOSS:  # what got through, less half the loss again
                    target = min(target, delivered * (1 - 0.5 * loss))
                if target < estimate:
                    estimate = target
                    self._decreased_at = now
                # Judge the link afresh after a cut: old delays and losses told their story.
                self._delays.clear()
                self._accumulated = 0.0
                self._loss.clear()
                self.state = "normal"
        elif self.state == "normal" and loss < LOW_LOSS:
            grown = estimate * INCREASE_PER_SECOND**elapsed  # layer pacing decides when to try it
            if self.held_to_delivered:  # up to the bound, never cut by it
                bound = MAX_OVER_DELIVERED * (delivered or 0.0)
                grown = max(estimate, min(grown, bound))
            estimate = grown
        self.delay_estimate = min(INITIAL_ESTIMATE * 4, max(MIN_ESTIMATE, estimate))
