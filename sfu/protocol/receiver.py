"""What the server learns from one incoming RTP stream: reception statistics for its Receiver
Reports (RFC 3550 §6.4 and appendix A) and which packets are missing, for NACKs (RFC 4585)."""

from __future__ import annotations

from sfu.wire.rtp import ReportBlock

# RFC 3550 A.1: a jump ahead of this many is a restart unless two packets confirm it; a packet
# this far behind is late (reordered or a retransmission).
MAX_DROPOUT = 3000
MAX_MISORDER = 100


class ReceptionStats:
    """Sequence tracking, loss and interarrival jitter of one SSRC, as RFC 3550 A.1/A.3/A.8 do."""

    __slots__ = (
        "_bad_seq",
        "_expected_prior",
        "_last_arrival",
        "_last_ts",
        "_received_prior",
        "base_seq",
        "clock_rate",
        "cycles",
        "jitter",
        "last_sr_at",
        "last_sr_ntp_middle",
        "max_seq",
        "received",
    )

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.received = 0
        self.base_seq = 0
        self.max_seq = 0
        self.cycles = 0
        self.jitter = 0.0
        self._bad_seq: int | None = None
        self._last_arrival = 0.0
        self._last_ts = 0
        self._expected_prior = 0
        self._received_prior = 0
        self.last_sr_ntp_middle = 0
        self.last_sr_at: float | None = None

    def update(self, seq: int, ts: int, arrival: float) -> int:
        """Count one packet; return how many numbers it skipped ahead (0 in order, -1 if late)."""
        if self.received == 0:
            self._restart(seq)
            skipped = 0
        else:
            delta = (seq - self.max_seq) & 0xFFFF
            if 0 < delta < MAX_DROPOUT:
                if seq < self.max_seq:
                    self.cycles += 0x10000
                self.max_seq = seq
                skipped = delta - 1
            elif delta == 0 or delta > 0x10000 - MAX_MISORDER:
                skipped = -1
            elif seq == self._bad_seq:
                self._restart(seq)  # two packets in sequence after a jump: the source restarted
                skipped = 0
            else:
                self._bad_seq = (seq + 1) & 0xFFFF
                self._last_arrival = arrival
                self._last_ts = ts
                return -1
            ts_delta = (ts - self._last_ts) & 0xFFFFFFFF
            if ts_delta & 0x80000000:
                ts_delta -= 0x100000000
            transit_delta = (arrival - self._last_arrival) * self.clock_rate - ts_delta
            self.jitter += (abs(transit_delta) - self.jitter) / 16
        self._last_arrival = arrival
        self._last_ts = ts
        self.received += 1
        return skipped

    def _restart(self, seq: int) -> None:
        self.base_seq = self.max_seq = seq
        self.cycles = 0
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._bad_seq = None

    def on_sender_report(self, ntp: int, now: float) -> None:
        """Remember the SR for LSR/DLSR in our next report."""
        self.last_sr_ntp_middle = (ntp >> 16) & 0xFFFFFFFF
        self.last_sr_at = now

    @property
    def expected(self) -> int:
        return self.cycles + self.max_seq - self.base_seq + 1 if self.received else 0

    @property
    def lost(self) -> int:
        return self.expected - self.received

    def report_block(self, ssrc: int, now: float) -> ReportBlock:
        """A report block for our next RR; starts a new interval for the fraction lost."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        lost_interval = expected_interval - (self.received - self._received_prior)
        self._expected_prior = expected
        self._received_prior = self.received
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        lost = max(-0x800000, min(0x7FFFFF, self.lost))
        delay = 0
        if self.last_sr_at is not None:
            delay = int((now - self.last_sr_at) * 65536)
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=fraction,
            cumulative_lost=lost,
            highest_sequence=self.cycles + self.max_seq,
            jitter=int(self.jitter),
            last_sr=self.last_sr_ntp_middle,
            delay_since_last_sr=delay,
        )


class MissingPackets:
    """Sequence numbers we have asked the publisher to resend, with bounded retries.

    The retry interval follows the round trip, measured from a NACK to the packet it brought.
    """

    __slots__ = ("nacks_sent", "pending", "recovered", "rtt")

    MAX_TRACKED = 512  # a larger gap is a restart or an outage, not loss worth repairing
    MAX_RETRIES = 4
    REORDER_WAIT = 0.005  # a packet this late is usually reordering, not loss
    MAX_AGE = 1.0  # older than this, a retransmission would arrive too late to play

    def __init__(self) -> None:
        # seq -> [first NACK due, last NACK, retries]; the hot path reads it as a flag (empty
        # while nothing is missing), without calling __len__.
        self.pending: dict[int, list[float]] = {}
        self.rtt = 0.1
        self.nacks_sent = 0
        self.recovered = 0

    def __len__(self) -> int:
        return len(self.pending)

    def on_gap(self, first_missing: int, count: int, now: float) -> None:
        if count > self.MAX_TRACKED:
            self.pending.clear()
            return
        for offset in range(count):
            self.pending[(first_missing + offset) & 0xFFFF] = [now + self.REORDER_WAIT, 0.0, 0]
        if len(self.pending) > self.MAX_TRACKED:
            for seq in list(self.pending)[: len(self.pending) - self.MAX_TRACKED]:
                del self.pending[seq]

    def on_late_packet(self, seq: int, now: float) -> None:
        entry = self.pending.pop(seq, None)
        if entry is None:
            return
        self.recovered += 1
        if entry[2] == 1:
            sample = now - entry[1]
            self.rtt += (sample - self.rtt) / 8

    def due(self, now: float) -> list[int]:
        """Sequence numbers to NACK now; forgets those past their retries or age."""
        interval = max(0.02, 1.5 * self.rtt)
        ready: list[int] = []
        expired: list[int] = []
        for seq, entry in self.pending.items():
            first_due, last_nack, retries = entry
            if now - first_due > self.MAX_AGE or retries >= self.MAX_RETRIES:
                if now - last_nack > interval:
                    expired.append(seq)
                continue
            if now >= first_due and (retries == 0 or now - last_nack >= interval):
                entry[1] = now
                entry[2] = retries + 1
                ready.append(seq)
        for seq in expired:
            del self.pending[seq]
        self.nacks_sent += len(ready)
        return ready
