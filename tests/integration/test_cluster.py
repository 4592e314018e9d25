"""Real nodes on one Redis: players on any node, failover by claim expiry, faults and drain."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from bench.launcher import ServerProcess, start_server, stop_server
from signaling.cluster.node import TTL
from tests.integration.peers import close_all, play, publish
from tests.redisd import RedisProcess, redis_server  # noqa: F401  (a fixture)

SECRET = "a-test-cluster-secret"


def start_node(tmp_path: Path, redis: RedisProcess, name: str, *extra: str) -> ServerProcess:
    return start_server(
        tmp_path,
        *("--redis-url", redis.url, "--cluster-secret", SECRET, "--node-name", name),
        *("--udp-host", "127.0.0.1", "--drain-timeout", "10", *extra),
    )


async def get_json(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def wait_nodes(http: aiohttp.ClientSession, node: ServerProcess, count: int) -> None:
    """Until `node` sees `count` registered nodes (within 15 s)."""
    seen: list = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        seen = (await get_json(http, node.http_url + "/api/v1/nodes"))["nodes"]
        if len(seen) == count:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{node.http_url} sees {seen}")


async def test_players_on_other_nodes_survive_the_owner_being_killed(
    tmp_path: Path,
    redis_server: RedisProcess,  # noqa: F811
) -> None:
    a, b, c = (start_node(tmp_path, redis_server, n) for n in "abc")
    nodes = [a, b, c]
    peers: list = []
    registry = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_nodes(http, b, 3)
            publisher = await publish(http, a.http_url, "live/cam")
            peers.append(publisher)
            on_b = await play(http, b.http_url, "live/cam")
            on_c = await play(http, c.http_url, "live/cam")
            peers += [on_b, on_c]
            for player in (on_b, on_c):
                assert await player.wait_for("video", 10, timeout=20), b.log() + c.log()
            assert on_b.size == (320, 240)
            assert await registry.get("litesfu:stream:live/cam") == "a"
            # A second publisher anywhere is refused while a holds the claim.
            headers = {"Content-Type": "application/sdp"}
            async with http.post(b.http_url + "/whip/live/cam", data="v=0", headers=headers) as r:
                assert r.status == 409, await r.text()
                assert "published on a" in await r.text()
            view: dict = {}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                view = (await get_json(http, c.http_url + "/api/v1/streams"))["cluster"]
                if view.get("live/cam", {}).get("players") == {"b": 1, "c": 1}:
                    break
                await asyncio.sleep(0.3)
            assert view["live/cam"] == {"owner": "a", "players": {"b": 1, "c": 1}}, view
            # Node-to-node routes refuse anything not sealed under the cluster secret.
            async with http.post(a.http_url + "/cluster/v1/relay-source", data=b"x" * 64) as r:
                assert r.status == 403

            a.process.send_signal(signal.SIGKILL)
            a.process.wait(timeout=10)
            await publisher.pc.close()
            killed = time.monotonic()
            while await registry.get("litesfu:stream:live/cam") is not None:
                assert time.monotonic() - killed < TTL + 3, "the dead owner's claim lasted"
                await asyncio.sleep(0.2)
            frames = [p.frames["video"] for p in (on_b, on_c)]
            republished = await publish(http, c.http_url, "live/cam")
            peers.append(republished)
            for player, before in zip((on_b, on_c), frames, strict=True):
                assert await player.wait_for("video", before + 10, timeout=20), b.log()
            assert await registry.get("litesfu:stream:live/cam") == "c"

            # Churn over: once the peers leave, no relay, claim or dead node's record remains.
            await close_all(on_b, on_c, republished)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                listed = (await get_json(http, b.http_url + "/api/v1/nodes"))["nodes"]
                keys = set(await registry.keys("litesfu:*"))
                if keys == {"litesfu:node:b", "litesfu:node:c"} and not any(
                    n["relays"] for n in listed
                ):
                    break
                await asyncio.sleep(0.5)
            assert keys == {"litesfu:node:b", "litesfu:node:c"}, keys
            assert [n["relays"] for n in listed] == [0, 0], listed
            assert "a" not in {
                n["name"] for n in (await get_json(http, b.http_url + "/api/v1/nodes"))["nodes"]
            }
    finally:
        await close_all(*peers)
        await registry.aclose()
        for node in nodes:
            if node.process.poll() is None:
                stop_server(node)
    for node in (b, c):
        assert "Traceback" not in node.log(), node.log()


async def test_redis_restart_under_a_session_then_drain(
    tmp_path: Path,
    redis_server: RedisProcess,  # noqa: F811
) -> None:
    a = start_node(tmp_path, redis_server, "a")
    b = start_node(tmp_path, redis_server, "b")
    peers: list = []
    registry = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_nodes(http, b, 2)
            peers.append(await publish(http, a.http_url, "s1"))
            peers.append(await publish(http, a.http_url, "s2"))
            player = await play(http, b.http_url, "s1")
            peers.append(player)
            assert await player.wait_for("video", 10, timeout=20), b.log()

            redis_server.stop()
            frames = player.frames["video"]
            assert await player.wait_for("video", frames + 30, timeout=20), b.log()
            # A play that needs a new relay cannot find the owner: 503 with a reason.
            headers = {"Content-Type": "application/sdp"}
            async with http.post(b.http_url + "/whep/s2", data="v=0", headers=headers) as r:
                assert r.status == 503, await r.text()
                assert "registry unreachable" in await r.text()
            local = await publish(http, b.http_url, "here")  # local publish keeps working
            peers.append(local)

            redis_server.start()
            deadline = time.monotonic() + 20
            while await registry.get("litesfu:node:b") is None:
                assert time.monotonic() < deadline, b.log()
                await asyncio.sleep(0.3)
            while await registry.get("litesfu:stream:here") != "b":
                assert time.monotonic() < deadline, b.log()
                await asyncio.sleep(0.3)
            frames = player.frames["video"]
            assert await player.wait_for("video", frames + 10, timeout=20), b.log()

            # SIGTERM drains b: new sessions get 503, the node leaves once its sessions end.
            b.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            status = 0
            while status != 503 and time.monotonic() < deadline:
                async with http.post(b.http_url + "/whep/s1", data="v=0", headers=headers) as r:
                    status = r.status
                    assert r.status in (503, 422), await r.text()
                    retry = r.headers.get("Retry-After")
            assert status == 503 and retry
            assert b.process.poll() is None  # still serving its sessions
            await close_all(*peers[2:])
            b.process.wait(timeout=15)
            assert await registry.get("litesfu:node:b") is None
            assert await registry.get("litesfu:stream:here") is None
    finally:
        await close_all(*peers)
        await registry.aclose()
        for node in (a, b):
            if node.process.poll() is None:
                stop_server(node)
    for node in (a, b):
        assert "Traceback" not in node.log(), node.log()


pytestmark = pytest.mark.timeout(120)
