"""A synthetic publisher for the egress tests and bench: real VP8 or H264 and Opus frames,
sent as RTP with Sender Reports through a real router on a fake clock, with loss and NACK
repair."""

from __future__ import annotations

import contextlib
import random

from bench.egress_media import (
    h264_payloads,
    opus_frames,
    rtp_packet,
    video_frames,
    vp8_payloads,
)
from sfu.config import MediaConfig
from sfu.egress.hls_streams import HlsRefused, HlsStreams
from sfu.egress.recordings import Recordings
from sfu.media import AUDIO, VIDEO, Codec, TrackSpec
from sfu.protocol.certificate import Certificate
from sfu.routing.relay import PlainSession
from sfu.routing.router import PUBLISH, Router
from sfu.session.table import SessionTable
from sfu.wire import rtp

CERTIFICATE = Certificate.generate()
STEP = 0.01
NTP_BASE = 3_900_000_000.0  # seconds: an NTP clock far from the fake one
FEEDBACK = ("nack", "nack pli")


class Publisher:
    """One publish of `stream`: video (VP8 or H264) and Opus, each frame sent at its
    capture time plus its track's own delay; `loss` of the video packets dropped."""

    def __init__(self, router: Router, stream: str, codec: str, now: float, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        video = Codec(codec.upper(), 96, 90000, rtcp_fb=FEEDBACK)
        tracks = [
            TrackSpec("0", AUDIO, [Codec("opus", 111, 48000, 2, rtcp_fb=FEEDBACK)]),
            TrackSpec("1", VIDEO, [video]),
        ]
        self.session = PlainSession(PUBLISH, stream, tracks, ("publisher", 1), self._feedback, now)
        router.add_publisher(stream, self.session)
        self.session.handler.on_connected(now)  # type: ignore[union-attr]
        self.codec = codec
        self.start = now
        self.video_ssrc, self.audio_ssrc = self.rng.getrandbits(32), self.rng.getrandbits(32)
        self.video_base, self.audio_base = self.rng.getrandbits(32), self.rng.getrandbits(32)
        self.video_seq, self.audio_seq = self.rng.getrandbits(16), self.rng.getrandbits(16)
        self.loss = 0.0
        self.sent: dict[int, bytes] = {}
        self.resends: list[tuple[float, bytes]] = []
        self.nacked = 0
        self.repair = True  # answer NACKs
        self._now = now

    def _feedback(self, packet: bytes, addr: object) -> None:
        """The server's RTCP: NACKed video packets go again 20 ms later."""
        for item in rtp.split_rtcp(packet):
            if item.packet_type == rtp.RTCP_RTPFB and item.fmt == rtp.FMT_NACK:
                for seq in rtp.nack_sequence_numbers(item):
                    if seq in self.sent and self.repair:
                        self.nacked += 1
                        self.resends.append((self._now + 0.02, self.sent[seq]))

    def send_video(self, index: int, frame: bytes, capture: float) -> None:
        payloads = vp8_payloads(frame, index) if self.codec == "vp8" else h264_payloads(frame)
        ts = self.video_base + round((capture - self.start) * 90000)
        for number, payload in enumerate(payloads):
            seq = self.video_seq & 0xFFFF
            self.video_seq += 1
            last = number == len(payloads) - 1
            packet = rtp_packet(96, seq, ts, self.video_ssrc, last, payload)
            self.sent[seq] = packet
            if self.rng.random() >= self.loss:
                self.session.handle_srtp(packet, self._now)

    def send_audio(self, frame: bytes, capture: float) -> None:
        ts = self.audio_base + round((capture - self.start) * 48000)
        packet = rtp_packet(111, self.audio_seq, ts, self.audio_ssrc, False, frame)
        self.audio_seq += 1
        self.session.handle_srtp(packet, self._now)

    def send_reports(self, now: float) -> None:
        """Sender Reports of both tracks on one NTP clock (capture time + NTP_BASE)."""
        elapsed = now - self.start
        ntp = int((NTP_BASE + now) * (1 << 32))
        for ssrc, base, clock in (
            (self.video_ssrc, self.video_base, 90000),
            (self.audio_ssrc, self.audio_base, 48000),
        ):
            rtp_time = base + round(elapsed * clock)
            self.session.handle_srtp(rtp.sender_report(ssrc, ntp, rtp_time, 0, 0), now)

    def tick(self, now: float) -> None:
        self._now = now
        due = [packet for at, packet in self.resends if at <= now]
        self.resends = [(at, packet) for at, packet in self.resends if at > now]
        for packet in due:
            self.session.handle_srtp(packet, now)


class Scene:
    """A router with Recordings into `directory`, driven on a fake clock."""

    def __init__(
        self, directory: str | None, patterns: tuple[str, ...] = ("*",), segment: float = 0.0
    ) -> None:
        self.router = Router(MediaConfig(), CERTIFICATE, lambda data, addr: None, SessionTable())
        self.now = 100.0
        self.size, self.bitrate = (320, 240), None  # of the video published
        self.hls = HlsStreams(self.router)
        self.hls_viewed: set[str] = set()  # streams whose playlist someone asks for each tick
        wall = lambda: 1_765_000_000 + self.now  # noqa: E731 - file names follow the fake clock
        self.recordings = Recordings(self.router, directory, patterns, segment, wall)

    def publish(
        self,
        stream: str,
        codec: str,
        seconds: float,
        *,
        loss: float = 0.0,
        video_delay: float = 0.0,
        seed: int = 1,
        repair: bool = True,
    ) -> Publisher:
        """Publish `seconds` of media, then stop sending (the session stays)."""
        publisher = Publisher(self.router, stream, codec, self.now, seed)
        publisher.loss = loss
        publisher.repair = repair
        self.recordings.handle_timer(self.now)  # a pattern's recording starts as it goes live
        encoder = "libvpx" if codec == "vp8" else "libx264"
        video = video_frames(encoder, round(seconds * 30), size=self.size, bitrate=self.bitrate)
        audio = opus_frames(round(seconds * 50))
        start = self.now
        sends = [(start + i / 30 + video_delay, 0, i) for i in range(len(video))]
        sends += [(start + i / 50, 1, i) for i in range(len(audio))]
        sends.sort()
        next_report = start
        while sends or publisher.resends:
            now = self.now
            while sends and sends[0][0] <= now:
                _, kind, index = sends.pop(0)
                if kind == 0:
                    publisher.send_video(index, video[index][0], start + index / 30)
                else:
                    publisher.send_audio(audio[index], start + index / 50)
            if now >= next_report:
                publisher.send_reports(now)
                next_report = now + 1.0
            publisher.tick(now)
            self.advance(STEP)
        return publisher

    def advance(self, seconds: float) -> None:
        for _ in range(round(seconds / STEP)):
            self.now += STEP
            self.router.handle_timer(self.now)
            self.recordings.handle_timer(self.now)
            for name in self.hls_viewed:
                with contextlib.suppress(HlsRefused):  # not live (yet)
                    self.hls.get(name, self.now)
            self.hls.handle_timer(self.now)
