"""Media over IPv6: the server's IPv6 socket beside its IPv4 one, real aiortc peers."""

from __future__ import annotations

import aiohttp
import aioice.ice
import pytest

from bench.launcher import start_server, stop_server
from tests.integration.peers import close_all, play, publish
from tests.unit.test_udp_families import ipv6_loopback


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this host")
async def test_publish_and_play_over_ipv6(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = start_server(tmp_path, "--candidate", "::1")
    try:
        async with aiohttp.ClientSession() as http:
            # Both peers gather IPv6 loopback only (instead of the suite's IPv4 one), so they
            # can reach the server only at its ::1 candidate.
            monkeypatch.setattr(
                aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["::1"]
            )
            publisher = await publish(http, server.http_url, "live/v6")
            player = await play(http, server.http_url, "live/v6")
            try:
                assert " udp " in player.answer and " ::1 " in player.answer
                assert await player.wait_for("video", 20, timeout=20), player.frames
                assert await player.wait_for("audio", 20, timeout=10), player.frames
            finally:
                await close_all(publisher, player)
    finally:
        stop_server(server)
    log = server.log()
    assert log.count("ICE connected from ::1") == 2, log  # publisher and player
    assert "Traceback" not in log
