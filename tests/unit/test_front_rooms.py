"""Rooms through the `--workers` front: a room and its streams are placed on one worker by the
room's name, and the room session URLs the workers hand out come back with the `w<i>-` prefix
that routes their later requests. The workers here are small aiohttp apps on 127.0.0.1 that
say who they are and what reached them."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from signaling.workers.balancer import MAX_ROOMS, Balancer
from signaling.workers.front import create_front
from signaling.workers.link import CLIENT_HEADER
from signaling.workers.pool import WorkerPool

SESSION = "0123456789abcdef0123456789abcdef"
SDP = {"Content-Type": "application/sdp"}
ICE_LINK = '<stun:stun.example.net>; rel="ice-server"'


@dataclass
class Front:
    url: str
    balancer: Balancer
    # What reached the workers: (worker, method, path, the client the front named).
    seen: list[tuple[int, str, str, str]] = field(default_factory=list)
    events_ended: asyncio.Event = field(default_factory=asyncio.Event)


def fake_worker(index: int, front: Front) -> web.Application:
    """Answers the room routes as a worker would, in outline."""

    async def record(request: web.Request) -> None:
        client = request.headers.get(CLIENT_HEADER, "")
        front.seen.append((index, request.method, request.path, client))

    async def join(request: web.Request) -> web.Response:
        await record(request)
        location = f"/rooms/v1/sessions/{SESSION}"
        headers = [("Location", location), ("Link", f'<{location}/events>; rel="events"')]
        return web.Response(status=201, text="v=0\r\n", headers=[*headers, ("Link", ICE_LINK)])

    async def session(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=204 if request.path.endswith("/prefs") else 200)

    async def events(request: web.Request) -> web.StreamResponse:
        await record(request)
        if request.match_info["id"] != SESSION:
            return web.Response(status=404, text="no such room session\n")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"event: participants\ndata: []\n\n")
        try:
            while request.transport is not None and not request.transport.is_closing():
                await asyncio.sleep(0.05)
        finally:
            front.events_ended.set()
        return response

    app = web.Application()
    app.router.add_post("/rooms/v1/{room}/participants/{name}", join)
    app.router.add_patch("/rooms/v1/sessions/{id}", session)
    app.router.add_delete("/rooms/v1/sessions/{id}", session)
    app.router.add_post("/rooms/v1/sessions/{id}/prefs", session)
    app.router.add_get("/rooms/v1/sessions/{id}/events", events)
    return app


@pytest.fixture
async def front() -> AsyncIterator[Front]:
    pool = WorkerPool(2, 0, [])
    pool.http = aiohttp.ClientSession()
    balancer = Balancer(pool, 1)
    server = TestServer(create_front(pool, balancer, None), host="127.0.0.1")
    await server.start_server()
    front = Front(str(server.make_url("")), balancer)
    runners = []
    for worker in pool.workers:
        runner = web.AppRunner(fake_worker(worker.index, front))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        worker.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        worker.ready = True
        runners.append(runner)
    try:
        yield front
    finally:
        await server.close()
        for runner in runners:
            await runner.cleanup()
        await pool.http.close()


def test_a_joined_room_and_its_streams_have_one_origin_and_other_names_keep_theirs() -> None:
    balancer = Balancer(WorkerPool(2, 0, []), 1)
    names = ("ann", "bob", "cy")
    # Hashed whole, these streams would not all be on one worker; so they are until the room
    # is joined (an SRS app's live/a, live/b, ... keep spreading over the workers).
    whole = [zlib.crc32(f"standup/{n}".encode()) % 2 for n in names]
    assert len(set(whole)) == 2
    assert [balancer.origin(f"standup/{n}").index for n in names] == whole
    balancer.joined("standup")
    room = balancer.origin("standup")
    assert all(balancer.origin(f"standup/{n}") is room for n in names)
    for name in ("spread", "cam1", "x", "live/a", "live/b"):
        assert balancer.origin(name).index == zlib.crc32(name.encode()) % 2


def test_the_rooms_a_front_remembers_are_bounded() -> None:
    balancer = Balancer(WorkerPool(2, 0, []), 1)
    for n in range(MAX_ROOMS + 5):
        balancer.joined(f"r{n}")
    assert len(balancer.rooms) == MAX_ROOMS
    assert "r0" not in balancer.rooms and f"r{MAX_ROOMS + 4}" in balancer.rooms


async def test_a_join_and_its_session_urls_reach_the_rooms_worker(front: Front) -> None:
    index = front.balancer.origin("standup").index
    async with aiohttp.ClientSession() as http:
        join_url = front.url + "/rooms/v1/standup/participants/ann"
        async with http.post(join_url, data="v=0", headers=SDP) as response:
            assert response.status == 201
            location = response.headers["Location"]
            links = response.headers.getall("Link")
        assert location == f"/rooms/v1/sessions/w{index}-{SESSION}"
        assert links == [f'<{location}/events>; rel="events"', ICE_LINK]
        async with http.patch(front.url + location, data="v=0", headers=SDP) as response:
            assert response.status == 200
        async with http.post(front.url + location + "/prefs", json={}) as response:
            assert response.status == 204
        async with http.delete(front.url + location) as response:
            assert response.status == 200
        for path in (f"/rooms/v1/sessions/w9-{SESSION}", f"/rooms/v1/sessions/{SESSION}"):
            async with http.delete(front.url + path) as response:
                assert response.status == 404
    bare = f"/rooms/v1/sessions/{SESSION}"
    assert front.seen == [
        (index, "POST", "/rooms/v1/standup/participants/ann", "127.0.0.1"),
        (index, "PATCH", bare, "127.0.0.1"),
        (index, "POST", bare + "/prefs", "127.0.0.1"),
        (index, "DELETE", bare, "127.0.0.1"),
    ]


async def test_a_malformed_room_name_goes_to_worker_0_to_be_refused(front: Front) -> None:
    async with aiohttp.ClientSession() as http:
        url = front.url + "/rooms/v1/a%20b/participants/ann"
        async with http.post(url, data="v=0", headers=SDP) as response:
            assert response.status == 201  # the fake worker takes anything
    assert [(w, path) for w, _, path, _ in front.seen] == [(0, "/rooms/v1/a b/participants/ann")]


async def test_events_are_streamed_and_the_worker_is_left_when_the_client_goes(
    front: Front,
) -> None:
    location = f"/rooms/v1/sessions/w1-{SESSION}"
    async with aiohttp.ClientSession() as http:
        async with http.get(front.url + location + "/events") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
            assert first == b"event: participants\ndata: []\n\n"
            assert not front.events_ended.is_set()
        # The client closed: the front sees it within a second, and lets go of the worker's.
        await asyncio.wait_for(front.events_ended.wait(), 5)
        async with http.get(front.url + f"/rooms/v1/sessions/w0-{'f' * 32}/events") as response:
            assert response.status == 404
            assert await response.text() == "no such room session\n"
    assert [(w, path) for w, _, path, _ in front.seen] == [
        (1, f"/rooms/v1/sessions/{SESSION}/events"),
        (0, f"/rooms/v1/sessions/{'f' * 32}/events"),
    ]
