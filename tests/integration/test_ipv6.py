"""Media over IPv6: the server's IPv6 socket beside its IPv4 one, real aiortc peers."""

from __future__ import annotations

import asyncio

import aiohttp
import aioice.ice
import pytest

from bench.launcher import start_server, stop_server
from tests.integration.peers import close_all, play, publish
from tests.integration.tcp_peer import TcpPeer, flow, open_stream, server_json
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


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this host")
async def test_publish_and_play_over_ice_tcp_on_ipv6(tmp_path) -> None:
    """The ICE-TCP listener takes IPv6 beside IPv4, with the same per-address limit."""
    server = start_server(tmp_path, "--candidate", "::1", "--tcp-per-address", "2")
    try:
        publisher, player = TcpPeer(True, "::1"), TcpPeer(False, "::1")
        async with aiohttp.ClientSession() as http:
            port = await publisher.signal(http, server.http_url, "live/tcp6")
            assert await player.signal(http, server.http_url, "live/tcp6") == port
            await publisher.connect(port, source="::1")
            await player.connect(port, source="::1")
            await flow(publisher, player)
            # ::1 holds two connections, its cap: a third is closed at once.
            reader, _writer = await open_stream(port, "::1", server="::1")
            assert await asyncio.wait_for(reader.read(), 5) == b""
            drops = (await server_json(http, f"{server.http_url}/api/v1/server"))["drops"]
            assert drops["tcp_address_limit"] == 1
    finally:
        stop_server(server)
    log = server.log()
    assert log.count("ICE connected from tcp:::1:") == 2, log
    assert "ICE-TCP listening on [::]:" in log
