"""What the server refuses and what it survives: auth, limits, hooks, NAT rebinding, lost peers.

Admission tests run the app in-process on 127.0.0.1 (fast, and the policy is passed directly);
the media tests run the real server and put a small UDP relay between it and one aiortc peer, so
the test can move that peer to a new source port or make it go silent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import aioice.ice
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.launcher import ServerProcess, free_port, start_server, stop_server
from signaling.security.auth import Authenticator, mint
from signaling.security.hooks import HttpHooks
from signaling.security.limits import Limits
from tests.conftest import served
from tests.integration.observed import serving
from tests.integration.peers import close_all, play, publish
from tests.integration.relay import Relay
from tests.integration.test_http_api import offer_text

SDP = {"Content-Type": "application/sdp"}
SECRET = "robustness secret"


def bearer(token: str) -> dict[str, str]:
    return {**SDP, "Authorization": f"Bearer {token}"}


async def status_and_reason(response: aiohttp.ClientResponse) -> tuple[int, str]:
    """The status and the one-line reason; fails if the body is not exactly one line."""
    text = await response.text()
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert "Traceback" not in text
    return response.status, text.strip()


async def stream_names(http: aiohttp.ClientSession, base: str) -> list[str]:
    async with http.get(f"{base}/api/v1/streams") as response:
        return [s["name"] for s in (await response.json())["streams"]]


# -- admission -----------------------------------------------------------------------------------


async def test_bearer_tokens_guard_whip_whep_and_sessions() -> None:
    auth = Authenticator(["static-token"], SECRET)
    publish_x = mint(SECRET, "live/x", "publish", int(time.time()) + 600)
    play_x = mint(SECRET, "live/x", "play", int(time.time()) + 600)
    publish_y = mint(SECRET, "live/y", "publish", int(time.time()) + 600)
    pub_offer = await offer_text([("audio", "sendonly"), ("video", "sendonly")])
    play_offer = await offer_text([("audio", "recvonly"), ("video", "recvonly")])
    async with serving(auth=auth) as (http, base):
        async with http.post(f"{base}/whip/live/x", data=pub_offer, headers=SDP) as response:
            assert await status_and_reason(response) == (401, "bearer token required")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        refusals = set()
        for token in ("wrong", publish_y, play_x):  # garbage, another stream, another role
            async with http.post(
                f"{base}/whip/live/x", data=pub_offer, headers=bearer(token)
            ) as response:
                refusals.add(await status_and_reason(response))
                assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert refusals == {(401, "token not valid for this request")}  # all look alike
        async with http.post(
            f"{base}/whip/live/x", data=pub_offer, headers=bearer(publish_x)
        ) as response:
            assert response.status == 201
            location = response.headers["Location"]
        async with http.post(
            f"{base}/whep/live/x", data=play_offer, headers=bearer(play_x)
        ) as response:
            assert response.status == 201
        async with http.post(
            f"{base}/whep/other/z", data=play_offer, headers=bearer("static-token")
        ) as response:
            assert response.status == 201
        body = {"streamurl": "webrtc://localhost/live/x", "sdp": play_offer}
        async with http.post(f"{base}/rtc/v1/play/", json=body) as response:
            assert response.status == 401 and (await response.json())["code"] == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert sorted(await stream_names(http, base)) == ["live/x", "other/z"]  # stats stay open
        async with http.delete(base + location) as response:
            assert response.status == 401
        async with http.delete(base + location, headers=bearer(play_x)) as response:
            assert response.status == 401  # a player's token cannot end the publisher
        async with http.delete(base + location, headers=bearer(publish_x)) as response:
            assert response.status == 200


async def test_auth_stats_guards_the_stats_api() -> None:
    auth = Authenticator(secret=SECRET, protect_stats=True)
    stats = mint(SECRET, "*", "stats", int(time.time()) + 600)
    publish_x = mint(SECRET, "live/x", "publish", int(time.time()) + 600)
    async with serving(auth=auth) as (http, base):
        for path in ("/api/v1/streams", "/api/v1/server"):
            async with http.get(base + path) as response:
                assert response.status == 401
            async with http.get(base + path, headers=bearer(publish_x)) as response:
                assert response.status == 401
            async with http.get(base + path, headers=bearer(stats)) as response:
                assert response.status == 200


async def test_session_limits_answer_503_with_retry_after() -> None:
    pub_offer = await offer_text([("video", "sendonly")])
    play_offer = await offer_text([("video", "recvonly")])
    limits = Limits(max_sessions=4, max_players_per_stream=2)
    async with serving(limits=limits) as (http, base):

        async def post(path: str, offer: str) -> aiohttp.ClientResponse:
            async with http.post(base + path, data=offer, headers=SDP) as response:
                await response.read()
                return response

        assert (await post("/whip/live/a", pub_offer)).status == 201
        players = [await post("/whep/live/a", play_offer) for _ in range(2)]
        assert [r.status for r in players] == [201, 201]
        async with http.post(f"{base}/whep/live/a", data=play_offer, headers=SDP) as response:
            assert await status_and_reason(response) == (
                503,
                "stream live/a is full: 2 players is the limit",
            )
            assert int(response.headers["Retry-After"]) > 0
        assert (await post("/whep/live/b", play_offer)).status == 201  # the fourth session
        async with http.post(f"{base}/whip/live/c", data=pub_offer, headers=SDP) as response:
            assert await status_and_reason(response) == (
                503,
                "server is full: 4 sessions is the limit",
            )
            assert response.headers["Retry-After"]
        async with http.delete(base + players[0].headers["Location"]) as response:
            assert response.status == 200
        assert (await post("/whip/live/c", pub_offer)).status == 201


async def test_offer_shape_limits() -> None:
    async with serving() as (http, base):
        many = await offer_text([("audio", "sendonly")] * 17)
        async with http.post(f"{base}/whip/live/m", data=many, headers=SDP) as response:
            status, reason = await status_and_reason(response)
            assert status == 422 and "17 audio/video m-lines" in reason
        sixteen = await offer_text([("audio", "sendonly")] * 16)
        async with http.post(f"{base}/whip/live/m", data=sixteen, headers=SDP) as response:
            assert response.status == 201
        datachannel = await offer_text([])
        async with http.post(f"{base}/whip/live/d", data=datachannel, headers=SDP) as response:
            status, reason = await status_and_reason(response)
            assert status == 422 and "no audio or video" in reason
        async with http.post(f"{base}/whip/live/u", data=b"v=0\xff\xfe", headers=SDP) as response:
            assert await status_and_reason(response) == (400, "offer is not UTF-8")
        big = "v=0\r\n" + "a=x\r\n" * 20000
        async with http.post(f"{base}/whip/live/b", data=big, headers=SDP) as response:
            assert response.status == 413
        assert await stream_names(http, base) == ["live/m"]


async def test_policy_flags_and_environment_reach_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line wires the policy: SFU_AUTH_TOKENS from the environment, a flag limit."""
    monkeypatch.setenv("SFU_AUTH_TOKENS", "env-token, other")
    monkeypatch.setenv("SFU_AUTH_STATS", "0")  # stats are guarded by default once auth is on
    server = start_server(tmp_path, "--max-players", "1")
    base = server.http_url
    pub_offer = await offer_text([("video", "sendonly")])
    play_offer = await offer_text([("video", "recvonly")])
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/whip/live/f", data=pub_offer, headers=SDP) as response:
                assert response.status == 401
            async with http.post(
                f"{base}/whip/live/f", data=pub_offer, headers=bearer("other")
            ) as response:
                assert response.status == 201
            statuses = []
            for _ in range(2):
                async with http.post(
                    f"{base}/whep/live/f", data=play_offer, headers=bearer("env-token")
                ) as response:
                    statuses.append(response.status)
            assert statuses == [201, 503]
    finally:
        stop_server(server)
    assert "Traceback" not in server.log()
    assert "-> 503 stream live/f is full: 1 players is the limit" in server.log()  # logged, once
    assert server.log().count("stream live/f is full") == 1


@asynccontextmanager
async def hook_service(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/hook"))
    finally:
        await server.close()


async def test_http_hook_admits_and_refuses_before_any_state() -> None:
    events: list[dict] = []

    async def decide(request: web.Request) -> web.StreamResponse:
        event = await request.json()
        events.append(event)
        if event["stream"] == "live/denied":
            return web.Response(status=403, text="not on the list\nsecond line")
        if event["stream"] == "live/banned":
            return web.json_response({"code": 1, "msg": "banned publisher"})
        return web.json_response({"code": 0})

    pub_offer = await offer_text([("video", "sendonly")])
    play_offer = await offer_text([("video", "recvonly")])
    async with (
        hook_service(decide) as url,
        serving(hooks=HttpHooks(url), auth=Authenticator(["tok"])) as (http, base),
    ):
        async with http.post(f"{base}/whip/live/ok", data=pub_offer, headers=bearer("tok")) as r:
            assert r.status == 201
        async with http.post(f"{base}/whep/live/ok", data=play_offer, headers=bearer("tok")) as r:
            assert r.status == 201
        for stream, reason in (("denied", "not on the list"), ("banned", "banned publisher")):
            async with http.post(
                f"{base}/whip/live/{stream}", data=pub_offer, headers=bearer("tok")
            ) as response:
                assert await status_and_reason(response) == (403, f"refused by hook: {reason}")
        assert await stream_names(http, base) == ["live/ok"]
    assert events[0] == {
        "action": "on_publish",
        "stream": "live/ok",
        "client_ip": "127.0.0.1",
        "token": "tok",
    }
    assert events[1]["action"] == "on_play"
    assert len(events) == 4


async def test_unreachable_or_slow_hook_is_503() -> None:
    async def stall(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.json_response({"code": 0})

    offer = await offer_text([("video", "sendonly")])
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    async with serving(hooks=HttpHooks(nobody)) as (http, base):
        async with http.post(f"{base}/whip/live/h", data=offer, headers=SDP) as response:
            status, reason = await status_and_reason(response)
            assert status == 503 and "unreachable" in reason
            assert response.headers["Retry-After"]
        assert await stream_names(http, base) == []
    async with (
        hook_service(stall) as url,
        serving(hooks=HttpHooks(url, timeout=0.5)) as (http, base),
    ):
        async with http.post(f"{base}/whip/live/h", data=offer, headers=SDP) as response:
            assert response.status == 503
        assert await stream_names(http, base) == []


# -- media through a relay -----------------------------------------------------------------------


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return await check()


@pytest.fixture
def short_timeout_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose sessions end after 4 s without a valid packet."""
    with served(tmp_path, "--session-timeout", "4") as server:
        yield server


async def test_nat_rebinding_moves_the_player(
    sfu_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aioice sends a consent check every 4-6 s; from the new port, one moves the session. At
    # 0.8-1.2 s the first comes soon after the old address went stale (3 s without packets).
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 1)
    server = sfu_server
    relay = Relay(("127.0.0.1", server.udp_port))
    relay_port = await relay.start()
    base = server.http_url
    async with aiohttp.ClientSession() as http:
        publisher = await publish(http, base, "live/nat")
        player = await play(http, base, "live/nat", relay_port=relay_port)
        try:
            assert await player.wait_for("video", 20, timeout=20), player.frames
            await relay.rebind()
            at_switch = player.frames["video"]
            # A consent check from the new port moves the session.
            assert await player.wait_for("video", at_switch + 60, timeout=40), player.frames
            assert "moved from 127.0.0.1" in server.log()
        finally:
            await close_all(publisher, player)
            relay.close()


async def test_vanished_publisher_times_out_and_is_replaced(
    short_timeout_server: ServerProcess,
) -> None:
    server = short_timeout_server
    relay = Relay(("127.0.0.1", server.udp_port))
    relay_port = await relay.start()
    base = server.http_url
    async with aiohttp.ClientSession() as http:
        player = await play(http, base, "live/gone")
        peers: list = [player, await publish(http, base, "live/gone", relay_port=relay_port)]
        try:
            assert await player.wait_for("video", 20, timeout=20), player.frames
            # The publisher vanishes without a DELETE: nothing crosses the relay any more.
            relay.drop_to_server = relay.drop_to_client = lambda data: True

            async def publisher_freed() -> bool:
                async with http.get(f"{base}/api/v1/streams") as response:
                    streams = (await response.json())["streams"]
                gone = streams and streams[0]["publisher_state"] is None
                return bool(gone) and streams[0]["players"] == 1

            assert await until(publisher_freed, timeout=30)
            assert "no valid packet for 4 s" in server.log()
            before = player.frames["video"]
            peers.append(await publish(http, base, "live/gone"))  # the stream is free again
            assert await player.wait_for("video", before + 30, timeout=20), player.frames
        finally:
            await close_all(*peers)
            relay.close()
