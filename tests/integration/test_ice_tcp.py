"""ICE-TCP against the real server: STUN, DTLS and SRTP in RFC 4571 frames on one connection.

The peers are the load generator's sans-IO transport (real ICE, DTLS and SRTP) over a real TCP
connection to the server on 127.0.0.1; nothing goes over UDP.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.integration.tcp_peer import TcpPeer, flow, server_json


async def test_publish_and_play_over_ice_tcp(sfu_server) -> None:
    base = sfu_server.http_url
    publisher, player = TcpPeer(publishing=True), TcpPeer(publishing=False)
    async with aiohttp.ClientSession() as http:
        port = await publisher.signal(http, base, "live/tcp")
        assert port == sfu_server.udp_port  # by default the same number as the UDP port
        assert await player.signal(http, base, "live/tcp") == port
        await publisher.connect(port)
        await player.connect(port)
        await flow(publisher, player)
        (stream,) = (await server_json(http, f"{base}/api/v1/streams"))["streams"]
        assert stream["publisher_details"]["transport"] == "tcp"
        assert [p["transport"] for p in stream["player_sessions"]] == ["tcp"]
        assert stream["player_sessions"][0]["codec_mismatch"] == {}
    assert "ICE connected from tcp:127.0.0.1:" in sfu_server.log()


async def test_slow_tcp_reader_is_dropped(sfu_server) -> None:
    base = sfu_server.http_url
    publisher, player = TcpPeer(publishing=True), TcpPeer(publishing=False)
    async with aiohttp.ClientSession() as http:
        port = await publisher.signal(http, base, "live/slow")
        await player.signal(http, base, "live/slow")
        await publisher.connect(port)
        await player.connect(port, receive_buffer=4096)
        # The player stops reading; the server must drop it rather than queue without end.
        deadline = time.monotonic() + 20
        drops: dict = {}
        polled = 0.0
        while drops.get("tcp_slow_reader", 0) == 0:
            assert time.monotonic() < deadline, f"slow reader kept for 20 s: {drops}"
            publisher.publish_frames(30)
            await publisher.pump(0.01)
            if time.monotonic() - polled > 0.25:  # the stats API answers an address 5 times/s
                polled = time.monotonic()
                drops = (await server_json(http, f"{base}/api/v1/server"))["drops"]
        assert player.stream is not None
        data = await asyncio.wait_for(player.stream[0].read(), 10)  # drained to EOF: closed
        assert isinstance(data, bytes)
    assert "reads too slowly" in sfu_server.log()


async def test_unused_and_malformed_connections_are_closed(sfu_server) -> None:
    base = sfu_server.http_url
    reader, writer = await asyncio.open_connection("127.0.0.1", sfu_server.udp_port)
    start = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 15) == b""  # never authenticated: closed
    assert time.monotonic() - start < 15
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", sfu_server.udp_port)
    writer.write(b"\xff\xff" + b"x" * 100)  # a 64 KiB frame no WebRTC peer sends
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    async with aiohttp.ClientSession() as http:
        server = await server_json(http, f"{base}/api/v1/server")
    assert server["drops"]["tcp_bad_frame"] == 1
    # Closing an unused connection is housekeeping, not a drop: `drops` means trouble.
    assert server["housekeeping"]["tcp_unused_closed"] >= 1
    assert "tcp_unused_closed" not in server["drops"]
