"""What an HLS viewer costs the origin: a real server, an aiortc H264 publisher, and N
viewers that each do what hls.js does in low-latency mode (a blocking playlist reload for
the next part, then that part), on 127.0.0.1; the server's CPU with and without them."""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from pathlib import Path

import aiohttp
import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from bench.launcher import start_server, stop_server
from bench.procstat import cpu_seconds

PART = re.compile(r'#EXT-X-PART:DURATION=[0-9.]+,URI="([0-9]+-part-([0-9]+)-([0-9]+)\.m4s)"')


async def publish_h264(http: aiohttp.ClientSession, base: str, stream: str) -> RTCPeerConnection:
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # loopback only
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # loopback only: no STUN
    video = pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    codecs = RTCRtpSender.getCapabilities("video").codecs
    video.setCodecPreferences([c for c in codecs if c.mimeType == "video/H264"])
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    async with http.post(
        f"{base}/whip/{stream}", data=pc.localDescription.sdp, headers=headers
    ) as r:
        answer = await r.text()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc


async def viewer(http: aiohttp.ClientSession, url: str, until: float, counts: dict) -> None:
    """Follow the live edge part by part until `until`."""
    query = ""
    fetched: set[str] = set()
    while time.monotonic() < until:
        async with http.get(url + "/index.m3u8" + query) as response:
            text = await response.text()
        parts = PART.findall(text)
        if not parts:
            await asyncio.sleep(0.2)
            continue
        name, segment, index = parts[-1]
        if name not in fetched:
            async with http.get(f"{url}/{name}") as response:
                counts["bytes"] += len(await response.read())
            fetched.add(name)
        counts["requests"] += 2
        query = f"?_HLS_msn={segment}&_HLS_part={int(index) + 1}"


async def measure_viewers(viewers: int, seconds: float) -> tuple[float, float, int, int]:
    """(server CPU share idle-but-packaging, with `viewers`, requests, bytes served)."""
    with tempfile.TemporaryDirectory() as folder:
        server = start_server(Path(folder))
        try:
            async with aiohttp.ClientSession() as http:
                pc = await publish_h264(http, server.http_url, "bench/hls")
                url = f"{server.http_url}/hls/bench/hls"
                counts = {"requests": 0, "bytes": 0}
                warm = time.monotonic() + 20
                while time.monotonic() < warm:  # until the packager serves a playlist
                    async with http.get(url + "/index.m3u8") as response:
                        if response.status == 200:
                            break
                    await asyncio.sleep(0.5)
                else:
                    raise RuntimeError(f"no HLS playlist in 20 s:\n{server.log_tail()}")
                loop = [viewer(http, url, time.monotonic() + seconds, {"requests": 0, "bytes": 0})]
                started = cpu_seconds(server.pid)
                await asyncio.gather(*loop)  # one viewer: the packager runs, a request flows
                base = (cpu_seconds(server.pid) - started) / seconds
                until = time.monotonic() + seconds
                started = cpu_seconds(server.pid)
                await asyncio.gather(*(viewer(http, url, until, counts) for _ in range(viewers)))
                loaded = (cpu_seconds(server.pid) - started) / seconds
                await pc.close()
        finally:
            stop_server(server)
    return base, loaded, counts["requests"], counts["bytes"]
