"""ICE-TCP against the real server: STUN, DTLS and SRTP in RFC 4571 frames on one connection.

The peers are the load generator's sans-IO transport (real ICE, DTLS and SRTP) over a real TCP
connection to the server on 127.0.0.1; nothing goes over UDP.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time

import aiohttp

from bench.client import SyntheticMedia, Transport
from bench.sdp import build_offer, parse_answer
from sfu.protocol.certificate import Certificate
from sfu.wire import rtp
from sfu.wire.demux import DTLS, SRTP, STUN, classify
from sfu.wire.framing import FrameReader, frame

CERTIFICATE = Certificate.generate()
SDP = {"Content-Type": "application/sdp"}
TCP_CANDIDATE = re.compile(r"a=candidate:\S+ 1 tcp \d+ 127\.0\.0\.1 (\d+) typ host tcptype passive")


class TcpPeer:
    """One peer connection whose every packet goes over a single ICE-TCP connection."""

    def __init__(self, publishing: bool) -> None:
        self.transport = Transport(CERTIFICATE)
        self.media = SyntheticMedia(0) if publishing else None
        self.publishing = publishing
        self.reader = FrameReader()
        self.video_packets = 0
        self.stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def signal(self, http: aiohttp.ClientSession, base: str, name: str) -> int:
        """POST the offer; the TCP port the answer's passive candidate names."""
        offer = build_offer(
            self.transport.ufrag,
            self.transport.pwd,
            CERTIFICATE.fingerprint,
            send=self.publishing,
            audio_ssrc=self.media.audio_ssrc if self.media else 0,
            video_ssrc=self.media.video_ssrc if self.media else 0,
        )
        url = f"{base}/{'whip' if self.publishing else 'whep'}/{name}"
        async with http.post(url, data=offer, headers=SDP) as response:
            assert response.status == 201, await response.text()
            answer = await response.text()
        self.transport.accept_answer(parse_answer(answer))
        match = TCP_CANDIDATE.search(answer)
        assert match, answer
        return int(match.group(1))

    async def connect(self, port: int, receive_buffer: int | None = None) -> None:
        """Open the connection (the first check written a byte at a time, so the server reads
        it in pieces) and run ICE and DTLS to SRTP keys, within 10 s."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        self.stream = await asyncio.open_connection(sock=sock)
        writer = self.stream[1]
        for byte in frame(self.transport.check(use_candidate=True)):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.002)
        deadline = time.monotonic() + 10
        while self.transport.srtp is None:
            assert time.monotonic() < deadline, self.transport.error or "no SRTP within 10 s"
            await self.pump(0.05)
            self.send(self.transport.dtls_step(time.monotonic()))

    def send(self, datagrams: list[bytes]) -> None:
        assert self.stream is not None
        for datagram in datagrams:
            self.stream[1].write(frame(datagram))

    async def pump(self, timeout: float) -> None:
        """Read what arrives within `timeout` and answer it."""
        assert self.stream is not None
        try:
            data = await asyncio.wait_for(self.stream[0].read(65536), timeout)
        except asyncio.TimeoutError:
            return
        now = time.monotonic()
        for datagram in self.reader.feed(data):
            kind = classify(datagram)
            if kind is STUN:
                reply = self.transport.on_stun(datagram, ("127.0.0.1", 0), now)
                self.send([reply] if reply is not None else [])
            elif kind is DTLS:
                self.send(self.transport.on_dtls(datagram, now))
            elif kind is SRTP and not rtp.is_rtcp(datagram):
                self.video_packets += 1

    def publish_frames(self, count: int) -> None:
        assert self.media is not None and self.transport.srtp is not None
        for index in range(count):
            packets = self.media.video_frame(index % 30 == 0, time.time_ns())
            self.send([self.transport.srtp.protect_rtp(p) for p in packets])


async def server_json(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(url) as response:
        return await response.json()


async def test_publish_and_play_over_ice_tcp(sfu_server) -> None:
    base = sfu_server.http_url
    publisher, player = TcpPeer(publishing=True), TcpPeer(publishing=False)
    async with aiohttp.ClientSession() as http:
        port = await publisher.signal(http, base, "live/tcp")
        assert port == sfu_server.udp_port  # by default the same number as the UDP port
        assert await player.signal(http, base, "live/tcp") == port
        await publisher.connect(port)
        await player.connect(port)
        deadline = time.monotonic() + 10
        while player.video_packets < 50:
            assert time.monotonic() < deadline, f"{player.video_packets} packets in 10 s"
            publisher.publish_frames(3)
            await publisher.pump(0.01)
            await player.pump(0.03)
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
        while drops.get("tcp_slow_reader", 0) == 0:
            assert time.monotonic() < deadline, f"slow reader kept for 20 s: {drops}"
            publisher.publish_frames(30)
            await publisher.pump(0.01)
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
        drops = (await server_json(http, f"{base}/api/v1/server"))["drops"]
    assert drops["tcp_unused_closed"] >= 1 and drops["tcp_bad_frame"] == 1
