"""A recorder is a player: a routing Player whose session hands its packets to this object
instead of a socket. It gets keyframe starts, layer choice (the top layer: it has no
bandwidth estimate) and NACK answers like any player, and turns what it receives into file
events: FileOpened, Sample, FileClosed. Sans-IO: the caller (recordings.py) writes files."""

from __future__ import annotations

from dataclasses import dataclass

from sfu.egress.depacketize import h264_size, vp8_size
from sfu.egress.track import Frame, TrackReceiver, extend
from sfu.media import AUDIO, VIDEO, Codec, TrackSpec
from sfu.routing.player import Player
from sfu.routing.relay import PlainSession
from sfu.routing.router import PLAY, Router
from sfu.routing.subscriber_track import SubscriberTrack
from sfu.session.transport import Address
from sfu.wire import rtp

# What the recorder's player track offers: payload type -> codec; RTX beside video.
OPUS = Codec("opus", 111, 48000, 2)
VP8 = Codec("VP8", 96, 90000, rtx_payload_type=97)
# The recorder muxes H264 without decoding it, so it takes any profile a WebRTC publisher
# sends at any level; players are matched by profile (RFC 6184 §8.1), so it names the two
# decoders that cover them: Baseline (Constrained Baseline and Baseline) and High
# (Constrained Baseline, Main, Constrained High and High), each allowing level asymmetry.
# An H264 without a profile-level-id would mean Baseline at level 1, and get no stream.
H264_ANY_LEVEL = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id="
H264 = Codec("H264", 102, 90000, fmtp=H264_ANY_LEVEL + "420034", rtx_payload_type=103)
H264_HIGH = Codec("H264", 104, 90000, fmtp=H264_ANY_LEVEL + "640034", rtx_payload_type=105)
ADDRESS: Address = ("egress", 0)  # never a socket's: the media comes back in-process
SYNC_WAIT = 2.0  # seconds a file's start waits for every track's Sender Report
MAX_HELD_FRAMES = 1000  # frames held while waiting (a keyframe, the reports): oldest go
KEYFRAME_REQUEST_EVERY = 1.0
ROTATE_AHEAD = 1.0  # a rotation asks for its keyframe this long before it is due


@dataclass(frozen=True)
class FileLayout:
    """What a file holds: its video codec ("vp8", "h264" or None) with the keyframe it starts
    on, and whether it has Opus audio."""

    video: str | None
    keyframe: bytes
    audio: bool

    @property
    def extension(self) -> str:
        return "mp4" if self.video == "h264" else "webm"


@dataclass(frozen=True)
class FileOpened:
    layout: FileLayout
    width: int
    height: int


@dataclass(frozen=True)
class Sample:
    video: bool
    pts: float  # seconds from the file's start
    data: bytes
    keyframe: bool


@dataclass(frozen=True)
class FileClosed:
    reason: str
    duration: float


FileEvent = FileOpened | Sample | FileClosed


def egress_tracks() -> list[TrackSpec]:
    return [TrackSpec("0", AUDIO, [OPUS]), TrackSpec("1", VIDEO, [VP8, H264, H264_HIGH])]


class Recorder:
    """One stream's recording: a player of it, its tracks' receivers, and the open file's
    timeline (seconds from its first keyframe, by the publisher's Sender Reports)."""

    def __init__(self, router: Router, stream: str, now: float, segment: float = 0.0) -> None:
        self.stream = stream
        self.segment = segment
        self.session = PlainSession(
            PLAY, stream, egress_tracks(), ADDRESS, self._on_rtcp_out, now, rng=router.rng
        )
        self.session.local_send = self._on_rtp_out  # type: ignore[attr-defined]
        self.player: Player = router.add_player(stream, self.session)
        self.receivers = {AUDIO: TrackReceiver(AUDIO, 48000), VIDEO: TrackReceiver(VIDEO, 90000)}
        self._by_pt = {
            OPUS.payload_type: (AUDIO, "opus", False),
            VP8.payload_type: (VIDEO, "vp8", False),
            H264.payload_type: (VIDEO, "h264", False),
            H264_HIGH.payload_type: (VIDEO, "h264", False),
            VP8.rtx_payload_type: (VIDEO, "vp8", True),
            H264.rtx_payload_type: (VIDEO, "h264", True),
            H264_HIGH.rtx_payload_type: (VIDEO, "h264", True),
        }
        self._reports: dict[str, tuple[float, int]] = {}  # kind -> (NTP seconds, RTP time)
        self._held: list[tuple[Frame, float]] = []  # (frame, when it came out)
        self._anchors: dict[str, tuple[float, int]] = {}  # the open file's, per kind
        self._origin: float | None = None  # the open file's start, on the anchors' clock
        self._codec: str | None = None
        self._last_pts = 0.0
        self._keyframe_asked = -KEYFRAME_REQUEST_EVERY
        self._now = now
        self.events: list[FileEvent] = []
        self._source: tuple | None = None
        self.bad_packets = 0
        self.player.on_connected(now)

    # --- what the player sends: media, and its Sender Reports ----------------------------

    def _on_rtp_out(self, packet: bytes, addr: Address) -> None:
        """Called from inside the publisher's fan-out: it must never raise into it."""
        try:
            self._take(packet)
        except Exception:  # a bug here must cost this recording a packet, not the players
            self.bad_packets += 1

    def _take(self, packet: bytes) -> None:
        try:
            start, end = rtp.payload_bounds(packet)
        except rtp.RtpError:
            self.bad_packets += 1
            return
        known = self._by_pt.get(packet[1] & 0x7F)
        if known is None or start >= end:
            self.bad_packets += 1
            return
        kind, codec, is_rtx = known
        payload = bytes(packet[start:end])
        seq = packet[2] << 8 | packet[3]
        if is_rtx:
            if len(payload) < 3:
                self.bad_packets += 1
                return
            seq, payload = payload[0] << 8 | payload[1], payload[2:]
        timestamp = int.from_bytes(packet[4:8], "big")
        self.receivers[kind].push(seq, timestamp, bool(packet[1] & 0x80), payload, codec)

    def _on_rtcp_out(self, packet: bytes, addr: Address) -> None:
        try:
            items = rtp.split_rtcp(packet)
        except rtp.RtpError:
            return
        kinds = {t.ssrc: t.kind for t in self.player.tracks}
        for item in items:
            kind = kinds.get(item.ssrc)
            if item.packet_type != rtp.RTCP_SR or kind is None:
                continue
            try:
                ntp, rtp_time = rtp.parse_sender_info(item)
            except rtp.RtpError:
                continue
            last = self.receivers[kind]._last_ts
            self._reports[kind] = (ntp / (1 << 32), extend(rtp_time, last, 32))

    # --- the timeline ---------------------------------------------------------------------

    def tick(self, now: float) -> list[FileEvent]:
        """Ask for what is missing, take the frames completed, and say what to write."""
        self._now = now
        for kind, receiver in self.receivers.items():
            track = self._track(kind)
            lost = receiver.nacks(now)
            if lost and track is not None:
                self.player.on_rtcp(rtp.nack(self.session.rtcp_ssrc, track.ssrc, lost), now)
            for frame in receiver.poll(now):
                self._held.append((frame, now))
        if self.receivers[VIDEO].waiting_for_keyframe and self._has(VIDEO):
            self.request_keyframe(now)
        if len(self._held) > MAX_HELD_FRAMES:
            del self._held[: len(self._held) - MAX_HELD_FRAMES]
        self._place(now)
        events, self.events = self.events, []
        return events

    def request_keyframe(self, now: float) -> None:
        """A PLI to the player, as a viewer's would be (at most once a second)."""
        track = self._track(VIDEO)
        if track is None or now - self._keyframe_asked < KEYFRAME_REQUEST_EVERY:
            return
        self._keyframe_asked = now
        self.player.on_rtcp(rtp.pli(self.session.rtcp_ssrc, track.ssrc), now)

    def _track(self, kind: str) -> SubscriberTrack | None:
        return next((t for t in self.player.tracks if t.kind == kind), None)

    def _has(self, kind: str) -> bool:
        track = self._track(kind)
        return track is not None and track.source is not None

    def _place(self, now: float) -> None:
        """Frames held become samples once the file they go in is open."""
        while self._held and (self._origin is not None or self._open(now)):
            self._held = self._write_held(now)

    def _write_held(self, now: float) -> list[tuple[Frame, float]]:
        """Samples of the held frames, up to one that must start the next file (a codec
        change, a segment's end): that one and those after it are returned."""
        for index, (frame, _) in enumerate(self._held):
            video = frame.kind == VIDEO
            pts = self._pts(frame)
            due = self.segment > 0 and pts >= self.segment and (video or not self._has(VIDEO))
            changed = video and frame.codec != self._codec
            if changed or (due and frame.keyframe):
                self.close("codec change" if changed else "segment")
                return self._held[index:]
            if pts < 0:
                continue  # audio from before the file's first keyframe
            if self.segment > 0 and pts >= self.segment - ROTATE_AHEAD:
                self.request_keyframe(now)
            self._last_pts = max(self._last_pts, pts)
            self.events.append(Sample(video, pts, frame.data, frame.keyframe))
        return []

    def _open(self, now: float) -> bool:
        """Open a file on the first held keyframe (or audio frame, with no video) once every
        track has a Sender Report, or SYNC_WAIT passed; False while that has not come."""
        starter = VIDEO if self._has(VIDEO) else AUDIO
        held = self._held
        first = next((i for i, (f, _) in enumerate(held) if f.keyframe and f.kind == starter), None)
        if first is None:
            return False
        start, came = held[first]
        kinds = {f.kind for f, _ in held}
        if any(kind not in self._reports for kind in kinds) and now - came < SYNC_WAIT:
            return False
        self._held = [item for i, item in enumerate(held) if i >= first or item[0].kind != starter]
        for kind in kinds:
            sample, at = next(item for item in held if item[0].kind == kind)
            self._anchors[kind] = self._reports.get(kind) or (at, sample.timestamp)
        self._origin = 0.0
        self._origin = self._pts(start)
        video = start.codec if starter == VIDEO else None
        width, height = self._size(start) if video else (0, 0)
        self._codec = video
        self._last_pts = 0.0
        layout = FileLayout(video, start.data, AUDIO in kinds or self._has(AUDIO))
        self.events.append(FileOpened(layout, width, height))
        return True

    def _size(self, frame: Frame) -> tuple[int, int]:
        if frame.codec == "vp8":
            return vp8_size(frame.data) or (0, 0)
        sps = self.receivers[VIDEO].sps_pps[0]
        try:
            return h264_size(sps) if sps else (0, 0)
        except ValueError:
            return 0, 0

    def _pts(self, frame: Frame) -> float:
        """Seconds from the open file's start: its track's anchor, on the shared clock."""
        receiver = self.receivers[frame.kind]
        anchor = self._anchors.get(frame.kind)
        if anchor is None:  # a track that joined after the file opened: from now on
            anchor = self._anchors[frame.kind] = (self._now, frame.timestamp)
        wall, timestamp = anchor
        assert self._origin is not None
        return wall + (frame.timestamp - timestamp) / receiver.clock_rate - self._origin

    def follow_source(self) -> tuple | None:
        """What is recorded now: the live publisher, and per track its codec and SSRC (a
        simulcast layer's rid, which keeps its place while its SSRC may not); None while not
        live. A change from one to another ends the open file: a republish, a codec or an
        SSRC change starts the next."""
        publisher = self.player.stream.live_publisher()
        source = None
        if publisher is not None:
            layers = [t.source for t in self.player.tracks if t.source is not None]
            codecs = tuple((s.codec.name, s.rid or s.ssrc) for s in layers)  # type: ignore[attr-defined]
            source = (publisher.serial, codecs)
        if source != self._source:
            if self._source is not None:
                self.close("publisher changed" if source else "unpublished")
            self._source = source
        return source

    def close(self, reason: str) -> None:
        """End the open file, if any (a republish, a codec or SSRC change, a stop)."""
        if self._origin is None:
            return
        self.events.append(FileClosed(reason, self._last_pts))
        self._origin = None
        self._anchors = {}
        self._codec = None

    def stop(self, reason: str) -> list[FileEvent]:
        """End the recording: the open file, and the player."""
        self.close(reason)
        self.session.close(reason)
        events, self.events = self.events, []
        return events
