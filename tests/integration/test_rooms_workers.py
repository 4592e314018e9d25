"""A room through the `--workers 2` front: placed on one worker by the room's name, with every
participant's WHIP publish and subscribe session, and each URL the front hands out (PATCH
re-offers, prefs, events, DELETE) reaching that worker; a WHEP player of a room stream past the
origin's cap gets it by relay like any stream."""

from __future__ import annotations

import zlib
from pathlib import Path

import aiohttp

from bench.launcher import start_server, stop_server
from tests.integration.peers import close_all, play, publish
from tests.integration.test_rooms import ROOM, Participant, Subscriber, everyone_receives
from tests.integration.test_workers import WORKER_ARGS, get_json, worker_of

NAMES = ("ann", "bob", "cy")


async def enter(http: aiohttp.ClientSession, base: str, name: str) -> Participant:
    """Join, then publish, as room.html does: the front places the streams of a room that
    was joined through it with the room."""
    subscriber = Subscriber(name, http)
    await subscriber.join(base)
    publisher = await publish(http, base, f"{ROOM}/{name}")
    return Participant(name, publisher, subscriber)


async def test_a_room_of_three_lives_on_one_worker(tmp_path: Path) -> None:
    # Were stream names hashed whole, these three would not share a worker.
    assert len({zlib.crc32(f"{ROOM}/{n}".encode()) % 2 for n in NAMES}) == 2
    server = start_server(tmp_path, *WORKER_ARGS)
    base = server.http_url
    try:
        async with aiohttp.ClientSession() as http:
            people = [await enter(http, base, name) for name in NAMES]
            players = []
            try:
                await everyone_receives(people, server.log)
                for p in people:
                    others = [n for n in NAMES if n != p.name]
                    assert sorted(p.subscriber.participants) == others
                    assert p.subscriber.offers >= 1  # a PATCHed re-offer reached the worker

                sessions = [s for p in people for s in (p.publisher, p.subscriber)]
                [index] = {worker_of(s.location) for s in sessions}
                [room] = (await get_json(http, base + "/api/v1/rooms"))["rooms"]
                assert (room["name"], room["workers"]) == (ROOM, [index])
                assert [s["participant"] for s in room["subscribers"]] == sorted(NAMES)
                streams = (await get_json(http, base + "/api/v1/streams"))["streams"]
                assert {s["name"]: s["workers"] for s in streams} == {
                    f"{ROOM}/{n}": [index] for n in NAMES
                }
                info = await get_json(http, base + "/api/v1/server")
                counts = [w["sessions"] for w in info["workers"]]
                assert counts[index] == sum(counts) == 6
                prefs = {"bob": {"pinned": True}}
                async with http.post(people[0].subscriber.location + "/prefs", json=prefs) as r:
                    assert r.status == 204, await r.text()

                # One player per worker (the cap): the second goes to the other, by relay.
                players = [await play(http, base, f"{ROOM}/ann") for _ in range(2)]
                for player in players:
                    assert await player.wait_for("video", 5, timeout=20), server.log()
                assert worker_of(players[1].location) != index

                leaving = people.pop()
                async with http.delete(leaving.subscriber.location) as response:
                    assert response.status == 200, await response.text()
                await leaving.subscriber.close()
                await close_all(leaving.publisher)
                for p in people:
                    others = [n for n in NAMES if n not in (p.name, leaving.name)]
                    assert await p.subscriber.receives(others, frames=5), server.log()
            finally:
                for p in people:
                    await p.subscriber.close()
                await close_all(*(p.publisher for p in people), *players)
    finally:
        stop_server(server)
    assert "Traceback" not in server.log(), server.log()
