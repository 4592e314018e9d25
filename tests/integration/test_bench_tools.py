"""The benchmarks run small: the in-process ones' numbers come from real deliveries (numbers are
never checked: only that every datagram sent reached a reading player), and the churn reports
the server's memory for each of its runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.launcher import ROOT
from sfu.protocol import fastpath

needs_extension = pytest.mark.skipif(
    os.environ.get("SFU_NO_EXTENSION", "") not in ("", "0"), reason="both need the compiled path"
)


def run(*args: str) -> list[str]:
    command = [sys.executable, "-m", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@needs_extension
@pytest.mark.timeout(150)
def test_floor_builds_its_sender_and_every_datagram_is_read() -> None:
    lines = run("bench.floor", "--players", "3", "7", "--packets", "20", "--rounds", "2")
    rows = [line.split() for line in lines if line.split()[:1] in (["3"], ["7"])]
    assert [row[0] for row in rows] == ["3", "7"], lines
    for row in rows:
        bare, fanout = float(row[1]), float(row[2])
        assert bare > 0 and fanout > 0, row
        assert row[-1] == "100.0%", row  # the players read all that both sides sent


@needs_extension
@pytest.mark.timeout(150)
def test_forward_measures_each_engine_it_is_asked_for() -> None:
    best = fastpath.AES_ENGINES[0]  # "openssl" too on a CPU without AES instructions
    lines = run(
        "bench.forward", "--players", "2", "--packets", "30", "--rounds", "1",
        "--profiles", "AES-GCM", "--engines", "openssl", best,
    )  # fmt: skip
    assert "C openssl µs" in lines[0] and f"C {best} µs" in lines[0], lines
    rows = [line for line in lines if line.startswith("AES-GCM")]
    assert len(rows) == 2 and not any("failed" in line for line in lines), lines


@pytest.mark.timeout(150)
def test_churn_starts_its_server_and_reports_rss_for_each_run() -> None:
    lines = run(
        "bench.churn", "--runs", "2", "--sessions", "6", "--seconds", "2", "--life", "0.5", "1",
        "--publishers", "1", "--settle", "1", "--seed", "7",
    )  # fmt: skip
    assert lines[0].startswith("bench.churn: started a server at http://127.0.0.1:"), lines
    joined = [line for line in lines if line.startswith("churn: 6 sessions")]
    assert len(joined) == 2 and all("6 joined (0 failed)" in line for line in joined), lines
    memory = [line for line in lines if line.startswith(("run 1/2: RSS", "run 2/2: RSS"))]
    assert len(memory) == 2 and all("KB per session" in line for line in memory), lines
    assert lines[-1].startswith("RSS by run: ") and "MB per run" in lines[-1], lines


@pytest.mark.timeout(150)
def test_room_bench_runs_both_loads_and_times_every_joiners_videos() -> None:
    lines = run(
        "bench.room", "--rooms", "1", "--participants", "3", "--seconds", "1",
        "--joins", "1", "--at-once", "2", "--settle", "0.5",
    )  # fmt: skip
    assert lines[0].startswith("bench.room: started a server at http://127.0.0.1:"), lines
    per_packet = next(line for line in lines if line.startswith("server µs per packet"))
    room, whep = (float(cell) for cell in per_packet.split()[-2:])
    assert room > 0 and whep > 0, lines
    assert any("joins alone" in line and "over 3 videos" in line for line in lines), lines
    assert any("2 at once" in line and "over 6 videos" in line for line in lines), lines
    assert any(line.startswith("allocation runs per second: 3 in this load") for line in lines)
