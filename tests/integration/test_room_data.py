"""Room data through the real server with aiortc: three participants chat on a "chat" channel
each created before its offer; each message reaches the other two stamped with its sender's
name, a message to one name reaches only that one, and one claiming another's name is dropped
and counted."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import aiohttp
from aiortc import RTCDataChannel, RTCPeerConnection

from tests.integration.peers import close_all, exchange, new_peer_connection, wait_until

NAMES = ("alice", "bob", "carol")
PER_SENDER = 20


@dataclass
class Participant:
    """A subscribe session with recvonly slots and a chat channel; what reached it."""

    name: str
    pc: RTCPeerConnection = field(default_factory=new_peer_connection)
    inbox: list[dict] = field(default_factory=list)
    chat: RTCDataChannel | None = None

    async def join(self, http: aiohttp.ClientSession, base: str) -> None:
        for kind in ("audio", "video"):
            self.pc.addTransceiver(kind, direction="recvonly")
        self.chat = self.pc.createDataChannel("chat")
        self.chat.on("message", self._take)
        # The server may open "chat" toward this participant too, before it hears of ours.
        self.pc.on("datachannel", lambda channel: channel.on("message", self._take))
        _, answer = await exchange(http, self.pc, f"{base}/rooms/v1/chat/participants/{self.name}")
        assert "m=application" in answer and "m=application 0 " not in answer

    def _take(self, message: str) -> None:
        self.inbox.append(json.loads(message))


async def test_three_participants_chat(sfu_server) -> None:  # type: ignore[no-untyped-def]
    base = sfu_server.http_url
    async with aiohttp.ClientSession() as http:
        room = [Participant(name) for name in NAMES]
        try:
            for participant in room:
                await participant.join(http, base)
            assert await wait_until(lambda: all(p.chat.readyState == "open" for p in room), 15)  # type: ignore[union-attr]
            await asyncio.sleep(0.5)  # the server has heard every participant's channel
            for index in range(PER_SENDER):
                for participant in room:
                    participant.chat.send(json.dumps({"data": index}))  # type: ignore[union-attr]
            assert await wait_until(
                lambda: all(len(p.inbox) >= 2 * PER_SENDER for p in room), 15
            ), [len(p.inbox) for p in room]
            for participant in room:
                for sender in NAMES:
                    got = [m["data"] for m in participant.inbox if m["from"] == sender]
                    assert got == ([] if sender == participant.name else list(range(PER_SENDER)))
            alice, bob, carol = room
            alice.chat.send(json.dumps({"data": "psst", "to": ["carol"]}))  # type: ignore[union-attr]
            bob.chat.send(json.dumps({"data": "I am carol", "from": "carol"}))  # type: ignore[union-attr]
            assert await wait_until(lambda: len(carol.inbox) > 2 * PER_SENDER, 10)
            assert carol.inbox[-1] == {"from": "alice", "data": "psst", "to": ["carol"]}

            async def drops() -> dict[str, int]:
                async with http.get(f"{base}/api/v1/server") as response:
                    return (await response.json())["drops"]

            deadline = time.monotonic() + 10
            while not (await drops()).get("data_room_bad_message") and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert (await drops()).get("data_room_bad_message") == 1
            async with http.get(f"{base}/metrics") as response:
                assert 'reason="data_room_bad_message"' in await response.text()
            assert len(alice.inbox) == len(bob.inbox) == 2 * PER_SENDER
        finally:
            await close_all(*room)
