"""LL-HLS from the real server: aiortc publishes H264 + Opus, a plain HTTP client reads the
playlist (checked with the m3u8 parser), its init section, segments and parts, and a blocking
reload; the live latency at the origin is printed. A VP8 stream answers 404 with a reason.
The server here records nothing: the recordings API answers 409."""

from __future__ import annotations

import asyncio
import io
import time

import aiohttp
import av
import m3u8

from tests.conftest import shared_server
from tests.integration.peers import close_all, publish

sfu_server = shared_server()


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes, dict]:
    async with http.get(url) as response:
        return response.status, await response.read(), dict(response.headers)


async def until_live(http: aiohttp.ClientSession, server_url: str, stream: str) -> None:
    """Until the stats say the stream is live (ICE and DTLS done), at most 10 s."""
    for _ in range(100):
        async with http.get(f"{server_url}/api/v1/streams") as response:
            streams = (await response.json())["streams"]
        if any(s["name"] == stream and s["publishing"] for s in streams):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{stream} never went live")


async def test_an_h264_stream_plays_as_ll_hls(sfu_server):
    base = f"{sfu_server.http_url}/hls/live/hls"
    async with aiohttp.ClientSession() as http:
        publisher = await publish(http, sfu_server.http_url, "live/hls", "video/H264")
        started = time.monotonic()
        try:
            await until_live(http, sfu_server.http_url, "live/hls")
            status, body, headers = await fetch(http, f"{base}/index.m3u8")
            assert status == 200, body
            assert headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
            assert headers["Cache-Control"] == "public, max-age=1"
            playlist = m3u8.loads(body.decode())
            assert playlist.target_duration and playlist.segments
            assert playlist.server_control.can_block_reload == "YES"
            assert playlist.part_inf.part_target == 0.5
            first = playlist.segments[0]
            # A blocking reload for the next segment returns once it is listed.
            wanted = playlist.media_sequence + len(playlist.segments)
            asked = time.monotonic()
            status, body, headers = await fetch(http, f"{base}/index.m3u8?_HLS_msn={wanted}")
            waited = time.monotonic() - asked
            assert status == 200 and "max-age=6" in headers["Cache-Control"]
            reloaded = m3u8.loads(body.decode())
            numbers = [reloaded.media_sequence + i for i in range(len(reloaded.segments))]
            assert wanted in numbers
            assert any(p.independent == "YES" for s in reloaded.segments for p in s.parts)
            # The origin's latency: wall time since the publish, less the media listed.
            listed = sum(s.duration or sum(p.duration for p in s.parts) for s in reloaded.segments)
            origin_latency = time.monotonic() - started - listed
            print(f"\nLL-HLS: blocking reload waited {waited:.2f} s; origin latency about "
                  f"{origin_latency:.2f} s (a player adds PART-HOLD-BACK, 1.5 s)")  # fmt: skip
            status, init, headers = await fetch(http, f"{base}/{first.init_section.uri}")
            assert status == 200 and "immutable" in headers["Cache-Control"]
            status, segment, _ = await fetch(http, f"{base}/{first.uri}")
            assert status == 200
            with av.open(io.BytesIO(init + segment)) as container:
                kinds = sorted(s.type for s in container.streams)
                frames = sum(
                    len(p.decode()) for p in container.demux(container.streams.video[0]) if p.size
                )
            assert kinds == ["audio", "video"]
            assert frames >= 20 * first.duration * 0.8  # aiortc: about 30 frames a second
            status, body, _ = await fetch(http, f"{base}/{first.uri}x")
            assert status == 404
        finally:
            await close_all(publisher)


async def test_a_vp8_stream_has_no_hls_and_says_why(sfu_server):
    async with aiohttp.ClientSession() as http:
        publisher = await publish(http, sfu_server.http_url, "live/vp8", "video/VP8")
        try:
            for _ in range(50):  # until the publisher is live
                status, body, _ = await fetch(
                    http, f"{sfu_server.http_url}/hls/live/vp8/index.m3u8"
                )
                if b"not live" not in body:
                    break
                await asyncio.sleep(0.1)
            assert status == 404
            assert body.decode() == "HLS has no VP8: publish H264 for HLS\n"
            status, body, _ = await fetch(http, f"{sfu_server.http_url}/hls/none/index.m3u8")
            assert status == 404 and body.decode() == "stream none is not live\n"
            url = f"{sfu_server.http_url}/hls/live/vp8/index.m3u8?_HLS_msn=x"
            status, body, _ = await fetch(http, url)
            assert status == 400
        finally:
            await close_all(publisher)


async def test_recording_is_off_without_a_record_dir(sfu_server):
    """This module's server has no --record-dir: the recordings API says how to turn it on."""
    async with aiohttp.ClientSession() as http:
        url = f"{sfu_server.http_url}/api/v1/recordings"
        async with http.post(url, json={"stream": "x"}) as response:
            assert response.status == 409
            assert "--record-dir" in await response.text()
