"""Churn runs back to back against one server, with its RSS before, during and after each.

Memory the server keeps shows as growth that goes on run after run; memory it merely reuses
shows as growth in the first run only. So each run's line gives the growth since the one
before, in MB and in KB per churning session, and the closing line the growth from the
second run on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from bench.churning import SERVER_KEYS, ChurnConfig, ChurnResult, churn, server_stats

RSS_PERIOD = 0.5  # seconds between RSS samples during a run
MB = 1e6


@dataclass(frozen=True)
class RunMemory:
    """One run's server RSS in bytes: before it, its peak during it, and after the settle."""

    sessions: int
    before: int
    peak: int
    after: int

    def growth(self) -> int:
        return self.after - self.before

    def line(self, index: int, runs: int) -> str:
        per_session = self.growth() / 1024 / max(1, self.sessions)
        return (
            f"run {index}/{runs}: RSS {self.before / MB:.1f} MB before, {self.peak / MB:.1f} "
            f"peak during, {self.after / MB:.1f} after: {self.growth() / MB:+.1f} MB, "
            f"{per_session:+.1f} KB per session"
        )


async def peak_rss(rss: Callable[[], int], until: float, peak: list[int]) -> None:
    """Keep the highest RSS seen in peak[0], sampling until the deadline (or cancellation)."""
    for _ in range(int((until - time.monotonic()) / RSS_PERIOD) + 1):
        peak[0] = max(peak[0], rss())
        if time.monotonic() >= until:
            return
        await asyncio.sleep(RSS_PERIOD)


async def measured(config: ChurnConfig, rss: Callable[[], int]) -> tuple[ChurnResult, int]:
    """One churn run and the server's peak RSS during it."""
    peak = [rss()]
    limit = config.seconds + 3 * config.connect_timeout + config.max_life + 60
    sampler = asyncio.create_task(peak_rss(rss, time.monotonic() + limit, peak))
    try:
        result = await churn(config)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    return result, peak[0]


def print_result(result: ChurnResult, before: dict, after: dict) -> None:
    """A run's joins, leaves, media and failures, and the server's counts around it."""
    s = result.summary()
    leaves = ", ".join(f"{n} by {way}" for way, n in s["leaves"].items())
    print(
        f"churn: {s['sessions']} sessions over {s['elapsed']:.0f} s, {s['joins']} joined "
        f"({s['join_failures']} failed), left: {leaves} ({s['leave_failures']} failed)\n"
        f"  players: {s['players_with_media']}/{s['players']} received media "
        f"({s['players_with_audio_and_video']} both kinds), {s['packets_received']} packets; "
        f"churning publishers heard by the server: {s['churn_publishers_heard']}; "
        f"long-lived publishers {s['publishers_connected']}/{result.config.publishers} sent "
        f"{s['publisher_packets_sent']} packets\n"
        f"  server peaks: {s['server_peaks']}",
        flush=True,
    )
    for key in SERVER_KEYS:
        print(f"  server {key}: {before.get(key)} before, {after.get(key)} after", flush=True)
    for problem in result.problems()[:20]:
        print(f"  problem: {problem}", flush=True)


def churn_runs(
    config: ChurnConfig, runs: int, settle: float, rss: Callable[[], int] | None
) -> tuple[list[ChurnResult], list[RunMemory]]:
    """`runs` churns, each with its own seed (when one is given) and `settle` seconds after it;
    prints each run's result and, when `rss` reads the server's, its memory line."""
    results: list[ChurnResult] = []
    memory: list[RunMemory] = []
    for index in range(1, runs + 1):
        seed = None if config.seed is None else config.seed + index - 1
        run_config = replace(config, seed=seed)
        counts_before = server_stats(config.base_url)
        before = rss() if rss is not None else 0
        if rss is None:
            result, peak = asyncio.run(churn(run_config)), 0
        else:
            result, peak = asyncio.run(measured(run_config, rss))
        time.sleep(max(0.0, settle))
        after = rss() if rss is not None else 0
        print(f"--- run {index}/{runs}", flush=True)
        print_result(result, counts_before, server_stats(config.base_url))
        results.append(result)
        if rss is not None:
            memory.append(RunMemory(len(result.outcomes), before, max(peak, after), after))
            print(memory[-1].line(index, runs), flush=True)
    if memory:
        print(memory_summary(memory), flush=True)
    return results, memory


def memory_summary(memory: list[RunMemory]) -> str:
    """Each run's RSS after it, and the mean growth per run from the second run on."""
    steps = " -> ".join(f"{m.after / MB:.0f}" for m in memory)
    line = f"RSS by run: {memory[0].before / MB:.0f} -> {steps} MB"
    later = memory[1:]
    if later:
        mean = sum(m.growth() for m in later) / len(later)
        sessions = sum(m.sessions for m in later) / len(later)
        line += (
            f"; after the first run {mean / MB:+.1f} MB per run "
            f"({mean / 1024 / max(1.0, sessions):+.1f} KB per session)"
        )
    return line
