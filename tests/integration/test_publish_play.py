"""One publisher, three players, real aiortc peers through the real server."""

from __future__ import annotations

import aiohttp
import pytest

from tests.integration.peers import HEIGHT, WIDTH, close_all, play, publish


@pytest.mark.parametrize("codec", ["video/VP8", "video/H264"])
async def test_three_players_decode_publisher(sfu_server, codec: str) -> None:
    async with aiohttp.ClientSession() as http:
        publisher = await publish(http, sfu_server.http_url, "live/cam1", codec)
        players = [await play(http, sfu_server.http_url, "live/cam1") for _ in range(3)]
        try:
            for player in players:
                assert await player.wait_for("video", 30, timeout=20), player.frames
                assert await player.wait_for("audio", 30, timeout=10), player.frames
                assert player.size == (WIDTH, HEIGHT)
            assert f"{codec.split('/')[1]}/90000" in players[0].answer
        finally:
            await close_all(publisher, *players)
