"""A player that stops reading its socket must not slow the others: the server's sends never
block (UDP, non-blocking, failures dropped and counted), so the rest keep every packet."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp

from bench.client import AUDIO, VIDEO, Player, Publisher, Target
from bench.worker import connect, disconnect, keep_alive
from sfu.protocol.certificate import Certificate

CONNECT_TIMEOUT = 15.0
STALL_SECONDS = 5.0


async def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


async def test_stalled_player_does_not_slow_the_others(sfu_server) -> None:
    certificate = Certificate.generate()
    target = Target(sfu_server.http_url, "whip", "live/slow")
    publisher = Publisher(0, target, certificate)
    players = [
        Player(i, target, certificate, publisher_index=0, sample_every=10**6, samples=[])
        for i in range(1, 4)
    ]
    clients = [publisher, *players]
    gate = asyncio.Semaphore(4)
    async with aiohttp.ClientSession() as http:
        await connect(http, publisher, gate, CONNECT_TIMEOUT)
        for player in players:
            await connect(http, player, gate, CONNECT_TIMEOUT)
        assert all(c.error is None for c in clients), [c.error for c in clients]
        keeping_alive = asyncio.ensure_future(keep_alive(clients))
        try:
            assert await wait_until(lambda: all(p.received > 100 for p in players), 15)
            stalled, others = players[0], players[1:]
            asyncio.get_running_loop().remove_reader(stalled.sock.fileno())
            await asyncio.sleep(0.5)  # let what was in flight land
            sent_before = publisher.sent[AUDIO] + publisher.sent[VIDEO]
            before = [p.counts() for p in others]
            await asyncio.sleep(STALL_SECONDS)
            sent = publisher.sent[AUDIO] + publisher.sent[VIDEO] - sent_before
            after = [p.counts() for p in others]
            async with http.get(f"{sfu_server.http_url}/api/v1/streams") as response:
                stream = (await response.json())["streams"][0]
        finally:
            keeping_alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping_alive
            for client in clients:
                await disconnect(http, client, gate)
    assert sent > 0
    for (received_before, lost_before, _), (received_after, lost_after, _) in zip(
        before, after, strict=True
    ):
        # Every packet the publisher sent in the window reached the readers, give or take
        # the few still in flight at either edge.
        assert received_after - received_before >= 0.97 * sent, (received_after, sent)
        assert lost_after == lost_before
    # The server went on sending to the stalled player too: nothing queued up or blocked.
    per_player = [sum(t["packets"] for t in p["tracks"]) for p in stream["player_sessions"]]
    assert len(per_player) == 3 and min(per_player) > 0.9 * max(per_player), per_player
