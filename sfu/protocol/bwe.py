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

MAX_TICKS = 200  # send-side notes kept: 10 s at one per 50 ms
MAX_PENDING = 4096  # reports of packets sent since the last note, held until the next one
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
        self._highest_reported = -1
        self._pending: dict[int, int | None] = {}  # extended seq -> arrival µs, not yet grouped
        self._delays: deque[tuple[float, float]] = deque(maxlen=TREND_WINDOW)
        self._accumulated = 0.0
        self._previous: _Tick | None = None
        self._delivered: deque[tuple[float, float]] = deque()  # (arrival s, bits) per group
        self._loss: deque[tuple[float, int, int]] = deque()  # (at, received, lost) per group
        self._updated_at: float | None = None
        self._decreased_at = float("-inf")
        self.delay_estimate = INITIAL_ESTIMATE
        self.remb: float | None = None
        self.feedback_used = False
        self.state = "normal"  # of the delay detector: normal, overuse or underuse
        self.overuses = 0
        self.bad_feedback = 0  # feedback naming packets never sent or long forgotten

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

    def on_feedback(self, base: int, arrivals: list[int | None], now: float) -> None:
        """One transport-cc feedback: arrivals (µs) or None per packet from `base` on."""
        ticks = self._ticks
        if len(ticks) < 2:
            return
        newest = ticks[-1].seq
        start = newest + ((base - newest + 0x8000) & 0xFFFF) - 0x8000  # `base`, extended
        pending = self._pending
        for offset, arrival in enumerate(arrivals):
            seq = start + offset
            if seq - newest >= MAX_PENDING or len(pending) >= MAX_PENDING:
                self.bad_feedback += 1  # not sent yet: the player names numbers we never used
                continue
            pending[seq] = arrival
        self._assign(now)

    def _assign(self, now: float) -> None:
        """Put reported packets sent before the newest note into their groups."""
        ticks = self._ticks
        newest = ticks[-1].seq
        touched: set[int] = set()
        for seq in [s for s in self._pending if s < newest]:
            arrival = self._pending.pop(seq)
            index = self._group_of(seq)
            if index < 0:
                self.bad_feedback += 1
                continue
            tick = ticks[index]
            if arrival is None:
                tick.lost += 1
            else:
                tick.received += 1
                at = arrival / 1e6
                if tick.last_arrival is None or at > tick.last_arrival:
                    tick.last_arrival = at
            touched.add(index)
            self._highest_reported = max(self._highest_reported, seq)
        if not touched:
            return
        self.feedback_used = True
        for index in range(min(touched), len(ticks)):
            tick = ticks[index]
            if tick.seq - 1 > self._highest_reported:
                break  # its last packet is not reported yet
            if tick.reported:
                continue
            tick.reported = True
            self._group_done(ticks[index - 1], tick, now)
        self._update(now)

    def _group_done(self, before: _Tick, tick: _Tick, now: float) -> None:
        """A group fully reported: its delay change, delivered bits and loss."""
        packets = tick.seq - before.seq
        if packets <= 0:
            return
        self._loss.append((now, tick.received, tick.lost))
        if tick.last_arrival is None:
            return
        size_bits = 8 * (tick.bytes - before.bytes) / packets
        self._delivered.append((tick.last_arrival, tick.received * size_bits))
        previous = self._previous
        self._previous = tick
        if previous is None or previous.last_arrival is None:
            return
        variation = (tick.last_arrival - previous.last_arrival) - (tick.at - previous.at)
        self._accumulated = max(0.0, self._accumulated + 1000 * variation)
        self._delays.append((1000 * tick.last_arrival, self._accumulated))
        self._detect()

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
            estimate *= INCREASE_PER_SECOND**elapsed  # layer pacing decides when to try it
        self.delay_estimate = min(INITIAL_ESTIMATE * 4, max(MIN_ESTIMATE, estimate))
