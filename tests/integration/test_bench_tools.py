"""The in-process benchmarks run and their numbers come from real deliveries (numbers are
never checked: only that every datagram sent reached a reading player)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.launcher import ROOT
from sfu.protocol import fastpath

pytestmark = pytest.mark.skipif(
    os.environ.get("SFU_NO_EXTENSION", "") not in ("", "0"), reason="both need the compiled path"
)


def run(*args: str) -> list[str]:
    command = [sys.executable, "-m", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.timeout(150)
def test_floor_builds_its_sender_and_every_datagram_is_read() -> None:
    lines = run("bench.floor", "--players", "3", "7", "--packets", "20", "--rounds", "2")
    rows = [line.split() for line in lines if line.split()[:1] in (["3"], ["7"])]
    assert [row[0] for row in rows] == ["3", "7"], lines
    for row in rows:
        bare, fanout = float(row[1]), float(row[2])
        assert bare > 0 and fanout > 0, row
        assert row[-1] == "100.0%", row  # the players read all that both sides sent


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
