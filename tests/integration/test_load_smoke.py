"""The load generator against the real server: a short run whose counts must be exact.

No timing is asserted; the point is that the codec-free clients do ICE, DTLS and SRTP well
enough that every player gets both kinds of media with no gap in its sequence numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.launcher import ROOT, ServerProcess

PLAYERS = 5
PREFIX = "live/smoke"


def stream_players(base_url: str, name: str) -> int | None:
    """The player count the stats API shows for stream `name`, None if it is not listed."""
    with urllib.request.urlopen(base_url + "/api/v1/streams", timeout=2) as response:
        streams = json.load(response)["streams"]
    return next((s["players"] for s in streams if s["name"] == name), None)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("simulcast", [False, True], ids=["single", "simulcast"])
def test_load_smoke(sfu_server: ServerProcess, tmp_path: Path, simulcast: bool) -> None:
    result_path = tmp_path / "load.json"
    command = [
        sys.executable, "-m", "bench.load",
        "--url", sfu_server.http_url,
        "--publishers", "1",
        "--players", str(PLAYERS),
        "--seconds", "4",
        "--stream-prefix", PREFIX,
        "--server-pid", str(sfu_server.process.pid),
        "--json", str(result_path),
        *(["--simulcast"] if simulcast else []),
    ]  # fmt: skip
    load = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen_players: set[int | None] = set()
    deadline = time.monotonic() + 40
    while load.poll() is None and time.monotonic() < deadline:
        seen_players.add(stream_players(sfu_server.http_url, f"{PREFIX}0"))
        time.sleep(0.25)
    if load.poll() is None:
        load.kill()
    output = load.communicate(timeout=10)[0].decode(errors="replace")
    assert load.returncode == 0, output

    assert PLAYERS in seen_players, (seen_players, output)
    result = json.loads(result_path.read_text())
    summary = result["summary"]
    assert summary["connect_failures"] == 0, result["errors"]
    if sys.platform == "linux":  # the kernel's arrival stamps: each at or before its reading
        assert 0 < summary["socket_latency_p50_ms"] <= summary["latency_p50_ms"], summary
        assert summary["socket_latency_p99_ms"] <= summary["latency_p99_ms"], summary
    players = [c for c in result["clients"] if c["role"] == "play"]
    assert len(players) == PLAYERS
    for player in players:
        assert player["connected"], player
        assert player["by_kind"].get("audio", 0) > 0, player
        assert player["by_kind"].get("video", 0) > 0, player
        assert player["lost"] == 0, player
        assert player["wrong_source"] == 0, player
    publisher = next(c for c in result["clients"] if c["role"] == "publish")
    assert publisher["sent"]["audio"] > 0 and publisher["sent"]["video"] > 0, publisher
