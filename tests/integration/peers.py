"""aiortc peers that publish to and play from the server over WHIP/WHEP, on loopback only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import numpy
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from av import VideoFrame

from tests.integration.relay import through_relay

WIDTH, HEIGHT = 320, 240


class PatternVideoTrack(VideoStreamTrack):
    """A moving gradient, so encoders produce real inter frames and decoders have work."""

    def __init__(self) -> None:
        super().__init__()
        self._count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self._count += 1
        row = numpy.arange(WIDTH, dtype=numpy.uint16)
        shade = ((row + self._count * 4) % 256).astype(numpy.uint8)
        image = numpy.broadcast_to(shade, (HEIGHT, WIDTH))
        rgb = numpy.ascontiguousarray(numpy.stack([image, image[::-1], image], axis=-1))
        frame = VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = pts
        frame.time_base = time_base
        return frame


def new_peer_connection() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def prefer_codec(transceiver, mime_type: str) -> None:
    capabilities = RTCRtpSender.getCapabilities(transceiver.kind)
    chosen = [c for c in capabilities.codecs if c.mimeType.lower() == mime_type.lower()]
    transceiver.setCodecPreferences(chosen)


async def exchange(
    http: aiohttp.ClientSession, pc: RTCPeerConnection, url: str, relay_port: int | None = None
) -> tuple[str, str]:
    """POST our offer; apply the answer (pointed at a relay if given). Returns (Location, SDP)."""
    offer = await pc.createOffer()
    await pc.setLocalDescription(offer)
    async with http.post(
        url,
        data=pc.localDescription.sdp,
        headers={"Content-Type": "application/sdp"},
    ) as response:
        body = await response.text()
        if response.status != 201:
            raise AssertionError(f"{url}: {response.status} {body}")
        location = str(response.url.join(aiohttp.client.URL(response.headers["Location"])))
    remote = body if relay_port is None else through_relay(body, relay_port)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=remote, type="answer"))
    return location, body


@dataclass
class Publisher:
    pc: RTCPeerConnection
    location: str
    answer: str


async def publish(
    http: aiohttp.ClientSession,
    base_url: str,
    stream: str,
    video_codec: str = "video/VP8",
    relay_port: int | None = None,
) -> Publisher:
    pc = new_peer_connection()
    video = pc.addTransceiver(PatternVideoTrack(), direction="sendonly")
    prefer_codec(video, video_codec)
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    location, answer = await exchange(http, pc, f"{base_url}/whip/{stream}", relay_port)
    return Publisher(pc, location, answer)


@dataclass
class Player:
    """Counts what it decodes, per kind, with the latest video frame size."""

    pc: RTCPeerConnection
    location: str = ""
    answer: str = ""
    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    size: tuple[int, int] = (0, 0)
    last_frame_at: float = 0.0
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            self.frames[track.kind] += 1
            self.last_frame_at = time.monotonic()
            if track.kind == "video":
                self.size = (frame.width, frame.height)

    async def wait_for(self, kind: str, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.frames[kind] >= count:
                return True
            await asyncio.sleep(0.1)
        return self.frames[kind] >= count


async def play(
    http: aiohttp.ClientSession,
    base_url: str,
    stream: str,
    relay_port: int | None = None,
    data: bool = False,
) -> Player:
    """A WHEP player; `data` offers data channels (a pre-negotiated channel of its own puts the
    m=application in the offer without opening anything on the server)."""
    pc = new_peer_connection()
    player = Player(pc)
    if data:
        pc.createDataChannel("offer", negotiated=True, id=0)

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        player.tasks.append(asyncio.ensure_future(player.consume(track)))

    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    player.location, player.answer = await exchange(
        http, pc, f"{base_url}/whep/{stream}", relay_port
    )
    return player


async def close_all(*peers) -> None:
    for peer in peers:
        await peer.pc.close()
        for task in getattr(peer, "tasks", []):
            task.cancel()


async def wait_until(condition: Callable[[], object], timeout: float) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return bool(condition())
