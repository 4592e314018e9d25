"""Rooms with `--auth-secret` and a small `--max-room-participants`, with the real server and
aiortc peers: room tokens (participant, roles) against bad and foreign ones, an OBS-style
WHIP publisher counted as a participant, every refusal counted; and what GET /api/v1/rooms
and /metrics show of a live room."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from signaling.security.auth import mint, mint_room
from tests.conftest import shared_server
from tests.integration.peers import close_all, publish
from tests.integration.test_rooms import ROOM, Participant, Subscriber

SECRET = "rooms-guarded-test-secret"
SDP = {"Content-Type": "application/sdp"}
sfu_server = shared_server("--auth-secret", SECRET, "--max-room-participants", "2")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def room_token(name: str, *roles: str, secret: str = SECRET) -> str:
    return mint_room(secret, ROOM, name, roles or ("publish", "subscribe"), int(time.time()) + 600)


async def test_room_tokens_limits_and_refusals(sfu_server) -> None:
    base = sfu_server.http_url
    stats = bearer(mint(SECRET, "*", "stats", int(time.time()) + 600))
    ann_http = aiohttp.ClientSession(headers=bearer(room_token("ann")))
    # An OBS guest: a stream token that publishes standup/obs and nothing else.
    obs_http = aiohttp.ClientSession(
        headers=bearer(mint(SECRET, f"{ROOM}/obs", "publish", int(time.time()) + 600))
    )
    peers: list = []
    ann = None
    try:
        ann = Participant(
            "ann", await publish(ann_http, base, f"{ROOM}/ann"), Subscriber("ann", ann_http)
        )
        peers.append(ann.publisher)
        await ann.subscriber.join(base)
        obs = await publish(obs_http, base, f"{ROOM}/obs")
        peers.append(obs)
        assert await ann.subscriber.receives(["obs"]), sfu_server.log()  # seen in the room

        async with aiohttp.ClientSession() as http:
            join = f"{base}/rooms/v1/{ROOM}/participants/"
            refused = [
                (join + "obs", obs_http.headers),  # a stream token joins no room
                (join + "cy", bearer(room_token("ann"))),  # another participant's token
                (join + "cy", bearer(room_token("cy", secret="a-foreign-server-secret"))),
                (join + "cy", bearer(room_token("cy", "publish"))),  # publish only
                (join + "cy", {}),
            ]
            for url, headers in refused:
                async with http.post(url, data="v=0", headers={**SDP, **headers}) as response:
                    assert response.status == 401, (url, await response.text())
            # The room holds ann and obs: a third participant's publish is one line, 403.
            with pytest.raises(AssertionError, match=f"403 room {ROOM} has 2 participants"):
                cy = aiohttp.ClientSession(headers=bearer(room_token("cy")))
                try:
                    await publish(cy, base, f"{ROOM}/cy")
                finally:
                    await cy.close()
            # A participant cannot end another's session, even with a good token of its own.
            async with http.delete(ann.subscriber.location, headers=obs_http.headers) as response:
                assert response.status == 401
            body: dict = {}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until aiortc's REMB gave ann an estimate
                async with http.get(f"{base}/api/v1/rooms", headers=stats) as response:
                    assert response.status == 200, await response.text()
                    body = await response.json()
                if body["rooms"][0]["subscribers"][0]["estimate"] is not None:
                    break
                await asyncio.sleep(0.3)
            assert body["refused"] == {"join 401": 5, "publish 403": 1, "leave 401": 1}
            [room] = body["rooms"]
            assert (room["name"], room["participants"], room["publishing"]) == (ROOM, 2, 2)
            [mine] = room["subscribers"]
            assert mine["participant"] == "ann" and mine["fed"] == 2 and mine["packets"] > 0
            assert mine["estimate"] is not None and mine["allocated"] > 0
            # Packets sent on ann's slots count in obs's stream, which has no WHEP player.
            async with http.get(f"{base}/api/v1/streams", headers=stats) as response:
                streams = {s["name"]: s for s in (await response.json())["streams"]}
            assert streams[f"{ROOM}/obs"]["players"] == 0
            assert streams[f"{ROOM}/obs"]["packets_out"] > 0
            deadline = time.monotonic() + 10
            text = ""
            while time.monotonic() < deadline and "litesfu_room_subscribers 1.0" not in text:
                async with http.get(f"{base}/metrics", headers=stats) as response:
                    text = await response.text()
                await asyncio.sleep(0.3)
            assert "litesfu_room_subscribers 1.0" in text
            assert 'litesfu_room_requests_refused_total{action="publish",status="403"} 1.0' in text
    finally:
        if ann is not None:
            await ann.subscriber.close()
        await close_all(*peers)
        await ann_http.close()
        await obs_http.close()
    assert "Traceback" not in sfu_server.log()
