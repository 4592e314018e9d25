"""The media port on a public address: no amplification, no redirection, no reflection.

The real server on 127.0.0.1, with the load generator's clients (real ICE, DTLS and SRTP) as
publisher and player. The player here can also flood the server with SRTCP NACKs, and counts
every packet it gets twice: those are the server's answers to its NACKs.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time

import aiohttp

from bench.client import VIDEO, Player, Publisher, Target
from bench.launcher import ServerProcess
from bench.worker import signal
from sfu.protocol import ice
from sfu.protocol.certificate import Certificate
from sfu.routing.subscriber_track import MAX_RESENDS_PER_RTCP
from sfu.wire import rtp, stun

STREAM = "live/secure"
SPOOF_HOST = "127.0.0.2"  # a third party that never asked for media


class NackingPlayer(Player):
    """A player that remembers which video packets it got and counts the bytes of repeats."""

    def __init__(self, target: Target, certificate: Certificate) -> None:
        super().__init__(0, target, certificate, publisher_index=0, sample_every=1000, samples=[])
        self.seen: set[tuple[bytes, int]] = set()
        self.video_seqs: list[int] = []
        self.video_ssrc = 0
        self.repeated_bytes = 0
        self.repeats = 0

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(2048)
        except OSError:
            return
        if len(data) >= 12 and 127 < data[0] < 192 and not 191 < data[1] < 224:
            key = (data[8:12], data[2] << 8 | data[3])
            if key in self.seen:
                self.repeats += 1
                self.repeated_bytes += len(data)
            else:
                self.seen.add(key)
                if self._is_video(data[8:12]):
                    self.video_seqs.append(key[1])
            self.received += 1
        else:
            self.on_datagram(data)

    def _is_video(self, ssrc: bytes) -> bool:
        assert self.answer is not None
        value = int.from_bytes(ssrc, "big")
        for mid, announced in self.answer.ssrcs.items():
            if announced == value and self.answer.kinds.get(mid) == VIDEO:
                self.video_ssrc = value
                return True
        return False

    def send_nacks(self, items: list[list[int]]) -> int:
        """One SRTCP datagram with a NACK item per list; returns its size on the wire."""
        assert self.srtp is not None
        plain = b"".join(rtp.nack(0x5EC0, self.video_ssrc, seqs) for seqs in items)
        datagram = self.srtp.protect_rtcp(plain)
        self.sock.send(datagram)
        return len(datagram)


async def connected_pair(
    http: aiohttp.ClientSession, server: ServerProcess
) -> tuple[Publisher, NackingPlayer]:
    certificate = Certificate.generate()
    target = Target(server.http_url, "whip", STREAM)
    publisher = Publisher(0, target, certificate)
    player = NackingPlayer(target, certificate)
    for client in (publisher, player):
        await signal(http, client)
        await client.handshake(10)
    deadline = time.monotonic() + 10
    while len(player.video_seqs) < 60 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert len(player.video_seqs) >= 60, "no video reached the player"
    return publisher, player


async def server_info(http: aiohttp.ClientSession, server: ServerProcess) -> dict:
    async with http.get(f"{server.http_url}/api/v1/server") as response:
        return await response.json()


async def player_video_track(http: aiohttp.ClientSession, server: ServerProcess) -> dict:
    async with http.get(f"{server.http_url}/api/v1/streams") as response:
        streams = (await response.json())["streams"]
    stream = next(s for s in streams if s["name"] == STREAM)
    tracks = [t for p in stream["player_sessions"] for t in p["tracks"] if t["kind"] == VIDEO]
    (track,) = tracks
    return track


async def test_nack_flood_gets_at_most_10x_its_bytes(sfu_server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        publisher, player = await connected_pair(http, sfu_server)
        try:
            # The attack's compound datagram of 40 NACK items is past the 32 items an RTCP
            # datagram may hold: refused whole, nothing resent.
            recent = player.video_seqs[-40:]
            before = player.repeats
            player.send_nacks([recent[i : i + 17] for i in range(0, 34, 17)] * 20)
            await asyncio.sleep(0.5)
            assert player.repeats == before
            # 30 items of 17 packets each fit the item cap; the resends stay within budget.
            player.send_nacks([recent[i : i + 17] for i in range(0, 34, 17)] * 15)
            await asyncio.sleep(0.5)
            assert 0 < player.repeats - before <= MAX_RESENDS_PER_RTCP
            # 600 single-NACK datagrams over about a second, each for a packet it has.
            rtcp_bytes = 0
            start_bytes = player.repeated_bytes
            for i in range(600):
                rtcp_bytes += player.send_nacks([[recent[i % len(recent)]]])
                if i % 20 == 19:
                    await asyncio.sleep(0.03)
            await asyncio.sleep(0.5)
            answered = player.repeated_bytes - start_bytes
            track = await player_video_track(http, sfu_server)
            info = await server_info(http, sfu_server)
        finally:
            publisher.stop()
            publisher.close()
            player.close()
    print(f"NACK flood: {rtcp_bytes} B of SRTCP in, {answered} B of resends out")
    assert answered > 0  # some repair still goes through
    assert answered <= 10 * rtcp_bytes, (answered, rtcp_bytes)
    assert track["nack_budget_drops"] > 0
    assert info["drops"]["nack_budget"] >= track["nack_budget_drops"]
    assert info["drops"]["rtcp_packets"] >= 1  # the 40-item datagram


async def test_a_spoofed_move_gets_no_media(sfu_server: ServerProcess) -> None:
    """An authenticated, nominating check from an address that never answers our own check."""
    async with aiohttp.ClientSession() as http:
        publisher, player = await connected_pair(http, sfu_server)
        assert player.answer is not None
        victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            victim.bind((SPOOF_HOST, 0))
            victim.setblocking(False)
            # The player's own credentials: the attacker is the client, lying about its address.
            username = f"{player.answer.ice_ufrag}:{player.ufrag}"
            # The highest priority there is: since issue 23 a nomination that ranks below the
            # selected pair is not followed at all (RFC 8445 8.1.1), so only one that ranks at
            # least as high reaches the return-routability check this test is about.
            nominating = {"controlling": True, "tie_breaker": 7, "priority": 0xFFFFFFFF}
            request = ice.binding_request(
                secrets.token_bytes(12),
                username,
                player.answer.ice_pwd,
                **nominating,
                use_candidate=True,
            )
            victim.sendto(request, ("127.0.0.1", sfu_server.udp_port))
            got: list[bytes] = []
            received_before = player.received
            deadline = time.monotonic() + 3
            loop = asyncio.get_running_loop()
            while time.monotonic() < deadline and len(got) < 100:
                try:
                    got.append(await asyncio.wait_for(loop.sock_recv(victim, 2048), 0.2))
                except asyncio.TimeoutError:
                    continue
            received_after = player.received
            info = await server_info(http, sfu_server)
        finally:
            victim.close()
            publisher.stop()
            publisher.close()
            player.close()
    types = [stun.parse(d).msg_type for d in got if d[0] < 4]
    assert len(types) == len(got), "something other than STUN went to the unproven address"
    assert stun.BINDING_SUCCESS in types and stun.BINDING_REQUEST in types
    assert received_after - received_before > 50  # the real player kept its media
    assert info["drops"]["address_check_unanswered"] == 1


async def test_unknown_username_gets_no_answer(sfu_server: ServerProcess) -> None:
    request = ice.binding_request(
        secrets.token_bytes(12),
        "nobody00:someone",
        "x" * 24,
        controlling=True,
        tie_breaker=1,
        priority=1,
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(1.0)
        for _ in range(5):
            sock.sendto(request, ("127.0.0.1", sfu_server.udp_port))
        try:
            reply: bytes | None = sock.recv(2048)
        except TimeoutError:
            reply = None
    assert reply is None
    async with aiohttp.ClientSession() as http:
        info = await server_info(http, sfu_server)
    assert info["drops"]["stun_unknown_username"] == 5
