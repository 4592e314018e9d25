"""The retransmission budget: NACK floods cannot turn the server into an amplifier.

A real Router forwards a publisher's RTP to a player; both sessions are the relays' plaintext
sessions, so packets go straight to a list instead of a socket. Players' NACKs are real RTCP
bytes handed to the Player's on_rtcp with a fake clock.
"""

from __future__ import annotations

import struct

import pytest

from sfu.config import MediaConfig
from sfu.media import VIDEO, Codec, TrackSpec
from sfu.protocol.certificate import Certificate
from sfu.routing.player import Player
from sfu.routing.relay import PlainSession
from sfu.routing.router import PLAY, PUBLISH, Router
from sfu.routing.subscriber_track import (
    MAX_RESENDS_PER_RTCP,
    RESEND_BURST,
    RESEND_INTERVAL_DEFAULT,
    RESEND_SHARE,
)
from sfu.session.table import SessionTable
from sfu.wire import rtp

PUBLISHER_ADDR = ("127.0.0.1", 40000)
PLAYER_ADDR = ("127.0.0.1", 40001)
VP8_KEY = b"\x90\x80\x81\x23" + b"\x50\x02\x00\x9d\x01\x2a" + b"\x11" * 1190
VP8_INTER = b"\x10" + b"\x31\x05\x00" + b"\x22" * 1196
PACKET_RATE = 60  # packets a second, like a 0.6 Mbit/s video stream
CERTIFICATE = Certificate.generate()  # the router wants one; plaintext sessions never use it


def video_spec() -> TrackSpec:
    codec = Codec("VP8", 96, 90000, rtcp_fb=("nack", "nack pli"))
    return TrackSpec("0", VIDEO, [codec], ssrc=0xA1A1A1A1)


class Scene:
    """One publisher and one player on a router, with everything the player is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.router = Router(MediaConfig(), CERTIFICATE, self._send, SessionTable())
        publisher_session = PlainSession(
            PUBLISH, "s", [video_spec()], PUBLISHER_ADDR, self._send, 0.0
        )
        self.publisher = self.router.add_publisher("s", publisher_session)
        player_session = PlainSession(PLAY, "s", [video_spec()], PLAYER_ADDR, self._send, 0.0)
        self.player: Player = self.router.add_player("s", player_session)
        self.publisher.on_connected(0.0)
        self.track = self.player.tracks[0]
        self.seq = 1000
        self.out: list[int] = []  # sequence numbers as the player saw them, in order

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((bytes(data), addr))

    def take(self) -> list[bytes]:
        packets = [data for data, addr in self.sent if addr == PLAYER_ADDR]
        self.sent.clear()
        return packets

    def forward(self, count: int, now: float) -> None:
        """count packets from the publisher, the first a keyframe, spread over count/rate s."""
        for i in range(count):
            payload = VP8_KEY if self.seq == 1000 else VP8_INTER
            packet = struct.pack("!BBHII", 0x80, 96, self.seq, self.seq * 1500, 0xA1A1A1A1)
            self.publisher.on_rtp(packet + payload, now + i / PACKET_RATE)
            self.seq += 1
        self.out += [p[2] << 8 | p[3] for p in self.take()]

    def nack(self, sequence_numbers: list[int], now: float) -> bytes:
        """The player NACKs these numbers; returns the RTCP datagram it sent."""
        datagram = rtp.nack(0x5555, self.track.ssrc, sequence_numbers)
        self.player.on_rtcp(datagram, now)
        return datagram


@pytest.fixture
def scene() -> Scene:
    scene = Scene()
    scene.forward(PACKET_RATE, 0.0)
    assert len(scene.out) == PACKET_RATE
    return scene


def test_legit_loss_is_repaired_in_full(scene: Scene) -> None:
    """5% loss, each lost packet NACKed once as it is noticed: every one is resent."""
    for second in range(1, 6):
        start = len(scene.out)
        scene.forward(PACKET_RATE, float(second))
        lost = scene.out[start::20]  # every 20th packet: 5%
        for index, seq in enumerate(lost):
            scene.nack([seq], second + index * 20 / PACKET_RATE)
        resent = [p[2] << 8 | p[3] for p in scene.take()]
        assert resent == lost
    assert scene.track.nack_budget_drops == 0


def test_one_datagram_with_many_nack_items_is_capped(scene: Scene) -> None:
    items = [
        rtp.nack(0x5555, scene.track.ssrc, scene.out[i : i + 16]) for i in range(0, 48, 16)
    ] * 10  # 30 items (the measured attack's 39 are now refused whole: rtp.MAX_RTCP_PACKETS)
    scene.player.on_rtcp(b"".join(items), 1.0)
    resent = scene.take()
    assert len(resent) == min(MAX_RESENDS_PER_RTCP, RESEND_BURST)
    assert scene.track.nack_budget_drops == 30 * 16 - len(resent)


def test_a_flood_stays_within_the_token_bucket_and_10x_its_bytes(scene: Scene) -> None:
    """600 single-NACK datagrams over one second of media, each for a different packet."""
    scene.forward(PACKET_RATE, 1.0)
    rtcp_bytes = 0
    resent_bytes = 0
    for i in range(600):
        rtcp_bytes += len(scene.nack([scene.out[-1 - (i % 100)]], 2.0 + i / 600))
        resent_bytes += sum(len(p) for p in scene.take())
    resends = scene.track.retransmissions
    assert resends <= RESEND_BURST + RESEND_SHARE * PACKET_RATE + 1
    assert resent_bytes <= 10 * rtcp_bytes, (resent_bytes, rtcp_bytes)
    assert scene.track.nack_budget_drops == 600 - resends
    assert scene.track.stats().nack_budget_drops == 600 - resends
    assert scene.router.sessions.drops["nack_budget"] == 600 - resends


def test_the_bucket_refills_with_the_packets_sent(scene: Scene) -> None:
    for i in range(RESEND_BURST + 10):  # drain it
        scene.nack([scene.out[i]], 1.0)
    assert len(scene.take()) == RESEND_BURST
    scene.forward(100, 2.0)  # earns 15 tokens
    for i in range(30):
        scene.nack([scene.out[-1 - i]], 4.0)
    assert len(scene.take()) == int(100 * RESEND_SHARE)


def test_a_sequence_number_is_resent_once_per_round_trip(scene: Scene) -> None:
    seq = scene.out[5]
    scene.nack([seq], 1.0)
    scene.nack([seq], 1.0 + RESEND_INTERVAL_DEFAULT / 2)  # crossed the retransmission
    assert len(scene.take()) == 1
    assert scene.track.nack_budget_drops == 1
    scene.nack([seq], 1.0 + RESEND_INTERVAL_DEFAULT * 1.5)  # the resend was lost too
    assert len(scene.take()) == 1


def test_a_measured_round_trip_sets_the_interval(scene: Scene) -> None:
    scene.track.rtt = 0.5
    seq = scene.out[5]
    scene.nack([seq], 1.0)
    scene.nack([seq], 1.3)
    assert len(scene.take()) == 1
    scene.nack([seq], 1.6)
    assert len(scene.take()) == 1
