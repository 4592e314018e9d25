"""Soak (issue 6): 200 sessions join and leave over 60 s; afterwards the server holds no more
than it did at rest.

The churn (`bench.churn`) keeps four publishers streaming while players (and a few short-lived
publishers) come and go, leaving by DELETE, by DTLS close_notify or by vanishing, which only the
server's --session-timeout can clean up. A leak in any of those paths shows up at the end as a
session, address binding, stream, track, asyncio task or file descriptor that never went away.
No timing is asserted: the waits are bounds, not expectations.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.churning import LEAVES, ChurnConfig, churn, server_stats
from bench.launcher import start_server, stop_server

SESSION_TIMEOUT = 3
SESSIONS = 200
SECONDS = 60.0
PUBLISHERS = 4
SEED = 6  # fixed, so a failure can be rerun with the same plan (timing still varies)
ZERO_AT_REST = ("sessions", "bound_addresses", "streams", "publisher_tracks", "player_tracks")
# aiohttp keeps one handler task and one socket per open HTTP connection: the churn's client
# connections are closed by then, but the server may not have seen every FIN when it is asked.
# Nothing else of the server's is expected to linger; a per-session leak would be ~200 over.
TASK_SLACK = 2
FILE_SLACK = 4
SETTLE = SESSION_TIMEOUT + 5  # vanished sessions end on the timeout, polled every 0.2 s
SETTLE_POLL = 0.25


def close_reasons(log: str) -> Counter[str]:
    """Why each session ended, from the server's
    "session ID: closed (ROLE STREAM) after SECONDS s: REASON"."""
    lines = re.finditer(r": closed \([^)]*\) after [\d.]+ s: (.+)$", log, re.M)
    return Counter(m.group(1) for m in lines)


def at_rest(stats: dict, baseline: dict) -> bool:
    """True when the server holds what it did before the churn (within the slack above)."""
    return (
        all(stats[key] == baseline[key] for key in ZERO_AT_REST)
        and stats["tasks"] <= baseline["tasks"] + TASK_SLACK
        and stats["open_files"] <= baseline["open_files"] + FILE_SLACK
    )


def wait_for_rest(base_url: str, baseline: dict) -> dict:
    """The server's counts once back at rest, or the last ones seen after SETTLE seconds."""
    stats = server_stats(base_url)
    deadline = time.monotonic() + SETTLE
    for _ in range(int(SETTLE / SETTLE_POLL) + 1):
        if at_rest(stats, baseline) or time.monotonic() >= deadline:
            break
        time.sleep(SETTLE_POLL)
        stats = server_stats(base_url)
    return stats


@pytest.mark.timeout(240)
def test_soak_sessions_join_and_leave_without_leaks(tmp_path: Path) -> None:
    server = start_server(
        tmp_path, "--session-timeout", str(SESSION_TIMEOUT), "--max-sessions", "0"
    )
    try:
        baseline = server_stats(server.http_url)
        config = ChurnConfig(
            server.http_url, sessions=SESSIONS, seconds=SECONDS, publishers=PUBLISHERS, seed=SEED
        )
        result = asyncio.run(churn(config))
        final = wait_for_rest(server.http_url, baseline)
    finally:
        stop_server(server)
    log = server.log()
    summary = result.summary()
    context = {"summary": summary, "baseline": baseline, "final": final}

    assert all(baseline[key] == 0 for key in ZERO_AT_REST), baseline
    assert "Traceback" not in log, log[-5000:]

    # The churn really happened: every session joined, streamed, and left its way.
    assert len(result.outcomes) == SESSIONS, context
    assert result.problems() == [], context
    assert summary["publishers_connected"] == PUBLISHERS, result.publishers
    assert summary["players"] > 0, context
    assert summary["players_with_media"] == summary["players"], context
    assert summary["players_with_audio_and_video"] == summary["players"], context
    assert summary["churn_publishers_heard"] == SESSIONS - summary["players"], context
    assert all(summary["leaves"][way] > 0 for way in LEAVES), context
    assert summary["server_peaks"]["sessions"], context  # the watcher saw the server busy

    # Each way of leaving ended its sessions by itself: a broken DELETE or close_notify path
    # would otherwise hide behind the timeout, which ends those sessions too.
    reasons = close_reasons(log)
    leaves = summary["leaves"]
    assert reasons["DELETE by client"] == leaves["delete"] + PUBLISHERS, (reasons, leaves)
    assert reasons["peer closed DTLS"] == leaves["dtls"], (reasons, leaves)
    assert reasons[f"no valid packet for {SESSION_TIMEOUT} s"] == leaves["vanish"], reasons
    assert sum(reasons.values()) == SESSIONS + PUBLISHERS, reasons

    # And nothing stayed behind.
    for key in ZERO_AT_REST:
        assert final[key] == baseline[key], (key, context)
    assert final["tasks"] <= baseline["tasks"] + TASK_SLACK, context
    assert final["open_files"] <= baseline["open_files"] + FILE_SLACK, context
