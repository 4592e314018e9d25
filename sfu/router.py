"""Streams, their publisher's tracks and every player's view of them.

Each player track has its own SSRC, payload type, sequence numbers and timestamps: the router
rewrites those four header fields per player, so a player may join at any moment (it starts on a
keyframe) and a publisher may leave and come back without the player noticing more than a jump.
"""

from __future__ import annotations

import logging
import secrets
import struct
from collections.abc import Callable

from sfu import rtp
from sfu.config import MediaConfig
from sfu.dtls import Certificate
from sfu.keyframes import keyframe_detector
from sfu.media import VIDEO, Codec, PeerParams, TrackSpec
from sfu.session import PeerSession, SendFunction, SessionState, SessionTable

log = logging.getLogger(__name__)

PUBLISH = "publish"
PLAY = "play"

# Marker+PT byte, sequence number, timestamp, SSRC: bytes 1..11 of the RTP header.
_REWRITE = struct.Struct("!BHII")


class StreamBusy(Exception):
    """The stream already has a live publisher."""


class PublisherTrack:
    """One incoming track: where its packets come from and which player tracks they go to."""

    def __init__(self, spec: TrackSpec, request_keyframe_after: float) -> None:
        self.spec = spec
        self.kind = spec.kind
        self.codec: Codec = spec.codecs[0]
        self.ssrc: int | None = spec.ssrc
        self.is_keyframe = keyframe_detector(self.codec.name)
        self.subscribers: list[SubscriberTrack] = []
        self.packets = 0
        self.bytes = 0
        self.last_seq = 0
        self.last_ts = 0
        self.last_time = 0.0
        self.keyframe_requested_at = -1e9
        self.keyframe_requests = 0
        self._keyframe_interval = request_keyframe_after
        self.send_pli: Callable[[int], None] | None = None

    def forward(self, packet: bytes, now: float) -> None:
        """The hot path: rewrite and send one plaintext RTP packet to every started player."""
        self.packets += 1
        self.bytes += len(packet)
        seq = packet[2] << 8 | packet[3]
        ts = int.from_bytes(packet[4:8], "big")
        self.last_seq = seq
        self.last_ts = ts
        self.last_time = now
        subscribers = self.subscribers
        if not subscribers:
            return
        if packet[0] & 0x10:
            packet = rtp.strip_extensions(packet)
        buf = bytearray(packet)
        marker = packet[1] & 0x80
        keyframe: bool | None = None
        pack_into = _REWRITE.pack_into
        for sub in subscribers:
            if not sub.started:
                if keyframe is None:
                    keyframe = self._starts_keyframe(packet)
                if not keyframe:
                    continue
                sub.start(seq, ts, now)
            pack_into(
                buf,
                1,
                marker | sub.payload_type,
                (seq + sub.seq_offset) & 0xFFFF,
                (ts + sub.ts_offset) & 0xFFFFFFFF,
                sub.ssrc,
            )
            sub.send(buf)

    def _starts_keyframe(self, packet: bytes) -> bool:
        try:
            start, end = rtp.payload_bounds(packet)
        except rtp.RtpError:
            return False
        return self.is_keyframe(packet[start:end])

    def request_keyframe(self, now: float) -> None:
        """Ask the publisher for a keyframe (PLI), at most once per keyframe interval."""
        if self.kind != VIDEO or self.ssrc is None or self.send_pli is None:
            return
        if now - self.keyframe_requested_at < self._keyframe_interval:
            return
        self.keyframe_requested_at = now
        self.keyframe_requests += 1
        self.send_pli(self.ssrc)

    def waiting_players(self) -> bool:
        return any(not sub.started for sub in self.subscribers)


class SubscriberTrack:
    """One outgoing track of a player, fed by at most one publisher track at a time."""

    def __init__(self, player: Player, spec: TrackSpec) -> None:
        self.player = player
        self.spec = spec
        self.kind = spec.kind
        self.ssrc = secrets.randbits(32) or 1
        self.source: PublisherTrack | None = None
        self.payload_type = 0
        self.started = False
        self.seq_offset = 0
        self.ts_offset = 0
        self.packets = 0
        self.bytes = 0
        # Where the next source continues: (next sequence number, last timestamp, at time).
        self._resume: tuple[int, int, float] | None = None
        self._protect: Callable[[bytes], bytes] | None = None
        self._sendto: SendFunction | None = None

    def payload_type_for(self, codec: Codec) -> int | None:
        """This player's payload type for the publisher's codec, or None if it cannot take it."""
        name = codec.name.lower()
        candidates = [c for c in self.spec.codecs if c.name.lower() == name]
        if not candidates:
            return None
        if name == "h264":
            wanted = codec.fmtp_params.get("profile-level-id", "")[:2].lower()
            for candidate in candidates:
                profile = candidate.fmtp_params.get("profile-level-id", "")[:2].lower()
                if profile == wanted:
                    return candidate.payload_type
        return candidates[0].payload_type

    def attach(self, source: PublisherTrack, payload_type: int, sendto: SendFunction) -> None:
        session = self.player.session
        assert session.srtp is not None
        self.source = source
        self.payload_type = payload_type
        self.started = False
        self._protect = session.srtp.protect_rtp
        self._sendto = sendto
        source.subscribers.append(self)

    def detach(self) -> None:
        """Leave the current source, remembering where the sequence and timestamps stood."""
        source = self.source
        if source is None:
            return
        if self.started:
            self._resume = (
                (source.last_seq + self.seq_offset + 1) & 0xFFFF,
                (source.last_ts + self.ts_offset) & 0xFFFFFFFF,
                source.last_time,
            )
        source.subscribers.remove(self)
        self.source = None
        self.started = False

    def start(self, seq: int, ts: int, now: float) -> None:
        """Set the offsets at the first packet sent from a source (a keyframe for video)."""
        if self._resume is None:
            next_seq = secrets.randbits(15)
            next_ts = secrets.randbits(31)
        else:
            next_seq, last_ts, at = self._resume
            clock_rate = self.source.codec.clock_rate if self.source else 90000
            next_ts = last_ts + max(1, int((now - at) * clock_rate))
        self.seq_offset = (next_seq - seq) & 0xFFFF
        self.ts_offset = (next_ts - ts) & 0xFFFFFFFF
        self.started = True

    def send(self, packet: bytearray) -> None:
        addr = self.player.session.addr
        if addr is None:
            return
        self.packets += 1
        self.bytes += len(packet)
        self._sendto(self._protect(bytes(packet)), addr)  # type: ignore[misc]


class Publisher:
    """The media handler of a publishing session."""

    def __init__(self, router: Router, stream: Stream, session: PeerSession) -> None:
        self.router = router
        self.stream = stream
        self.session = session
        interval = router.config.keyframe_interval
        self.tracks = [PublisherTrack(spec, interval) for spec in session.peer.tracks]
        self.by_ssrc: dict[int, PublisherTrack] = {
            t.ssrc: t for t in self.tracks if t.ssrc is not None
        }
        self.by_pt: dict[int, PublisherTrack] = {t.codec.payload_type: t for t in self.tracks}
        self.unknown_packets = 0
        for track in self.tracks:
            track.send_pli = self._send_pli

    def _send_pli(self, media_ssrc: int) -> None:
        self.session.send_rtcp(rtp.pli(self.session.rtcp_ssrc, media_ssrc))

    def on_connected(self, now: float) -> None:
        self.stream.publisher_ready(now)

    def on_rtp(self, packet: bytes, now: float) -> None:
        ssrc = int.from_bytes(packet[8:12], "big")
        track = self.by_ssrc.get(ssrc)
        if track is None:
            track = self._learn_ssrc(packet, ssrc, now)
            if track is None:
                return
        track.forward(packet, now)

    def _learn_ssrc(self, packet: bytes, ssrc: int, now: float) -> PublisherTrack | None:
        """Map an undeclared SSRC to its track by payload type (one codec per m-line)."""
        track = self.by_pt.get(packet[1] & 0x7F)
        if track is None or len(self.by_ssrc) >= 4 * len(self.tracks):
            self.unknown_packets += 1
            return None
        if track.ssrc is not None:
            # The publisher restarted this track with a new SSRC: players resync on a keyframe.
            log.info("stream %s: %s SSRC changed to %d", self.stream.name, track.kind, ssrc)
            self.by_ssrc.pop(track.ssrc, None)
            for sub in list(track.subscribers):
                sub.detach()
                sub.attach(track, sub.payload_type, self.router.send)
        track.ssrc = ssrc
        self.by_ssrc[ssrc] = track
        track.request_keyframe(now)
        return track

    def on_rtcp(self, packet: bytes, now: float) -> None:
        """Publisher RTCP (SR, SDES, BYE, feedback about nothing we send) needs no action yet."""

    def on_closed(self) -> None:
        self.stream.publisher_gone(self)


class Player:
    """The media handler of a playing session."""

    def __init__(self, router: Router, stream: Stream, session: PeerSession) -> None:
        self.router = router
        self.stream = stream
        self.session = session
        self.tracks = [SubscriberTrack(self, spec) for spec in session.peer.tracks]
        self.by_ssrc = {t.ssrc: t for t in self.tracks}
        self.keyframe_requests = 0

    def ssrcs(self) -> dict[str, tuple[int, int | None]]:
        """mid -> (media SSRC, RTX SSRC) that the answer announces."""
        return {t.spec.mid: (t.ssrc, None) for t in self.tracks}

    def on_connected(self, now: float) -> None:
        self.stream.player_ready(self, now)

    def on_rtp(self, packet: bytes, now: float) -> None:
        """Players send no media we carry."""

    def on_rtcp(self, packet: bytes, now: float) -> None:
        """Forward a player's PLI/FIR to the publisher (rate-limited per track)."""
        try:
            packets = rtp.split_rtcp(packet)
        except rtp.RtpError:
            return
        for item in packets:
            if item.packet_type != rtp.RTCP_PSFB:
                continue
            try:
                if item.fmt == rtp.FMT_PLI:
                    targets = [rtp.feedback_media_ssrc(item)]
                elif item.fmt == rtp.FMT_FIR:
                    targets = rtp.fir_targets(item)
                else:
                    continue
            except rtp.RtpError:
                continue
            for ssrc in targets:
                track = self.by_ssrc.get(ssrc)
                if track is not None and track.source is not None:
                    self.keyframe_requests += 1
                    track.source.request_keyframe(now)

    def on_closed(self) -> None:
        self.stream.player_gone(self)


class Stream:
    """A named stream: at most one publisher and any number of players, in either order."""

    def __init__(self, router: Router, name: str) -> None:
        self.router = router
        self.name = name
        self.publisher: Publisher | None = None
        self.players: set[Player] = set()
        # Counters of sessions that have left, so totals never go backwards.
        self.past_packets_in = 0
        self.past_bytes_in = 0
        self.past_packets_out = 0
        self.past_bytes_out = 0
        self.rate_in = 0.0
        self.rate_out = 0.0
        self._last_sample: tuple[float, int, int] | None = None

    def live_publisher(self) -> Publisher | None:
        pub = self.publisher
        if pub is not None and pub.session.state is SessionState.CONNECTED:
            return pub
        return None

    def publisher_ready(self, now: float) -> None:
        for player in self.players:
            if player.session.state is SessionState.CONNECTED:
                self._link(player, now)

    def player_ready(self, player: Player, now: float) -> None:
        if self.live_publisher() is not None:
            self._link(player, now)

    def _link(self, player: Player, now: float) -> None:
        """Attach each player track to the publisher track of the same kind and position."""
        publisher = self.publisher
        assert publisher is not None
        for kind in {t.kind for t in player.tracks}:
            sources = [t for t in publisher.tracks if t.kind == kind]
            sinks = [t for t in player.tracks if t.kind == kind]
            for source, sink in zip(sources, sinks, strict=False):
                payload_type = sink.payload_type_for(source.codec)
                if payload_type is None:
                    log.warning(
                        "stream %s: player %s cannot receive %s; its %s track stays empty",
                        self.name,
                        player.session.id,
                        source.codec.name,
                        kind,
                    )
                    continue
                sink.attach(source, payload_type, self.router.send)
                source.request_keyframe(now)

    def publisher_gone(self, publisher: Publisher) -> None:
        if self.publisher is not publisher:
            return
        for track in publisher.tracks:
            self.past_packets_in += track.packets
            self.past_bytes_in += track.bytes
            for sub in list(track.subscribers):
                sub.detach()
        self.publisher = None
        self.router.forget_if_empty(self)

    def player_gone(self, player: Player) -> None:
        self.players.discard(player)
        for track in player.tracks:
            self.past_packets_out += track.packets
            self.past_bytes_out += track.bytes
            track.detach()
        self.router.forget_if_empty(self)

    def counters(self) -> tuple[int, int, int, int]:
        """(packets in, bytes in, packets out, bytes out) since the stream appeared."""
        packets_in, bytes_in = self.past_packets_in, self.past_bytes_in
        if self.publisher is not None:
            packets_in += sum(t.packets for t in self.publisher.tracks)
            bytes_in += sum(t.bytes for t in self.publisher.tracks)
        packets_out, bytes_out = self.past_packets_out, self.past_bytes_out
        for player in self.players:
            packets_out += sum(t.packets for t in player.tracks)
            bytes_out += sum(t.bytes for t in player.tracks)
        return packets_in, bytes_in, packets_out, bytes_out

    def sample_rates(self, now: float) -> None:
        """Update bits-per-second in and out from the counters since the last sample."""
        _, bytes_in, _, bytes_out = self.counters()
        if self._last_sample is not None:
            then, last_in, last_out = self._last_sample
            elapsed = now - then
            if elapsed > 0:
                self.rate_in = 8 * (bytes_in - last_in) / elapsed
                self.rate_out = 8 * (bytes_out - last_out) / elapsed
        self._last_sample = (now, bytes_in, bytes_out)

    def snapshot(self) -> dict:
        """The stream as the stats API shows it."""
        packets_in, bytes_in, packets_out, bytes_out = self.counters()
        publisher = self.publisher
        return {
            "name": self.name,
            "publishing": self.live_publisher() is not None,
            "publisher_state": publisher.session.state.value if publisher else None,
            "publisher_session": publisher.session.id if publisher else None,
            "codecs": {t.kind: t.codec.name for t in publisher.tracks} if publisher else {},
            "players": len(self.players),
            "packets_in": packets_in,
            "bytes_in": bytes_in,
            "packets_out": packets_out,
            "bytes_out": bytes_out,
            "bitrate_in": round(self.rate_in),
            "bitrate_out": round(self.rate_out),
            "tracks": [
                {
                    "kind": t.kind,
                    "codec": t.codec.name,
                    "ssrc": t.ssrc,
                    "packets": t.packets,
                    "bytes": t.bytes,
                    "subscribers": len(t.subscribers),
                    "plis_sent": t.keyframe_requests,
                }
                for t in (publisher.tracks if publisher else [])
            ],
        }


class Router:
    """Owns sessions and streams; signaling calls publish/play/close, the endpoint feeds packets."""

    def __init__(
        self,
        config: MediaConfig,
        certificate: Certificate,
        send: SendFunction,
        sessions: SessionTable,
    ) -> None:
        self.config = config
        self.certificate = certificate
        self.send = send
        self.sessions = sessions
        self.streams: dict[str, Stream] = {}

    def _stream(self, name: str) -> Stream:
        stream = self.streams.get(name)
        if stream is None:
            stream = self.streams[name] = Stream(self, name)
        return stream

    def forget_if_empty(self, stream: Stream) -> None:
        if (
            stream.publisher is None
            and not stream.players
            and self.streams.get(stream.name) is stream
        ):
            del self.streams[stream.name]

    def _new_session(self, role: str, stream: str, peer: PeerParams, now: float) -> PeerSession:
        session = PeerSession(role, stream, peer, self.certificate, self.send, now)
        self.sessions.add(session)
        return session

    def publish(self, name: str, peer: PeerParams, now: float) -> PeerSession:
        """A new publishing session for stream `name`; StreamBusy if one is already there."""
        stream = self._stream(name)
        if stream.publisher is not None:
            raise StreamBusy(f"stream {name} already has a publisher")
        session = self._new_session(PUBLISH, name, peer, now)
        stream.publisher = Publisher(self, stream, session)
        session.handler = stream.publisher
        return session

    def play(self, name: str, peer: PeerParams, now: float) -> PeerSession:
        """A new playing session; it may come before the publisher does."""
        stream = self._stream(name)
        session = self._new_session(PLAY, name, peer, now)
        player = Player(self, stream, session)
        stream.players.add(player)
        session.handler = player
        return session

    def preferred_codecs(self, name: str) -> dict[str, str]:
        """kind -> codec name of the stream's current publisher, to put first in a player answer."""
        stream = self.streams.get(name)
        if stream is None or stream.publisher is None:
            return {}
        return {t.kind: t.codec.name for t in stream.publisher.tracks}

    def close(self, session_id: str, reason: str) -> bool:
        session = self.sessions.by_id.get(session_id)
        if session is None:
            return False
        session.close(reason)
        return True

    def restart_ice(
        self, session_id: str, remote_ufrag: str, remote_pwd: str
    ) -> PeerSession | None:
        """Give a session new ICE credentials (PATCH with new ice-ufrag/pwd); None if unknown."""
        session = self.sessions.by_id.get(session_id)
        if session is None or session.state is SessionState.CLOSED:
            return None
        session.restart_ice(remote_ufrag, remote_pwd)
        return session

    def poll(self, now: float) -> None:
        """Timers: DTLS retransmission, session timeouts, keyframes for players still waiting."""
        timeout = self.config.session_timeout
        for session in list(self.sessions.by_id.values()):
            session.poll(now, timeout)
        for stream in self.streams.values():
            publisher = stream.live_publisher()
            if publisher is None:
                continue
            for track in publisher.tracks:
                if track.subscribers and track.waiting_players():
                    track.request_keyframe(now)

    def sample_rates(self, now: float) -> None:
        for stream in self.streams.values():
            stream.sample_rates(now)

    def close_all(self, reason: str) -> None:
        for session in list(self.sessions.by_id.values()):
            session.close(reason)

    def snapshot(self) -> list[dict]:
        return [stream.snapshot() for stream in sorted(self.streams.values(), key=lambda s: s.name)]
