"""Data channels through the real server with aiortc on both ends: a WHIP publisher's channel
reaches two WHEP players under its label, every message in order, a large one reassembled,
and a player's message is dropped and counted rather than relayed."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiortc.mediastreams import AudioStreamTrack

from tests.integration.peers import (
    PatternVideoTrack,
    Publisher,
    close_all,
    exchange,
    new_peer_connection,
    play,
    wait_until,
)

MESSAGES = 300
LARGE = 200 * 1024  # fragmented into ~180 DATA chunks, under the 256 KiB max-message-size


async def test_publisher_channel_reaches_two_players_in_order(sfu_server) -> None:  # type: ignore[no-untyped-def]
    base = sfu_server.http_url
    async with aiohttp.ClientSession() as http:
        pc = new_peer_connection()
        pc.addTransceiver(PatternVideoTrack(), direction="sendonly")
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        chat = pc.createDataChannel("chat")
        location, answer = await exchange(http, pc, f"{base}/whip/live/data")
        assert "m=application" in answer and "a=max-message-size:262144" in answer

        players = []
        received: list[list[object]] = []
        channels: list[list[object]] = []
        for _ in range(2):
            player = await play(http, base, "live/data", data=True)
            inbox: list[object] = []
            opened: list[object] = []

            def on_channel(channel, inbox=inbox, opened=opened) -> None:  # type: ignore[no-untyped-def]
                opened.append(channel)
                channel.on("message", inbox.append)

            player.pc.on("datachannel", on_channel)
            players.append(player)
            received.append(inbox)
            channels.append(opened)
        publisher = Publisher(pc, location, answer)
        try:
            assert await wait_until(lambda: chat.readyState == "open", 15)
            assert await wait_until(lambda: all(channels), 15), "no channel reached a player"
            assert [c[0].label for c in channels] == ["chat", "chat"]
            for index in range(MESSAGES):
                chat.send(f"message {index}")
            chat.send(bytes(range(256)) * (LARGE // 256))
            assert await wait_until(lambda: all(len(r) > MESSAGES for r in received), 20), [
                len(r) for r in received
            ]
            for inbox in received:
                assert inbox[:MESSAGES] == [f"message {i}" for i in range(MESSAGES)]
                assert inbox[MESSAGES] == bytes(range(256)) * (LARGE // 256)

            channels[0][0].send("from a player")  # one-way by default: dropped, counted
            url = f"{base}/api/v1/server"

            async def drops() -> dict[str, int]:
                async with http.get(url) as response:
                    return (await response.json())["drops"]

            deadline = time.monotonic() + 10
            while (await drops()).get("data_from_player", 0) < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert (await drops()).get("data_from_player") == 1
        finally:
            await close_all(publisher, *players)
