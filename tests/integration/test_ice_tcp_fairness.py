"""ICE-TCP fairness against the real server: while other loopback addresses hold every ICE-TCP
connection they can, a client from 127.0.0.2 still connects and gets media; and sessions from
one address cannot hold more connections than that address's share.

Small limits (--tcp-connections 8, --tcp-per-address 3) stand for the defaults (256, 16).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bench.launcher import ServerProcess
from tests.conftest import served
from tests.integration.tcp_peer import Stream, TcpPeer, open_stream, server_json

TABLE, PER_ADDRESS = 8, 3
LEGIT = "127.0.0.2"
WANTED = 20  # connections each flooding address tries to hold
FLOOD_ROUND = 0.05  # seconds between a flooder's rounds of reconnecting
MAX_FLOOD_CONNECTS = 3000  # per flooding address, for the whole test


@pytest.fixture
def sfu_server(tmp_path: Path) -> Iterator[ServerProcess]:
    limits = ("--tcp-connections", str(TABLE), "--tcp-per-address", str(PER_ADDRESS))
    with served(tmp_path, *limits) as server:
        yield server


def closed_by_server(stream: Stream) -> bool:
    """Whether the server ended this idle connection (an end of stream or a reset)."""
    return stream[0].at_eof() or stream[0].exception() is not None


class Flood:
    """Idle connections from one address, as many as it can hold, reopened when closed."""

    def __init__(self, port: int, source: str) -> None:
        self.port, self.source = port, source
        self.open: list[Stream] = []
        self.connects = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and self.connects < MAX_FLOOD_CONNECTS:
            for stream in [s for s in self.open if closed_by_server(s)]:
                stream[1].close()
                self.open.remove(stream)
            while len(self.open) < WANTED and self.connects < MAX_FLOOD_CONNECTS:
                self.connects += 1
                with contextlib.suppress(OSError):
                    self.open.append(await open_stream(self.port, self.source))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), FLOOD_ROUND)
        for stream in self.open:
            stream[1].close()


async def drops(http: aiohttp.ClientSession, base: str) -> dict:
    return (await server_json(http, f"{base}/api/v1/server"))["drops"]


async def until(predicate, what: str, seconds: float = 10) -> None:
    """Poll at 4/s: the stats API answers one address 5 times a second."""
    deadline = time.monotonic() + seconds
    while not await predicate():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.25)


async def media_flows(publisher: TcpPeer, *players: TcpPeer, packets: int = 30) -> None:
    """Publish until every player has received `packets` video packets, within 10 s."""
    deadline = time.monotonic() + 10
    while min(p.video_packets for p in players) < packets:
        got = [p.video_packets for p in players]
        assert time.monotonic() < deadline, f"{got} video packets in 10 s"
        publisher.publish_frames(3)
        await publisher.pump(0.01)
        for player in players:
            await player.pump(0.02)


@pytest.mark.parametrize(
    "flooders",
    [["127.0.0.1"], ["127.0.0.1", "127.0.0.3", "127.0.0.4"]],
    ids=["one address", "three addresses filling the table"],
)
async def test_a_client_connects_while_others_hold_all_they_can(
    sfu_server: ServerProcess, flooders: list[str]
) -> None:
    base, port = sfu_server.http_url, sfu_server.udp_port
    stop = asyncio.Event()
    floods = [Flood(port, source) for source in flooders]
    tasks = [asyncio.create_task(flood.run(stop)) for flood in floods]
    try:
        async with aiohttp.ClientSession() as http:

            async def saturated() -> bool:
                return (await drops(http, base)).get("tcp_address_limit", 0) >= 10 * len(floods)

            await until(saturated, "the flooders at their per-address cap")
            publisher, player = TcpPeer(publishing=True), TcpPeer(publishing=False)
            await publisher.signal(http, base, "live/fair")
            await player.signal(http, base, "live/fair")
            await publisher.connect(port, LEGIT)
            await player.connect(port, LEGIT)
            await media_flows(publisher, player)
            counted = await drops(http, base)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    connects = sum(flood.connects for flood in floods)
    print(f"\n{len(floods)} flooding address(es), {connects} connects; drops: {counted}")
    if len(floods) * PER_ADDRESS > TABLE:
        # The flooders filled the table: the legitimate connections took idle ones' places.
        assert counted["tcp_unauthenticated_evicted"] >= 2
    assert "refused or pushed out" in sfu_server.log()


async def test_sessions_from_one_address_hold_at_most_its_share(sfu_server: ServerProcess) -> None:
    base, port = sfu_server.http_url, sfu_server.udp_port
    async with aiohttp.ClientSession() as http:
        publisher = TcpPeer(publishing=True)
        await publisher.signal(http, base, "live/share")
        await publisher.connect(port, LEGIT)
        players = [TcpPeer(publishing=False) for _ in range(PER_ADDRESS + 2)]
        for player in players:
            await player.signal(http, base, "live/share")
        held = players[:PER_ADDRESS]
        for player in held:  # real sessions, bound to their own connections
            await player.connect(port, "127.0.0.1")
        over = players[PER_ADDRESS]
        await over.open(port, "127.0.0.1")
        assert over.stream is not None
        assert await asyncio.wait_for(over.stream[0].read(), 5) == b""  # closed at once
        assert (await drops(http, base))["tcp_address_limit"] == 1
        elsewhere = players[PER_ADDRESS + 1]
        await elsewhere.connect(port, LEGIT)
        await media_flows(publisher, *held, elsewhere)
