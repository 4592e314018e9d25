"""ReceptionStats (RFC 3550 A.1/A.3/A.8) and the MissingPackets NACK tracker, on a fake clock."""

from __future__ import annotations

import itertools

import pytest

from sfu.protocol.receiver import MissingPackets, ReceptionStats

# --- ReceptionStats ------------------------------------------------------------------------


def feed(stats: ReceptionStats, seqs: list[int], step: float = 0.02, ts_step: int = 160) -> list:
    """Feed packets paced exactly (arrival and timestamp advance together); return skips."""
    return [stats.update(seq & 0xFFFF, i * ts_step, i * step) for i, seq in enumerate(seqs)]


def test_in_order_stream_has_no_loss() -> None:
    stats = ReceptionStats(8000)
    skips = feed(stats, list(range(1000, 1100)))
    assert skips == [0] * 100
    assert (stats.expected, stats.received, stats.lost) == (100, 100, 0)
    block = stats.report_block(0x1234, now=2.0)
    assert block.ssrc == 0x1234
    assert block.fraction_lost == 0
    assert block.cumulative_lost == 0
    assert block.highest_sequence == 1099
    assert block.jitter == 0
    assert abs(stats.jitter) < 1e-6


def test_every_tenth_packet_dropped() -> None:
    stats = ReceptionStats(8000)
    sent = list(range(0, 101))
    kept = [s for s in sent if s % 10 != 5]
    skips = feed(stats, kept)
    assert skips.count(1) == 10 and skips.count(0) == len(kept) - 10
    block = stats.report_block(1, now=3.0)
    assert block.cumulative_lost == 10
    assert block.fraction_lost == (10 * 256) // 101  # 25: about 25/256
    assert block.highest_sequence == 100
    # a new interval with nothing new reports no loss but keeps the cumulative count
    block = stats.report_block(1, now=4.0)
    assert (block.fraction_lost, block.cumulative_lost) == (0, 10)
    # a later interval with half its packets lost
    for i, seq in enumerate(range(101, 121, 2)):
        stats.update(seq, 0, 5.0 + i)
    block = stats.report_block(1, now=30.0)
    assert block.cumulative_lost == 10 + 9
    assert block.fraction_lost == (9 * 256) // 19


def test_sequence_wrap_counts_cycles() -> None:
    stats = ReceptionStats(90000)
    skips = feed(stats, list(range(65530, 65550)))
    assert skips == [0] * 20
    assert stats.cycles == 0x10000
    block = stats.report_block(9, now=1.0)
    assert block.highest_sequence == 0x10000 + 13
    assert (block.cumulative_lost, block.fraction_lost) == (0, 0)
    assert stats.expected == 20


def test_loss_across_wrap() -> None:
    stats = ReceptionStats(90000)
    assert stats.update(65534, 0, 0.0) == 0
    assert stats.update(2, 0, 0.1) == 3  # 65535, 0, 1 missing
    assert stats.lost == 3
    assert stats.report_block(1, 0.2).highest_sequence == 0x10002


def test_late_and_duplicate_packets() -> None:
    stats = ReceptionStats(90000)
    assert stats.update(10, 0, 0.0) == 0
    assert stats.update(12, 0, 0.01) == 1
    assert stats.lost == 1
    assert stats.update(11, 0, 0.02) == -1  # late: fills the gap
    assert stats.lost == 0
    assert stats.max_seq == 12
    assert stats.update(12, 0, 0.03) == -1  # duplicate: counted, loss goes negative (A.3)
    assert stats.report_block(1, 1.0).cumulative_lost == -1


def test_jitter_grows_with_variable_arrival() -> None:
    stats = ReceptionStats(8000)
    # every other packet arrives 5 ms late: |D| = 40 timestamp units for every pair
    for i in range(200):
        arrival = i * 0.02 + (0.005 if i % 2 else 0.0)
        stats.update(i, i * 160, arrival)
    assert 39.0 < stats.jitter <= 40.0
    assert stats.report_block(1, 5.0).jitter in (39, 40)


def test_jitter_from_a_single_late_packet() -> None:
    stats = ReceptionStats(90000)
    stats.update(0, 0, 0.0)
    stats.update(1, 3000, 1 / 30 + 0.01)  # 10 ms late: D = 900
    assert stats.jitter == pytest.approx(900 / 16, rel=1e-6)


def test_lsr_and_dlsr() -> None:
    stats = ReceptionStats(90000)
    stats.update(1, 0, 0.0)
    block = stats.report_block(1, 1.0)
    assert (block.last_sr, block.delay_since_last_sr) == (0, 0)
    stats.on_sender_report(0x0123456789ABCDEF, now=10.0)
    block = stats.report_block(1, 10.5)
    assert block.last_sr == 0x456789AB
    assert block.delay_since_last_sr == 32768
    block = stats.report_block(1, 12.0)
    assert block.delay_since_last_sr == 2 * 65536


def test_no_packets_no_expectation() -> None:
    stats = ReceptionStats(48000)
    assert (stats.expected, stats.lost) == (0, 0)


def test_resync_after_sequence_restart() -> None:
    stats = ReceptionStats(90000)
    feed(stats, list(range(0, 10)))
    for i, seq in enumerate(range(40000, 40010)):
        stats.update(seq, 0, 1.0 + i * 0.02)
    assert stats.max_seq == 40009


# --- MissingPackets ------------------------------------------------------------------------


def test_gap_is_due_after_reorder_wait() -> None:
    missing = MissingPackets()
    missing.on_gap(100, 3, now=0.0)
    assert len(missing) == 3
    assert missing.due(0.0) == []
    assert missing.due(MissingPackets.REORDER_WAIT / 2) == []
    assert missing.due(MissingPackets.REORDER_WAIT) == [100, 101, 102]
    assert missing.nacks_sent == 3
    assert missing.due(MissingPackets.REORDER_WAIT + 0.001) == []  # not again so soon


def test_gap_across_wrap() -> None:
    missing = MissingPackets()
    missing.on_gap(65534, 4, now=0.0)
    assert missing.due(0.01) == [65534, 65535, 0, 1]


def nack_times(missing: MissingPackets, seq: int, until: float) -> list[float]:
    """Times (10 ms steps up to `until`) at which due() returns seq."""
    times = []
    for step in range(int(until * 100) + 1):
        now = step / 100
        if seq in missing.due(now):
            times.append(now)
    return times


def test_retries_are_bounded() -> None:
    missing = MissingPackets()
    missing.on_gap(7, 1, now=0.0)
    times = nack_times(missing, 7, until=3.0)
    assert len(times) == MissingPackets.MAX_RETRIES
    interval = max(0.02, 1.5 * missing.rtt)
    assert all(b - a >= interval - 1e-9 for a, b in itertools.pairwise(times))
    assert len(missing) == 0  # forgotten once its retries are spent
    assert missing.nacks_sent == MissingPackets.MAX_RETRIES


def test_retries_stop_at_max_age() -> None:
    missing = MissingPackets()
    missing.rtt = 0.5  # retry interval 0.75 s: only two NACKs fit in MAX_AGE
    missing.on_gap(7, 1, now=0.0)
    times = nack_times(missing, 7, until=4.0)
    assert 1 <= len(times) < MissingPackets.MAX_RETRIES
    assert times[-1] <= MissingPackets.REORDER_WAIT + MissingPackets.MAX_AGE
    assert len(missing) == 0


def test_late_packet_after_one_nack_updates_rtt() -> None:
    missing = MissingPackets()
    missing.on_gap(50, 2, now=0.0)
    assert missing.due(0.01) == [50, 51]
    missing.on_late_packet(50, now=0.06)  # 50 ms after the NACK
    assert len(missing) == 1
    assert missing.recovered == 1
    assert missing.rtt == pytest.approx(0.1 + (0.05 - 0.1) / 8)
    assert 50 not in missing.due(1.0)


def test_late_packet_after_two_nacks_leaves_rtt() -> None:
    missing = MissingPackets()
    missing.on_gap(50, 1, now=0.0)
    assert missing.due(0.01) == [50]
    assert missing.due(0.5) == [50]
    missing.on_late_packet(50, now=0.52)  # which NACK brought it is ambiguous
    assert missing.rtt == 0.1
    assert (len(missing), missing.recovered) == (0, 1)


def test_unknown_late_packet_is_ignored() -> None:
    missing = MissingPackets()
    missing.on_gap(50, 1, now=0.0)
    missing.on_late_packet(49, now=0.01)
    assert (len(missing), missing.recovered, missing.rtt) == (1, 0, 0.1)


def test_huge_gap_clears() -> None:
    missing = MissingPackets()
    missing.on_gap(10, 5, now=0.0)
    missing.on_gap(1000, MissingPackets.MAX_TRACKED + 1, now=0.1)
    assert len(missing) == 0
    assert missing.due(1.0) == []


def test_tracked_set_is_capped_oldest_first() -> None:
    missing = MissingPackets()
    missing.on_gap(0, 300, now=0.0)
    missing.on_gap(300, 300, now=0.0)
    assert len(missing) == MissingPackets.MAX_TRACKED
    due = missing.due(0.01)
    assert len(due) == MissingPackets.MAX_TRACKED
    assert min(due) == 600 - MissingPackets.MAX_TRACKED
    assert max(due) == 599
