"""The publisher side of a track: one incoming RTP stream and the player tracks it feeds.

It forwards each packet (through the compiled fan-out, or the Python loop below for the
players that cannot take it), keeps packets for NACKs, and collects what its publisher must
be asked for (keyframes, retransmissions) until the publisher's handler sends it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfu import media
from sfu.media import VIDEO, Codec, TrackSpec
from sfu.protocol import fastpath
from sfu.protocol.keyframes import keyframe_detector
from sfu.protocol.receiver import MissingPackets, ReceptionStats
from sfu.protocol.simulcast import vp8_dimensions
from sfu.protocol.svc import ALL_LAYERS
from sfu.routing.fan_out import fan_out
from sfu.routing.rewrite import CACHE_MASK, CACHE_SIZE
from sfu.routing.stats import InTrackStats
from sfu.routing.subscriber_track import SubscriberTrack
from sfu.wire import red, rtp
from sfu.wire.vp9 import Vp9Descriptor, parse_vp9, vp9_sizes


@dataclass(frozen=True)
class KeyframeNeeded:
    """A keyframe is wanted of the publisher's stream `ssrc`: the publisher sends a PLI."""

    ssrc: int


@dataclass(frozen=True)
class NackNeeded:
    """Packets `seqs` of `ssrc` are missing and due to be asked for again: a NACK."""

    ssrc: int
    seqs: list[int]


TrackRequest = KeyframeNeeded | NackNeeded

# A player or room slot that starts (joins, resumes, takes another source) has its keyframe
# asked for at most this long after the last request, while a repair (a player's PLI or FIR,
# the once-a-second sweep for players still waiting, a layer switch) waits out the keyframe
# interval; either rides a request in flight whose keyframe is still to come. 0.3 s is the
# least libwebrtc's encoder (Chrome, Firefox) leaves between the requests it honours
# (kMinKeyframeSendIntervalMs): one asked sooner would be ignored, and the start would wait
# for the sweep.
START_GAP = 0.3


class PublisherTrack:
    """One incoming RTP stream: where its packets come from and which player tracks they go to.

    A simulcast m-line has one per layer, named by its rid; `layers` is that group, lowest
    first once measured (simulcast.ranked), and just this track for a single-layer m-line."""

    __slots__ = (
        "_bytes_at_sample",
        "_keyframe_interval",
        "bitrate",
        "bytes",
        "cache",
        "codec",
        "descriptor_drops",
        "height",
        "is_keyframe",
        "keyframe_awaited",
        "keyframe_due",
        "keyframe_for_start",
        "keyframe_pending",
        "keyframe_requested_at",
        "keyframe_requests",
        "keyframe_requests_coalesced",
        "kind",
        "last_seq",
        "last_time",
        "last_ts",
        "layers",
        "missing",
        "packets",
        "payload_rule",
        "reception",
        "red_drops",
        "red_payload_type",
        "requests",
        "rid",
        "send_failures",
        "sender_info",
        "sized",
        "spatial_bytes",
        "spatial_rates",
        "spatial_sizes",
        "spec",
        "ssrc",
        "subscribers",
        "switching",
        "vp8_layer",
        "width",
    )

    def __init__(self, spec: TrackSpec, keyframe_interval: float, rid: str | None = None) -> None:
        self.spec = spec
        self.kind = spec.kind
        self.codec: Codec = spec.codecs[0]
        self.rid = rid
        self.layers: list[PublisherTrack] = [self]
        self.ssrc: int | None = spec.ssrc
        self.width = 0  # from a VP8 keyframe of a simulcast layer; 0 while unknown
        # A VP8 simulcast layer: its players' picture IDs continue across switches, and its
        # size is learnt from a keyframe.
        self.vp8_layer = rid is not None and self.codec.name.lower() == "vp8"
        # VP9 goes through each player's SVC filter (one layer or many, simulcast or not).
        self.payload_rule = (
            fastpath.PAYLOAD_VP9_SVC
            if self.codec.name.lower() == "vp9"
            else fastpath.PAYLOAD_VP8_IDS
            if self.vp8_layer
            else fastpath.PAYLOAD_AS_IS
        )
        self.descriptor_drops = 0  # VP9 packets whose descriptor runs past their end
        # RED audio: the payload type of Opus in it (what players without RED get), and the
        # RED payloads unreadable to them.
        self.red_payload_type = media.red_primary(self.codec)
        self.red_drops = 0
        # Its picture size is learnt from keyframes: a VP8 simulcast layer's, and VP9's from
        # the scalability structure (the top spatial layer's).
        self.sized = self.vp8_layer or self.payload_rule == fastpath.PAYLOAD_VP9_SVC
        # VP9: bytes per spatial layer, then per report interval each layer's bitrate with
        # those below it (what a player of that layer gets), and the sizes keyframes told.
        self.spatial_bytes = [0] * (ALL_LAYERS + 1)
        self.spatial_rates: list[float] = []
        self.spatial_sizes: list[tuple[int, int]] = []
        self.height = 0
        self.bitrate = 0.0  # bits per second over the last report interval
        self._bytes_at_sample: tuple[float, int] | None = None
        # Players waiting for a keyframe of this layer to move here from another one.
        self.switching: list[SubscriberTrack] = []
        self.is_keyframe = keyframe_detector(self.codec.name)
        self.subscribers: list[SubscriberTrack] = []
        self.packets = 0
        self.bytes = 0
        self.last_seq = 0
        self.last_ts = 0
        self.last_time = 0.0
        self.keyframe_requested_at = -1e9
        self.keyframe_requests = 0  # PLIs sent
        # A keyframe asked for within the interval of the last request: it goes out when the
        # interval ends (send_due_keyframe_request), unless a keyframe comes first. Requests
        # served by it or by that keyframe, rather than by a PLI of their own, are counted.
        self.keyframe_pending = False
        self.keyframe_due = 0.0  # when the pending request may go out
        self.keyframe_for_start = False  # the pending request is a starting player's
        # A PLI sent for a starting player whose keyframe has not come: it is sent again
        # after START_GAP (a lost PLI, or one the encoder dropped), not at the sweep.
        self.keyframe_awaited = False
        self.keyframe_requests_coalesced = 0
        self.send_failures = 0  # full socket buffer or unreachable player: the packet is dropped
        self._keyframe_interval = keyframe_interval
        self.reception = ReceptionStats(self.codec.clock_rate)
        self.missing = MissingPackets() if "nack" in self.codec.rtcp_fb else None
        self.cache: list[bytes | None] | None = [None] * CACHE_SIZE if self.kind == VIDEO else None
        # (NTP time, RTP timestamp, arrival) of the publisher's last Sender Report.
        self.sender_info: tuple[int, int, float] | None = None
        # What to ask of the publisher (PLI, NACK), until its owner takes them: poll_requests.
        self.requests: list[TrackRequest] = []

    def poll_requests(self) -> list[TrackRequest]:
        """The keyframe and retransmission requests made since the last call, oldest first."""
        requests, self.requests = self.requests, []
        return requests

    def forward(self, packet: bytes, now: float) -> int:
        """The hot path: rewrite and send one plaintext RTP packet to every started player;
        returns how many it sent."""
        self.packets += 1
        self.bytes += len(packet)
        seq = packet[2] << 8 | packet[3]
        ts = int.from_bytes(packet[4:8], "big")
        skipped = self.reception.update(seq, ts, now)
        if skipped >= 0:  # the newest packet, where a player's next source must continue from
            self.last_seq = seq
            self.last_ts = ts
            self.last_time = now
        missing = self.missing
        if missing is not None:
            if skipped > 0:
                missing.on_gap((seq - skipped) & 0xFFFF, skipped, now)
            elif skipped < 0:
                missing.on_late_packet(seq, now)
            if missing.pending:
                self.send_due_nacks(now)
        if packet[0] & 0x10:
            try:
                rtp.header_length(packet)  # an extension block past the end: not forwarded
            except rtp.RtpError:
                return 0
        # Kept and handed on with the publisher's extensions, which players never get: the
        # fan-out writes each player's own in their place, and resends strip them (cached).
        if self.cache is not None:
            self.cache[seq & CACHE_MASK] = packet
        svc: Vp9Descriptor | None = None
        if self.payload_rule == fastpath.PAYLOAD_VP9_SVC:
            try:
                svc = parse_vp9(packet, rtp.header_length(packet))
            except rtp.RtpError:
                svc = None
            if svc is None:
                self.descriptor_drops += 1
                return 0
            self.spatial_bytes[svc.sid] += len(packet)
        if (
            self.switching
            or self.keyframe_pending
            or self.keyframe_awaited
            or (self.sized and not self.width)
        ):
            self._at_keyframe(packet, now)
        subscribers = self.subscribers
        if not subscribers:
            return 0
        if self.red_payload_type is not None:
            plain = [sub for sub in subscribers if sub.unwrap_red]
            if plain:  # players that did not ask for RED get its primary block alone
                sent = self._forward_unwrapped(packet, plain, seq, ts, now)
                subscribers = [sub for sub in subscribers if not sub.unwrap_red]
                return sent + fan_out(self, packet, subscribers, svc, seq, ts, now)
        return fan_out(self, packet, subscribers, svc, seq, ts, now)

    def _forward_unwrapped(
        self, packet: bytes, plain: list[SubscriberTrack], seq: int, ts: int, now: float
    ) -> int:
        """A RED packet's primary block to players that take plain Opus; an unreadable RED
        payload reaches none of them and is counted."""
        assert self.red_payload_type is not None
        try:
            start, end = rtp.payload_bounds(packet)
        except rtp.RtpError:
            start = end = 0
        unwrapped = red.unwrap(packet, start, end, self.red_payload_type) if end else None
        if unwrapped is None:
            self.red_drops += 1
            return 0
        return fan_out(self, unwrapped, plain, None, seq, ts, now)

    def _at_keyframe(self, packet: bytes, now: float) -> None:
        """At the first packet of a keyframe: learn the layer's size, move the players that
        wait to switch here (they start on this very packet, as waiting players do), and
        drop the pending request, which this keyframe answers. At any other packet, send the
        pending request if it is due (sooner than the next feedback tick)."""
        if not self.starts_keyframe(packet):
            if self.keyframe_pending or self.keyframe_awaited:
                self.send_due_keyframe_request(now)
            return
        self.keyframe_awaited = self.keyframe_for_start = False
        if self.keyframe_pending:
            self.keyframe_pending = False
            self.keyframe_requests_coalesced += 1
        name = self.codec.name.lower()
        if name == "vp8":
            size = vp8_dimensions(packet, rtp.payload_bounds(packet)[0])
            if size is not None:
                self.width, self.height = size
        elif name == "vp9":
            sizes = vp9_sizes(packet, rtp.payload_bounds(packet)[0])
            if sizes:
                self.width, self.height = sizes[-1]
                self.spatial_sizes = sizes
        switching, self.switching = self.switching, []
        for sub in switching:
            sub.move_to(self)

    def sample_bitrate(self, now: float) -> None:
        """Bits per second since the last sample (once per report interval)."""
        if self._bytes_at_sample is not None:
            then, before = self._bytes_at_sample
            if now > then:
                self.bitrate = 8 * (self.bytes - before) / (now - then)
                self._sample_spatial(now - then)
        self._bytes_at_sample = (now, self.bytes)

    def _sample_spatial(self, elapsed: float) -> None:
        """VP9: each spatial layer heard since the last sample, with those below it."""
        if self.payload_rule != fastpath.PAYLOAD_VP9_SVC:
            return
        counts = self.spatial_bytes
        heard = max((sid + 1 for sid, count in enumerate(counts) if count), default=0)
        self.spatial_rates = [8 * sum(counts[: sid + 1]) / elapsed for sid in range(heard)]
        self.spatial_bytes = [0] * len(counts)

    def send_due_nacks(self, now: float) -> None:
        """Ask again for the missing packets whose retry is due."""
        if self.missing is None or self.ssrc is None:
            return
        due = self.missing.due(now)
        if due:
            self.requests.append(NackNeeded(self.ssrc, due))

    def cached(self, seq: int) -> bytes | None:
        """The packet with this sequence number if it is still in the cache, without the
        publisher's header extensions."""
        if self.cache is None:
            return None
        packet = self.cache[seq & CACHE_MASK]
        if packet is None or (packet[2] << 8 | packet[3]) != seq:
            return None
        return rtp.strip_extensions(packet)

    def starts_keyframe(self, packet: bytes) -> bool:
        """Whether the packet begins a keyframe (audio: every packet does)."""
        try:
            start, end = rtp.payload_bounds(packet)
        except rtp.RtpError:
            return False
        return self.is_keyframe(packet[start:end])

    def request_keyframe(self, now: float, start: bool = False) -> None:
        """Ask the publisher for a keyframe (PLI), at most once per keyframe interval for a
        repair and once per START_GAP for a player that `start`s: a request made sooner
        waits for that gap's end, coalesced with any other made meanwhile, and is dropped
        if a keyframe comes first (it serves them all). So a new player waits for one
        request at most: the one in flight, or its own."""
        if self.kind != VIDEO or self.ssrc is None:
            return
        gap = min(START_GAP, self._keyframe_interval) if start else self._keyframe_interval
        due = self.keyframe_requested_at + gap
        if self.keyframe_pending:
            self.keyframe_requests_coalesced += 1
            self.keyframe_due = min(self.keyframe_due, due)
        else:
            self.keyframe_pending = True
            self.keyframe_due = due
        self.keyframe_for_start |= start
        self.send_due_keyframe_request(now)

    def send_due_keyframe_request(self, now: float) -> None:
        """Send the pending keyframe request once its gap since the last one is over (at
        once, at the track's next packet, or at the first feedback tick after); ask again,
        once per START_GAP, for a starting player whose keyframe has not come while players
        still wait."""
        if (
            self.keyframe_awaited
            and not self.keyframe_pending
            and now - self.keyframe_requested_at >= START_GAP
        ):
            self.keyframe_awaited = self.waiting_players()
            if self.keyframe_awaited:
                self.request_keyframe(now, start=True)
                return
        if self.keyframe_pending and self.ssrc is not None and now >= self.keyframe_due:
            self.keyframe_pending = False
            self.keyframe_awaited, self.keyframe_for_start = self.keyframe_for_start, False
            self.keyframe_requested_at = now
            self.keyframe_requests += 1
            self.requests.append(KeyframeNeeded(self.ssrc))

    def waiting_players(self) -> bool:
        return any(not sub.started for sub in self.subscribers)

    def on_sender_report(self, ntp: int, rtp_timestamp: int, now: float) -> None:
        self.reception.on_sender_report(ntp, now)
        self.sender_info = (ntp, rtp_timestamp, now)

    def report_block(self, now: float) -> rtp.ReportBlock | None:
        if self.ssrc is None or not self.reception.received:
            return None
        return self.reception.report_block(self.ssrc, now)

    def stats(self) -> InTrackStats:
        missing = self.missing
        return InTrackStats(
            kind=self.kind,
            codec=self.codec.name,
            ssrc=self.ssrc,
            rid=self.rid,
            width=self.width,
            height=self.height,
            bitrate=self.bitrate,
            packets=self.packets,
            bytes=self.bytes,
            packets_lost=max(0, self.reception.lost),
            jitter=self.reception.jitter / self.codec.clock_rate,
            nacks_sent=missing.nacks_sent if missing else 0,
            recovered=missing.recovered if missing else 0,
            rtt=missing.rtt if missing else None,
            plis_sent=self.keyframe_requests,
            send_failures=self.send_failures,
            subscribers=len(self.subscribers),
            payload_drops=self._payload_drops(),
        )

    def _payload_drops(self) -> dict[str, int]:
        if self.payload_rule == fastpath.PAYLOAD_VP9_SVC:
            return {"vp9_descriptor": self.descriptor_drops}
        return {"red": self.red_drops} if self.red_payload_type is not None else {}
