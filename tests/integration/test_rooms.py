"""Rooms v1 with the real server and aiortc peers: each participant is a WHIP publisher and one
subscribe session that follows its events (`renegotiate` -> a PATCHed re-offer, `slots` ->
which m-line carries whom), and decodes what it gets.

aiortc sends no transport-cc, and its REMB stays near 200 kbit/s, below one 320x240 VP8 video
here: the server's allocation pauses video slots (and says so with `paused`), then resumes them
on trial, the first by priority first, and keeps them while the receiver reports no loss
(sfu.protocol.resume, tested on the fake clock). When a slot plays again depends on the
estimate and on loss (aiortc peers decoding four rooms' worth of VP8 in one process lose
packets on a busy host, and loss pauses video), so what is asserted here is what always
holds: every other participant is on a slot of each kind, its audio (never paused) decodes,
and each video slot decodes or is reported paused, never frozen; and video reaches the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from tests.integration.peers import Publisher, close_all, new_peer_connection, publish

ROOM = "standup"
SDP = {"Content-Type": "application/sdp"}
KINDS = ("audio", "video")


@dataclass
class Subscriber:
    """One participant's subscribe PC, the state its events told it, and what it decoded."""

    name: str
    http: aiohttp.ClientSession
    pc: RTCPeerConnection = field(default_factory=new_peer_connection)
    location: str = ""
    slots: dict[str, dict] = field(default_factory=dict)
    participants: list[str] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)  # mids the server paused
    events: list[str] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # by mid
    offers: int = 0
    tasks: list[asyncio.Task] = field(default_factory=list)
    _need: asyncio.Event = field(default_factory=asyncio.Event)
    _wanted: dict[str, int] = field(default_factory=dict)

    async def join(self, base: str) -> None:
        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
            self.tasks.append(asyncio.ensure_future(self._consume(mid, track)))

        for kind in KINDS:
            self.pc.addTransceiver(kind, direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        url = f"{base}/rooms/v1/{ROOM}/participants/{self.name}"
        async with self.http.post(url, data=self.pc.localDescription.sdp, headers=SDP) as answer:
            assert answer.status == 201, await answer.text()
            self.location = str(answer.url.join(aiohttp.client.URL(answer.headers["Location"])))
            assert f'<{answer.headers["Location"]}/events>; rel="events"' in answer.headers.getall(
                "Link"
            )
            sdp = await answer.text()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self.tasks.append(asyncio.ensure_future(self._follow()))
        self.tasks.append(asyncio.ensure_future(self._renegotiate()))

    async def _consume(self, mid: str, track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):
            while True:
                await track.recv()
                self.frames[mid] += 1

    async def _follow(self) -> None:
        async with self.http.get(self.location + "/events") as stream:
            name = ""
            async for raw in stream.content:
                line = raw.decode().strip()
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self._on_event(name, json.loads(line.removeprefix("data: ")))

    def _on_event(self, name: str, data: object) -> None:
        self.events.append(name)
        if name == "slots":
            self.slots = data  # type: ignore[assignment]
        elif name == "participants":
            self.participants = [p["name"] for p in data]  # type: ignore[union-attr]
        elif name == "paused":
            self.paused.add(data["mid"])  # type: ignore[index]
        elif name == "resumed":
            self.paused.discard(data["mid"])  # type: ignore[index]
        elif name == "renegotiate":
            self._wanted = data  # type: ignore[assignment]
            self._need.set()

    async def _renegotiate(self) -> None:
        """One re-offer at a time, each to the latest counts asked for (a level, not an edge)."""
        while True:
            await self._need.wait()
            self._need.clear()
            for kind in KINDS:
                have = sum(1 for t in self.pc.getTransceivers() if t.kind == kind)
                for _ in range(self._wanted.get(kind, 0) - have):
                    self.pc.addTransceiver(kind, direction="recvonly")
            await self.pc.setLocalDescription(await self.pc.createOffer())
            async with self.http.patch(
                self.location, data=self.pc.localDescription.sdp, headers=SDP
            ) as answer:
                assert answer.status == 200, await answer.text()
                sdp = await answer.text()
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            self.offers += 1

    def mids_of(self, participant: str) -> dict[str, str]:
        """kind -> mid of the slots that carry `participant`."""
        return {s["kind"]: mid for mid, s in self.slots.items() if s["participant"] == participant}

    async def receives(self, others: list[str], frames: int = 10, timeout: float = 20.0) -> bool:
        """Each of `others` decoded, audio and video, `frames` more times than when asked, but
        for a video slot the server reports paused."""
        start: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok = True
            for other in others:
                mids = self.mids_of(other)
                for kind in KINDS:
                    mid = mids.get(kind)
                    if mid is None:
                        ok = False
                        continue
                    start.setdefault(mid, self.frames[mid])
                    grew = self.frames[mid] - start[mid] >= frames
                    ok &= grew or (kind == "video" and mid in self.paused)
            if ok:
                return True
            await asyncio.sleep(0.2)
        return False

    def video_frames(self) -> int:
        return sum(self.frames[mid] for mid, s in self.slots.items() if s["kind"] == "video")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.pc.close()


@dataclass
class Participant:
    name: str
    publisher: Publisher
    subscriber: Subscriber


async def enter(http: aiohttp.ClientSession, base: str, name: str) -> Participant:
    publisher = await publish(http, base, f"{ROOM}/{name}")
    subscriber = Subscriber(name, http)
    await subscriber.join(base)
    return Participant(name, publisher, subscriber)


async def everyone_receives(
    people: list[Participant], server_log: Callable[[], str] = lambda: ""
) -> None:
    """Each participant decodes every other one's audio and video (a reported pause aside),
    and some video was decoded in the room; a failure prints the server's log as it is then."""
    names = [p.name for p in people]
    for p in people:
        others = [n for n in names if n != p.name]
        assert await p.subscriber.receives(others), (
            p.name,
            p.subscriber.slots,
            p.subscriber.frames,
            p.subscriber.paused,
            server_log(),
        )
    # Before the allocation hears an estimate, every video plays its lowest layer.
    assert sum(p.subscriber.video_frames() for p in people) > 0, "no video reached the room"


async def test_a_room_of_three_then_four_then_three(sfu_server) -> None:
    base = sfu_server.http_url
    async with aiohttp.ClientSession() as http:
        people = [await enter(http, base, name) for name in ("ann", "bob", "cy")]
        try:
            names = [p.name for p in people]
            await everyone_receives(people)
            for p in people:
                others = [n for n in names if n != p.name]
                assert sorted(p.subscriber.participants) == others
                assert p.subscriber.offers >= 1  # one slot per kind offered, two wanted

            people.append(await enter(http, base, "dee"))
            names.append("dee")
            await everyone_receives(people)
            assert all("renegotiate" in p.subscriber.events for p in people[:3])

            leaving = people.pop(1)
            async with http.delete(leaving.subscriber.location) as gone:
                assert gone.status == 200
            async with http.delete(leaving.publisher.location) as gone:
                assert gone.status == 200
            await leaving.subscriber.close()
            await close_all(leaving.publisher)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(p.subscriber.mids_of("bob") for p in people):
                await asyncio.sleep(0.2)
            assert not any(p.subscriber.mids_of("bob") for p in people)
            assert all("bob" not in p.subscriber.participants for p in people)
            for p in people:
                others = [n for n in names if n not in (p.name, "bob")]
                assert await p.subscriber.receives(others, frames=5)
        finally:
            for p in people:
                await p.subscriber.close()
            await close_all(*(p.publisher for p in people))
