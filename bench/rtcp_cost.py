"""What one RTCP datagram costs the server, for the worst datagram of each kind a player or a
publisher may send, beside ordinary ones.

    python -m bench.rtcp_cost [--datagrams 30]

The in-memory harness (tests/harness.py) runs a real Router and UdpEndpoint with a simulcast
publisher and an adaptive player (RTX, transport-cc), both real client peers with SRTP. Each
case builds its datagram the way a client holding the session's keys could, as long as the
server decrypts (SRTCP of at most SRTP_BUFFER bytes), protects it and hands it to the
endpoint; the CPU time of that call alone is measured (time.process_time), with the cyclic
garbage collector paused so that a collection of the harness's heap is not charged to it.
Between datagrams
the fake clock moves on a second or more with media flowing, so every per-second budget is
full again. The player sends its transport-cc feedback as a browser does, except where a case
holds it back: the ordinary datagram reports 100 ms of packets, the worst feedback 1.9 s (the
estimator keeps 2 s). The publisher sends four times the packets of bench.client's simulcast,
smaller (densify), so that the player is sent ~530 packets a second: as many as a fast stream.
It prints microseconds per datagram (mean and worst of --datagrams), and the mean's ratio to
that of an ordinary RTP packet (an Opus packet from the publisher, forwarded to the player).
"""

from __future__ import annotations

import argparse
import gc
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pylibsrtp._binding import ffi

from bench.client import SIMULCAST_LAYERS, SimulcastLayer, SimulcastMedia
from bench.sdp import VIDEO_PT
from sfu.protocol.twcc import FMT_TRANSPORT_CC, TwccRecorder
from sfu.wire import rtp
from tests.harness import Harness, Peer

SRTP_BUFFER = 1500  # pylibsrtp's packet buffer: the server decrypts nothing longer
MAX_PLAIN = SRTP_BUFFER - 4 - 16  # less SRTCP's index and the longest tag (AES-GCM)
CLAIMED_LOST = 4096  # the red team's feedback items: one run-length chunk of lost packets
DENSITY, DENSE_PAYLOAD = 4, 250


class HeldFeedback(TwccRecorder):
    """A player's transport-cc recorder whose feedback the bench can hold back, and which
    knows the last transport-wide number received."""

    def __init__(self) -> None:
        super().__init__()
        self.last = 0
        self.held = False

    def record(self, seq: int, arrival_us: int) -> None:
        super().record(seq, arrival_us)
        self.last = seq

    def build(self, sender_ssrc: int, media_ssrc: int) -> bytes | None:
        return None if self.held else super().build(sender_ssrc, media_ssrc)

    def first_unreported(self) -> int:
        return self.last if self._next_base is None else self._next_base & 0xFFFF

    def release(self, sender_ssrc: int, media_ssrc: int) -> bytes:
        """The feedback held back so far (it counts as sent)."""
        return super().build(sender_ssrc, media_ssrc) or b""


def protect_longest(peer: Peer) -> None:
    """Let a client peer protect RTCP as long as the server decrypts: pylibsrtp's protect
    keeps room in its 1,500-byte buffer for the longest trailer there is (148 bytes), so on
    its own it sends 1,352 bytes at most, as the red team's client did."""
    session = peer.transport.srtp.protect_rtcp.__self__  # type: ignore[union-attr]
    session._cdata = ffi.new("char[]", 2 * SRTP_BUFFER)
    session._buffer = ffi.buffer(session._cdata)


def densify(media: SimulcastMedia) -> None:
    """Four times the packets a frame on every layer, of 250 bytes: the top layer is ~480
    packets a second, as in a fast stream, in under 1 Mbit/s, so the player stays on it."""
    media.layers = [SimulcastLayer(rid, DENSITY * count) for rid, count in SIMULCAST_LAYERS]
    media._video_buf = bytearray(12 + DENSE_PAYLOAD)


class Scene:
    """A connected simulcast publisher and player, and what a client knows of them."""

    def __init__(self) -> None:
        self.harness = Harness()
        self.publisher = self.harness.publisher("s", simulcast=True)
        media = self.publisher.media
        assert isinstance(media, SimulcastMedia)
        densify(media)
        self.player = self.harness.player("s")
        self.harness.connect(self.publisher, self.player)
        self.feedback = HeldFeedback()
        self.player._twcc = self.feedback
        self.harness.run(3.0)
        protect_longest(self.player)
        protect_longest(self.publisher)
        self.video_ssrc = next(r.ssrc for r in self.player.received if r.payload_type == VIDEO_PT)
        self.me = self.player.rtcp_ssrc
        self.layer_ssrc = media.layers[-1].ssrc

    def last_video_seq(self) -> int:
        return next(r.seq for r in reversed(self.player.received) if r.ssrc == self.video_ssrc)


def fill(item: bytes, most: int = rtp.MAX_RTCP_PACKETS) -> bytes:
    """As many copies of one RTCP item as fit in a datagram, and the server takes."""
    return item * min(most, MAX_PLAIN // len(item))


def transport_cc(sender: int, media: int, base: int, count: int, chunks: bytes) -> bytes:
    """A transport-cc feedback item with the given chunks and deltas, padded to 32 bits."""
    body = struct.pack("!IIHHI", sender, media, base & 0xFFFF, count, 1 << 8) + chunks
    body += bytes(-len(body) % 4)
    return struct.pack("!BBH", 0x80 | FMT_TRANSPORT_CC, rtp.RTCP_RTPFB, len(body) // 4) + body


def receiver_report(sender: int, ssrc: int, blocks: int) -> bytes:
    block = rtp.ReportBlock(ssrc, 10, 5, 1000, 30, 0, 0)
    return rtp.receiver_report(sender, [block] * blocks)


def media_packet(scene: Scene) -> bytes:
    """An Opus packet from the publisher, protected as its peer sends it."""
    publisher, sent = scene.publisher, []
    assert publisher.media is not None
    publisher.send = sent.append  # type: ignore[method-assign]
    try:
        publisher._send_rtp(publisher.media.audio_packet(int(scene.harness.now * 1e9)))
    finally:
        del publisher.send
    return sent[0]


def ordinary(scene: Scene) -> bytes:
    """A player's receiver report and its transport-cc feedback of the last 100 ms."""
    report = receiver_report(scene.me, scene.video_ssrc, 1)
    return report + scene.feedback.release(scene.me, scene.video_ssrc)


def twcc_lost_runs(scene: Scene) -> bytes:
    """The red team's datagram: items claiming 4,096 lost packets, ending past the last sent."""
    base = scene.feedback.last - (CLAIMED_LOST - 50)
    run = struct.pack("!H", CLAIMED_LOST)  # run length: T=0, symbol 0 (not received)
    return fill(transport_cc(scene.me, scene.video_ssrc, base, CLAIMED_LOST, run))


def twcc_received(scene: Scene) -> bytes:
    """One item reporting the packets of the feedback held back as received (1-bit vectors,
    1-byte deltas): each status names a packet really sent and not yet reported."""
    feedback = scene.feedback
    base = feedback.first_unreported()
    count = min((feedback.last - base) & 0xFFFF, (MAX_PLAIN - 24) * 7 // 8) + 1
    feedback.release(0, 0)  # the peer will not report them again
    chunks = struct.pack("!H", 0xBFFF) * -(-count // 14) + bytes([4] * count)
    return transport_cc(scene.me, scene.video_ssrc, base, count, chunks)


def nack_misses(scene: Scene) -> bytes:
    """One NACK item naming as many packets as fit, none of them ever sent."""
    first = scene.last_video_seq() + 1000
    entries = range((MAX_PLAIN - 12) // 4)
    fci = b"".join(struct.pack("!HH", (first + 17 * i) & 0xFFFF, 0xFFFF) for i in entries)
    header = struct.pack("!BBH", 0x80 | rtp.FMT_NACK, rtp.RTCP_RTPFB, 2 + len(fci) // 4)
    return header + struct.pack("!II", scene.me, scene.video_ssrc) + fci


def nack_repeats(scene: Scene) -> bytes:
    """NACK items asking for the last packet sent, over and over."""
    return fill(rtp.nack(scene.me, scene.video_ssrc, [scene.last_video_seq()]))


def remb(scene: Scene) -> bytes:
    body = b"REMB" + struct.pack("!BBH", 1, 0x0F, 0xFFFF) + scene.video_ssrc.to_bytes(4, "big")
    return fill(struct.pack("!BBHII", 0x8F, rtp.RTCP_PSFB, 5, scene.me, 0) + body)


def plis(scene: Scene) -> bytes:
    return fill(rtp.pli(scene.me, scene.video_ssrc))


def fir(scene: Scene) -> bytes:
    entries = (MAX_PLAIN - 12) // 8
    fci = struct.pack("!II", scene.video_ssrc, 0) * entries
    header = struct.pack("!BBH", 0x80 | rtp.FMT_FIR, rtp.RTCP_PSFB, 2 + 2 * entries)
    return header + struct.pack("!II", scene.me, 0) + fci


def receiver_reports(scene: Scene) -> bytes:
    """Receiver reports of 31 blocks (the most one may hold) about the video track, then
    one of as many as still fit."""
    full = receiver_report(scene.me, scene.video_ssrc, 31)
    rest = (MAX_PLAIN - len(full) - 8) // 24
    return full + receiver_report(scene.me, scene.video_ssrc, rest)


def sender_reports(scene: Scene) -> bytes:
    """Sender reports from the publisher for its top layer's SSRC (publisher side)."""
    ntp = int(scene.harness.now * (1 << 32))
    return fill(rtp.sender_report(scene.layer_ssrc, ntp, 1234, 10, 1000))


def byes(scene: Scene) -> bytes:
    """More items than the server takes: as many 8-byte BYEs as fit, refused whole."""
    return fill(struct.pack("!BBHI", 0x81, rtp.RTCP_BYE, 1, scene.me), most=MAX_PLAIN)


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Scene], bytes]  # plain RTCP, or a datagram ready to send (SRTP)
    publisher: bool = False  # sent by the publisher, else by the player
    hold: float = 0.0  # seconds the player's own transport-cc feedback is held back first


CASES: Sequence[Case] = (
    Case("ordinary RTP (Opus, forwarded)", media_packet, publisher=True),
    Case("ordinary RTCP (RR + transport-cc)", ordinary, hold=0.1),
    Case("transport-cc: 4096-lost items", twcc_lost_runs),
    Case("transport-cc: 1.9 s all received", twcc_received, hold=1.9),
    Case("NACK: packets never sent", nack_misses),
    Case("NACK: one packet repeated", nack_repeats),
    Case("REMB items", remb),
    Case("PLI items", plis),
    Case("FIR: one item, all entries", fir),
    Case("RR: most blocks", receiver_reports),
    Case("SR items (publisher)", sender_reports, publisher=True),
    Case("BYE items: over the limit", byes),
)


def measure(
    scene: Scene, case: Case, count: int, spacing: float = 1.0
) -> tuple[int, int, float, float]:
    """(bytes, RTCP items, mean µs, worst µs) of `count` datagrams of `case`, `spacing`
    seconds of media apart (or the case's hold, if longer)."""
    peer: Peer = scene.publisher if case.publisher else scene.player
    harness, endpoint = scene.harness, scene.harness.server.endpoint
    times = []
    plain = b""
    for _ in range(count):
        harness.run(max(spacing, case.hold) - case.hold)
        scene.feedback.held = True
        harness.run(case.hold)
        plain = case.build(scene)
        scene.feedback.held = False
        datagram = plain
        if rtp.is_rtcp(plain):
            assert len(plain) <= MAX_PLAIN, len(plain)
            datagram = peer.transport.srtp.protect_rtcp(plain)  # type: ignore[union-attr]
        assert len(datagram) <= SRTP_BUFFER
        gc.disable()  # a collection of the harness's heap (every packet the peers got) is not
        start = time.process_time()  # the datagram's cost
        endpoint.datagram_received(datagram, peer.address, harness.now)
        times.append(time.process_time() - start)
        gc.enable()
    items = len(rtp.split_rtcp(plain, limit=len(plain))) if rtp.is_rtcp(plain) else 0
    return len(plain), items, 1e6 * sum(times) / count, 1e6 * max(times)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datagrams", type=int, default=30, help="per case")
    args = parser.parse_args(argv)
    scene = Scene()
    drops = scene.harness.router.sessions.drops
    before = dict(drops)
    print(f"{'datagram':36} {'bytes':>5} {'items':>5} {'µs mean':>8} {'µs worst':>8} {'ratio':>6}")
    baseline = None
    for case in CASES:
        size, items, mean, worst = measure(scene, case, args.datagrams)
        baseline = baseline or mean
        ratio = mean / baseline
        print(f"{case.name:36} {size:5} {items:5} {mean:8.1f} {worst:8.1f} {ratio:5.1f}x")
    counted = {k: v - before.get(k, 0) for k, v in drops.items() if v > before.get(k, 0)}
    print("drops counted:", ", ".join(f"{k} {v}" for k, v in sorted(counted.items())) or "none")


if __name__ == "__main__":
    main()
