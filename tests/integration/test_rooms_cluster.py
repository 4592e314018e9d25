"""A room across two cluster nodes on a real redis-server: each node holds the participants
that joined through it and relays in, once per node, the participant streams the other node
publishes (signaling/cluster/rooms.py), so everyone receives everyone whichever node they use."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from bench.launcher import stop_server
from tests.integration.peers import close_all
from tests.integration.test_cluster import get_json, start_node, wait_nodes
from tests.integration.test_rooms import enter, everyone_receives
from tests.redisd import RedisProcess, redis_server  # noqa: F401  (a fixture)


async def test_participants_on_two_nodes_receive_each_other(
    tmp_path: Path,
    redis_server: RedisProcess,  # noqa: F811
) -> None:
    a, b = (start_node(tmp_path, redis_server, n) for n in "ab")
    people: list = []
    try:
        async with aiohttp.ClientSession() as http:
            await wait_nodes(http, b, 2)
            for name, node in (("ann", a), ("bob", b), ("cy", a)):
                people.append(await enter(http, node.http_url, name))
            await everyone_receives(people, lambda: a.log() + b.log())
            for p in people:
                assert sorted(p.subscriber.participants) == sorted(
                    n for n in ("ann", "bob", "cy") if n != p.name
                )
            # One relay a stream a node, however many of its participants receive it.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                relays = {
                    n["name"]: n["relays"]
                    for n in (await get_json(http, a.http_url + "/api/v1/nodes"))["nodes"]
                }
                if relays == {"a": 3, "b": 3}:
                    break
                await asyncio.sleep(0.3)
            # a: bob's relay in, ann's and cy's out; b: the same three seen from its side.
            assert relays == {"a": 3, "b": 3}, relays
            # Each node shows its own subscribers, and the whole room as participants.
            for node, local in ((a, ["ann", "cy"]), (b, ["bob"])):
                [room] = (await get_json(http, node.http_url + "/api/v1/rooms"))["rooms"]
                assert (room["participants"], room["publishing"]) == (3, 3)
                assert [s["participant"] for s in room["subscribers"]] == local

            leaving = people.pop(1)  # bob, the one participant on b
            async with http.delete(leaving.subscriber.location) as response:
                assert response.status == 200, await response.text()
            await leaving.subscriber.close()
            await close_all(leaving.publisher)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if all(
                    p.subscriber.participants == [q.name for q in people if q is not p]
                    for p in people
                ):
                    break
                await asyncio.sleep(0.3)
            for p in people:
                assert p.subscriber.participants == [q.name for q in people if q is not p]
    finally:
        for p in people:
            await p.subscriber.close()
        await close_all(*(p.publisher for p in people))
        for node in (a, b):
            stop_server(node)
    for node in (a, b):
        assert "Traceback" not in node.log(), node.log()
