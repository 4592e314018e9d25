"""An ICE-TCP client for the integration tests: the load generator's sans-IO transport (real
ICE, DTLS and SRTP) over one real TCP connection to the server, from a chosen loopback address.
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
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def tcp_candidate(address: str) -> re.Pattern[str]:
    """The passive ICE-TCP candidate line of `address` in an answer; group 1 is its port."""
    line = rf"a=candidate:\S+ 1 tcp \d+ {re.escape(address)} (\d+) typ \w+ .*?tcptype passive"
    return re.compile(line)


class TcpPeer:
    """One peer connection whose every packet goes over a single ICE-TCP connection."""

    def __init__(self, publishing: bool, server: str = "127.0.0.1") -> None:
        self.server = server  # the address it connects to, as the answer names it
        self.transport = Transport(CERTIFICATE)
        self.media = SyntheticMedia(0) if publishing else None
        self.publishing = publishing
        self.reader = FrameReader()
        self.video_packets = 0
        self.stream: Stream | None = None
        self.answer = ""

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
        self.answer = answer
        match = tcp_candidate(self.server).search(answer)
        assert match, answer
        return int(match.group(1))

    async def open(
        self, port: int, source: str = "127.0.0.1", receive_buffer: int | None = None
    ) -> None:
        """Open the TCP connection from `source` (a second client may be 127.0.0.2)."""
        self.stream = await open_stream(port, source, receive_buffer, self.server)

    async def connect(
        self, port: int, source: str = "127.0.0.1", receive_buffer: int | None = None
    ) -> None:
        """Open the connection (the first check written a byte at a time, so the server reads
        it in pieces) and run ICE and DTLS to SRTP keys, within 10 s."""
        await self.open(port, source, receive_buffer)
        assert self.stream is not None
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


async def flow(publisher: TcpPeer, player: TcpPeer, packets: int = 50, within: float = 10) -> None:
    """Publish frames until the player has received `packets` video packets, within `within` s."""
    deadline = time.monotonic() + within
    while player.video_packets < packets:
        assert time.monotonic() < deadline, f"{player.video_packets} packets in {within:g} s"
        publisher.publish_frames(3)
        await publisher.pump(0.01)
        await player.pump(0.03)


async def server_json(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(url) as response:
        return await response.json()


async def open_stream(
    port: int, source: str = "127.0.0.1", receive_buffer: int | None = None, server: str = ""
) -> Stream:
    """A TCP connection to the server's port on `server` (127.0.0.1 unless given) from the
    loopback address `source` of the same family."""
    server = server or "127.0.0.1"
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (server, port))
    except OSError:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)
