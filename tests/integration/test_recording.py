"""Recording through the real server: aiortc publishes VP8 + Opus or H264 + Opus, the server
records it by --record pattern or by the API, and the file reads back whole; the hook hears
of each finished file."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import aiohttp
import av
import pytest
from aiohttp import web

from tests.conftest import served
from tests.integration.peers import close_all, publish
from tests.integration.relay import Relay, is_rtp
from tests.integration.test_robustness import hook_service

PUBLISH_SECONDS = 5.0


def probe(path: str) -> dict:
    """What ffprobe and `ffmpeg -f null` would tell: streams, duration, decode errors."""
    with av.logging.Capture() as logs, av.open(path) as container:
        kinds = sorted(s.type for s in container.streams)
        first_key = None
        frames = 0
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                first_key = packet.is_keyframe if first_key is None else first_key
                frames += len(packet.decode())
        duration = container.duration / 1e6
    errors = [line for line in logs if line[0] <= av.logging.ERROR]
    return {"kinds": kinds, "duration": duration, "frames": frames, "key_first": first_key,
            "errors": errors}  # fmt: skip


async def wait_for_file(folder: Path, timeout: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and any(folder.iterdir()):
            return sorted(folder.iterdir())
        await asyncio.sleep(0.1)
    return []


@pytest.mark.parametrize(
    ("codec", "extension", "loss"),
    [("video/VP8", ".webm", 0.0), ("video/H264", ".mp4", 0.0), ("video/VP8", ".webm", 0.05)],
)
async def test_a_pattern_records_a_publish_and_the_hook_hears_of_it(
    tmp_path, codec, extension, loss
):
    """With `loss`, that share of the publisher's media never reaches the server: NACK
    repair, or a clean skip to the next keyframe, still makes a file that decodes cleanly."""
    events: list[dict] = []
    lose = random.Random(26)

    async def hook(request: web.Request) -> web.Response:
        events.append(await request.json())
        return web.json_response({"code": 0})

    record_dir = tmp_path / "records"
    async with hook_service(hook) as url:
        args = ("--record-dir", str(record_dir), "--record", "live/*", "--hook-url", url)
        with served(tmp_path, *args) as server:
            relay = Relay(
                ("127.0.0.1", server.udp_port),
                drop_to_server=lambda data: is_rtp(data) and lose.random() < loss,
            )
            relay_port = await relay.start()
            async with aiohttp.ClientSession() as http:
                publisher = await publish(http, server.http_url, "live/rec", codec, relay_port)
                await asyncio.sleep(PUBLISH_SECONDS)
                async with http.get(f"{server.http_url}/api/v1/recordings") as response:
                    listed = await response.json()
                await close_all(publisher)
                async with http.delete(publisher.location):
                    pass
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not any(
                    e["action"] == "on_record_done" for e in events
                ):
                    await asyncio.sleep(0.1)
            relay.close()
    assert relay.dropped["to_server"] > 0 or loss == 0
    [recording] = listed["recordings"]
    assert recording["stream"] == "live/rec" and recording["error"] is None
    [path] = await wait_for_file(record_dir / "live%2Frec")
    assert path.suffix == extension
    info = probe(str(path))
    assert info["kinds"] == ["audio", "video"]
    assert info["errors"] == []
    assert info["key_first"] is True
    assert abs(info["duration"] - PUBLISH_SECONDS) <= 1.0
    # aiortc sends about 30 frames a second; a lost keyframe may cost a second or two
    assert info["frames"] >= (12 if loss else 20) * (PUBLISH_SECONDS - 1)
    [done] = [e for e in events if e["action"] == "on_record_done"]
    assert done["stream"] == "live/rec" and done["path"] == str(path)
    assert done["bytes"] == os.path.getsize(path)
    assert abs(done["duration"] - PUBLISH_SECONDS) <= 1.0


async def test_the_api_starts_lists_and_stops_a_recording_behind_the_stats_token(tmp_path):
    record_dir = tmp_path / "records"
    args = ("--record-dir", str(record_dir), "--auth-token", "secret-admin-token")
    admin = {"Authorization": "Bearer secret-admin-token"}
    url_of = "{}/api/v1/recordings".format
    with served(tmp_path, *args) as server:
        url = url_of(server.http_url)
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"stream": "show"}) as response:
                assert response.status == 401  # no token
            for bad in (
                b"{",
                b'{"stream": "a b"}',
                b'{"stream": "a/b/c"}',
                b'{"stream": 5}',
                b"[]",
                b"x" * 2000,
            ):
                headers = {**admin, "Content-Type": "application/json"}
                async with http.post(url, data=bad, headers=headers) as response:
                    assert response.status in (400, 413), bad
                    assert "\n" not in (await response.text()).strip()
            async with http.post(url, json={"stream": "show"}, headers=admin) as response:
                assert response.status == 201
            async with http.get(url, headers=admin) as response:
                listed = await response.json()
            assert [r["stream"] for r in listed["recordings"]] == ["show"]
            async with http.delete(url, json={"stream": "show"}, headers=admin) as response:
                assert response.status == 204
            async with http.delete(url, json={"stream": "show"}, headers=admin) as response:
                assert response.status == 404
    assert "recording show" in server.log()
