"""HTTP limits one client meets on a shared address: the stats rate per address, the
connection cap answered with a 429 instead of a reset, and the page headers on every answer.
Everything stays on 127.0.0.0/8; the second address is 127.0.0.2."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from sfu.config import MediaConfig
from sfu.io.server import MediaServer
from signaling.http.app import create_app
from signaling.serving.connections import ConnectionGuard, listen
from tests.integration.observed import serving
from tests.integration.test_http_api import offer_text
from tests.integration.test_security_http import post_offer


def assert_page_headers(response: aiohttp.ClientResponse) -> None:
    """No framing, scripts and connections to this server only, no versions named."""
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Server"] == "LiteSFU"


async def test_pages_and_answers_carry_the_page_headers() -> None:
    web_root = Path(__file__).resolve().parents[2] / "web"
    media = MediaServer(MediaConfig(udp_host="127.0.0.1", udp_port=0))
    await media.start()
    server = TestServer(create_app(media, ["127.0.0.1"], web_root), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/", "/play.html", "/whip.js", "/api/v1/server", "/sessions/none"):
                async with http.get(base + path) as response:
                    assert response.status in (200, 404), path
                    assert_page_headers(response)
            page = (web_root / "play.html").read_text()
            assert "<script>" not in page and " style=" not in page  # nothing inline to allow
    finally:
        await server.close()
        await media.stop()


async def test_stats_answers_are_rate_limited_per_address() -> None:
    statuses: dict[str, list[int]] = {}
    async with (
        serving(event_streams=4) as (http, base),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))) as other,
    ):
        for path in ("/api/v1/streams", "/api/v1/server", "/metrics"):
            async with other.get(base + path) as response:
                assert response.status == 200, path  # one address's loop costs another nothing
        for _ in range(40):
            path = ("/api/v1/streams", "/api/v1/server", "/metrics")[len(statuses) % 3]
            async with http.get(base + path) as response:
                statuses.setdefault(path, []).append(response.status)
                if response.status == 429:
                    assert int(response.headers["Retry-After"]) >= 1
                    reason = await response.text()
                    assert reason == "too many stats requests from 127.0.0.1: 5/s\n", reason
        async with other.get(base + "/api/v1/server") as response:
            refused = (await response.json())["http_refused"]
    answered = sum(s.count(200) for s in statuses.values())
    assert 10 <= answered <= 15, statuses  # the burst, and what refilled meanwhile
    assert refused["429"] == 40 - answered


async def test_connections_past_the_cap_are_answered_429_not_reset() -> None:
    """The 65th viewer behind one NAT learns why: a 429 with a reason and Retry-After."""
    media = MediaServer(MediaConfig(udp_host="127.0.0.1", udp_port=0))
    await media.start()
    guard = ConnectionGuard(header_timeout=5.0, max_per_ip=3)
    runner = web.AppRunner(create_app(media, ["127.0.0.1"], None, guard=guard), access_log=None)
    await runner.setup()
    server = await listen(runner, "127.0.0.1", 0, guard)
    port = server.sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    play_offer = await offer_text([("video", "recvonly")])
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/api/v1/streams") as response:
                assert response.status == 429
                assert int(response.headers["Retry-After"]) >= 1
                assert (await response.text()) == (
                    "127.0.0.1 holds 3 HTTP connections, the limit\n"
                )
            # An offer (headers and a body) is answered as well, not reset mid-upload.
            status, _, reason = await post_offer(http, f"{base}/whep/live/nat", play_offer)
            assert status == 429 and "the limit" in reason
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
            ) as other,
            other.get(base + "/api/v1/server") as response,
        ):
            stats = (await response.json())["http"]
        assert stats["refused"] == 2 and stats["refused_answered"] == 2, stats
    finally:
        for sock in held:
            sock.close()
        server.close()
        await runner.cleanup()
        await media.stop()
