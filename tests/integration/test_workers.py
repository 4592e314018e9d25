"""`--workers 2`: the front places sessions on two worker processes and relays between them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from bench.launcher import ServerProcess, start_server, stop_server
from bench.sdp import build_offer
from signaling.workers.front import merge_streams
from tests.integration.peers import close_all, new_peer_connection, play, publish

# One player of a stream per worker before the next goes to the other; ports the kernel picks.
WORKER_ARGS = ("--workers", "2", "--worker-players", "1", "--udp-port", "0")


def candidate_port(answer: str) -> int:
    match = re.search(r"a=candidate:\S+ 1 udp \d+ \S+ (\d+) typ host", answer)
    assert match is not None, answer
    return int(match.group(1))


def worker_of(location: str) -> int:
    match = re.search(r"/sessions/w(\d+)-", location)
    assert match is not None, location
    return int(match.group(1))


def is_running(pid: int) -> bool:
    """True while /proc has the process and it is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


async def get_json(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def worker_pids(http: aiohttp.ClientSession, server: ServerProcess) -> list[int]:
    info = await get_json(http, server.http_url + "/api/v1/server")
    return [w["pid"] for w in info["workers"]]


@pytest.fixture
def workers_server(tmp_path: Path):
    server = start_server(tmp_path, *WORKER_ARGS)
    yield server
    stop_server(server)
    assert "Traceback" not in server.log(), server.log()


async def test_players_spread_over_workers_by_relay(workers_server: ServerProcess) -> None:
    url = workers_server.http_url
    async with aiohttp.ClientSession() as http:
        # Before the stream is live every player goes to its origin, whatever the cap.
        early = await play(http, url, "spread")
        publisher = await publish(http, url, "spread")
        assert await early.wait_for("video", 5, timeout=20), workers_server.log()
        # The origin has its one player: the next two go to the other worker, by relay.
        late = [await play(http, url, "spread") for _ in range(2)]
        players = [early, *late]
        try:
            for player in players:
                assert await player.wait_for("video", 10, timeout=20), workers_server.log()
                assert await player.wait_for("audio", 10, timeout=20), workers_server.log()
                assert player.size == (320, 240)
            ports = [candidate_port(p.answer) for p in players]
            assert ports[1] == ports[2] != ports[0]
            assert candidate_port(publisher.answer) == ports[0]
            assert [worker_of(p.location) for p in players].count(worker_of(early.location)) == 1

            streams = (await get_json(http, url + "/api/v1/streams"))["streams"]
            assert [s["name"] for s in streams] == ["spread"]
            assert streams[0]["players"] == 3
            assert streams[0]["publishing"] is True
            assert streams[0]["workers"] == [0, 1]
            assert len(streams[0]["player_sessions"]) == 3
            assert not any(p["relay"] for p in streams[0]["player_sessions"])
            listing = json.dumps(streams)  # ids are capabilities, never listed
            ids = [p.location.rsplit("-", 1)[1] for p in [publisher, *players]]
            assert not [i for i in ids if i in listing]
            info = await get_json(http, url + "/api/v1/server")
            assert info["relays"] == 1
            assert sum(w["sessions"] for w in info["workers"]) == 4

            # The WHEP layer extension reaches the player's own worker through the front, and
            # the Link names the session as the front's Location does.
            for player in (early, late[0]):
                layer_url = player.location + "/layer"  # already absolute
                async with http.post(layer_url, json={"rid": "auto"}) as response:
                    assert response.status == 200, await response.text()
                async with http.post(layer_url, json={"rid": "q"}) as response:
                    assert response.status == 400 and "no layer with rid" in await response.text()
            offer = build_offer("wkuf", "wk" * 12, ":".join(["AB"] * 32), send=False)
            headers = {"Content-Type": "application/sdp"}
            async with http.post(url + "/whep/spread", data=offer, headers=headers) as response:
                assert response.status == 201
                location = response.headers["Location"]
                assert f"<{location}/layer>" in response.headers["Link"]
            async with http.delete(url + location) as response:
                assert response.status == 200

            # A republish on the origin reaches the relayed players through the same relay.
            async with http.delete(publisher.location) as response:
                assert response.status == 200
            await publisher.pc.close()
            frames = late[0].frames["video"]
            publisher = await publish(http, url, "spread")
            assert await late[0].wait_for("video", frames + 10, timeout=20), workers_server.log()

            for player in players:
                async with http.delete(player.location) as response:
                    assert response.status == 200, await response.text()
            streams = (await get_json(http, url + "/api/v1/streams"))["streams"]
            assert streams[0]["players"] == 0
            # With no players left on the edge the front closes the relay (checked each second,
            # after a grace of five).
            relays = 1
            deadline = time.monotonic() + 20
            while relays and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                relays = (await get_json(http, url + "/api/v1/server"))["relays"]
            assert relays == 0, workers_server.log()
            streams = (await get_json(http, url + "/api/v1/streams"))["streams"]
            assert streams[0]["workers"] == [worker_of(publisher.location)]
            async with http.delete(url + "/sessions/w7-nothing") as response:
                assert response.status == 404
        finally:
            await close_all(publisher, *players)


async def test_publisher_refusal_passes_through(tmp_path: Path) -> None:
    server = start_server(tmp_path, *WORKER_ARGS, "--auth-token", "sesame", "--no-auth-stats")
    try:
        async with aiohttp.ClientSession() as http:
            headers = {"Content-Type": "application/sdp"}
            async with http.post(server.http_url + "/whip/x", data="v=0", headers=headers) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"] == 'Bearer realm="litesfu"'
                assert r.headers["Access-Control-Allow-Origin"] == "*"
            async with http.options(server.http_url + "/whep/x") as response:
                assert response.status == 204
                assert response.headers["Accept-Post"] == "application/sdp"
            body = {"streamurl": "webrtc://h/live/x", "sdp": "v=0"}
            headers = {"Authorization": "Bearer sesame"}
            async with http.post(
                server.http_url + "/rtc/v1/play/", json=body, headers=headers
            ) as r:
                # The worker's JSON refusal of an offer with no media, status and all.
                assert r.status == 422
                assert (await r.json())["code"] == 422
    finally:
        stop_server(server)


async def test_dead_worker_is_restarted_and_none_outlive_the_front(tmp_path: Path) -> None:
    server = start_server(tmp_path, *WORKER_ARGS)
    try:
        async with aiohttp.ClientSession() as http:
            first = await worker_pids(http, server)
            os.kill(first[1], signal.SIGKILL)
            pids = first
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (pids[1] == first[1] or pids[1] is None):
                await asyncio.sleep(0.2)
                pids = await worker_pids(http, server)
            assert pids[0] == first[0]
            assert pids[1] not in (None, first[1]), server.log()
            info = await get_json(http, server.http_url + "/api/v1/server")
            assert info["workers"][1]["restarts"] == 1
    finally:
        stop_server(server)
    # The front waits for its workers before it exits.
    assert not [pid for pid in pids if is_running(pid)], server.log()


async def test_workers_end_with_a_killed_front(tmp_path: Path) -> None:
    server = start_server(tmp_path, *WORKER_ARGS)
    async with aiohttp.ClientSession() as http:
        pids = await worker_pids(http, server)
    server.process.kill()
    server.process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(is_running(pid) for pid in pids):
        await asyncio.sleep(0.2)
    assert not [pid for pid in pids if is_running(pid)], server.log()


def test_merged_streams_count_a_relayed_stream_once() -> None:
    origin = {
        "name": "s",
        "publishing": True,
        "publisher_relay": False,
        "players": 2,
        "packets_in": 100,
        "bytes_in": 1000,
        "bitrate_in": 800,
        "packets_out": 200,
        "bytes_out": 2000,
        "bitrate_out": 1600,
        "player_sessions": [{"relay": False, "state": "a"}, {"relay": True, "state": "r"}],
    }
    edge = {
        **origin,
        "publisher_relay": True,
        "players": 1,
        "packets_out": 100,
        "bytes_out": 1000,
        "bitrate_out": 800,
        "player_sessions": [{"relay": False, "state": "b"}],
    }
    [merged] = merge_streams([(0, [origin]), (1, [edge])])
    assert merged["players"] == 2
    assert [p["state"] for p in merged["player_sessions"]] == ["a", "b"]
    assert merged["publisher_relay"] is False
    assert (merged["packets_in"], merged["bytes_in"], merged["bitrate_in"]) == (100, 1000, 800)
    # 200 + 100 sent, of which the 100 the edge received went by relay.
    assert (merged["packets_out"], merged["bytes_out"], merged["bitrate_out"]) == (200, 2000, 1600)
    assert merged["workers"] == [0, 1]


async def test_the_front_passes_the_clients_host_to_a_worker(tmp_path: Path) -> None:
    """With automatic candidates a worker's answer is led by the IP literal of the Host the
    client used, even though the front reaches the worker at its own loopback address."""
    server = start_server(tmp_path, "--workers", "2", "--udp-port", "0", advertise_host=False)
    try:
        async with aiohttp.ClientSession() as http:
            pc = new_peer_connection()
            pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            headers = {"Content-Type": "application/sdp", "Host": "192.0.2.44:8080"}
            async with http.post(
                server.http_url + "/whep/host", data=pc.localDescription.sdp, headers=headers
            ) as response:
                answer = await response.text()
                assert response.status == 201, answer
            await pc.close()
        first = re.search(r"a=candidate:\S+ 1 udp \d+ (\S+) \d+ typ host", answer)
        assert first is not None and first.group(1) == "192.0.2.44", answer
    finally:
        stop_server(server)
