"""Tracks: one incoming track of a publisher and each player's outgoing view of it.

Each player track has its own SSRC, payload type, sequence numbers and timestamps: the four
header fields are rewritten per player, so a player may join at any moment (it starts on a
keyframe) and a publisher may leave and come back without the player seeing more than a jump.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

import pylibsrtp

from sfu.media import VIDEO, Codec, TrackSpec
from sfu.protocol import fastpath, ice
from sfu.protocol.keyframes import keyframe_detector
from sfu.protocol.receiver import MissingPackets, ReceptionStats
from sfu.protocol.simulcast import Choice, Vp8Continuity, vp8_dimensions, vp8_ids
from sfu.routing.stats import InTrackStats, LayerState, OutTrackStats
from sfu.session.peer import SendFunction, Transport
from sfu.wire import rtp

# Marker+PT byte, sequence number, timestamp, SSRC: bytes 1..11 of the RTP header.
_REWRITE = struct.Struct("!BHII")
# Packets kept per video track for players' NACKs: over a second of video at 2.5 Mbps.
CACHE_SIZE = 1024
_CACHE_MASK = CACHE_SIZE - 1
# The retransmission budget of a player track, so NACKs cannot make us an amplifier: a token
# bucket filled with this share of the packets we send it (about 15% of its last second),
# holding at most this many; and a sequence number resent at most once per round trip, the
# measured one (above a floor) or a default until a Receiver Report gives one.
RESEND_SHARE = 0.15
RESEND_BURST = 24
RESEND_INTERVAL_FLOOR = 0.02
RESEND_INTERVAL_DEFAULT = 0.1
# At most this many retransmissions for one incoming RTCP datagram, across all its NACK items.
MAX_RESENDS_PER_RTCP = 32


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
        "height",
        "is_keyframe",
        "keyframe_requested_at",
        "keyframe_requests",
        "kind",
        "last_seq",
        "last_time",
        "last_ts",
        "layers",
        "missing",
        "packets",
        "reception",
        "requests",
        "rid",
        "send_failures",
        "sender_info",
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
        self.keyframe_requests = 0
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
            self.cache[seq & _CACHE_MASK] = packet
        if self.switching or (self.vp8_layer and not self.width):
            self._at_layer_keyframe(packet, now)
        subscribers = self.subscribers
        if not subscribers:
            return 0
        fanout = fastpath.fanout
        sent = 0
        if fanout is not None:
            sent, dropped, left = fanout(packet, subscribers, now, self.vp8_layer)
            self.send_failures += dropped
            if not left:
                return sent
            # Players still waiting for a keyframe, and any without a socket or SRTP sender
            # the extension can use, go through the loop below.
            subscribers = [sub for sub in subscribers if not sub.started or sub._fd < 0]
        packet = rtp.strip_extensions(packet)  # checked above; the loop starts from the bare one
        buf = bytearray(packet)
        marker = packet[1] & 0x80
        payload_start = 0
        if self.rid is not None:
            try:
                payload_start = rtp.header_length(packet)
            except rtp.RtpError:
                return sent
        ids = vp8_ids(packet, payload_start) if self.vp8_layer else None
        keyframe: bool | None = None
        pack_into = _REWRITE.pack_into
        # One copy with header extensions per extension layout, shared by the players using it.
        with_extensions: dict[tuple, tuple[bytearray, int]] | None = None
        for sub in subscribers:
            if not sub.started:
                if keyframe is None:
                    keyframe = self._starts_keyframe(packet)
                if not keyframe:
                    continue
                sub.start(seq, ts, now)
            if ids is not None:
                max_temporal = sub.max_temporal
                if max_temporal is not None and ids.tid > max_temporal:
                    sub.skip_packet(seq)
                    continue
            layout = sub.extension_layout
            if layout is None:
                target = buf
            else:
                if with_extensions is None:
                    with_extensions = {}
                entry = with_extensions.get(layout)
                if entry is None:
                    entry = with_extensions[layout] = extend_for_player(packet, layout, now)
                target, transport_seq_at = entry
                if transport_seq_at:
                    session = sub.session
                    transport_seq = session.transport_seq
                    session.transport_seq = (transport_seq + 1) & 0xFFFF
                    target[transport_seq_at] = transport_seq >> 8
                    target[transport_seq_at + 1] = transport_seq & 0xFF
            pack_into(
                target,
                1,
                marker | sub.payload_type,
                (seq + sub.seq_offset) & 0xFFFF,
                (ts + sub.ts_offset) & 0xFFFFFFFF,
                sub.ssrc,
            )
            if ids is not None:  # from the publisher's ids, as the buffer is shared
                sub.continue_ids(target, len(target) - len(packet), ids)
            # Sending is inlined: one Python frame less per packet and player is ~5% of a core.
            addr = sub.session.addr
            if addr is None:
                continue
            sub.packets += 1
            sub.bytes += len(target)
            try:
                sub._sendto(sub._protect(target), addr)
                sent += 1
            except (OSError, pylibsrtp.Error):
                self.send_failures += 1
        return sent

    def _at_layer_keyframe(self, packet: bytes, now: float) -> None:
        """At the first packet of a keyframe: learn the layer's size, and move the players
        that wait to switch here (they start on this very packet)."""
        if not self._starts_keyframe(packet):
            return
        if self.codec.name.lower() == "vp8":
            size = vp8_dimensions(packet, rtp.payload_bounds(packet)[0])
            if size is not None:
                self.width, self.height = size
        switching, self.switching = self.switching, []
        for sub in switching:
            sub.move_to(self)

    def sample_bitrate(self, now: float) -> None:
        """Bits per second since the last sample (once per report interval)."""
        if self._bytes_at_sample is not None:
            then, before = self._bytes_at_sample
            if now > then:
                self.bitrate = 8 * (self.bytes - before) / (now - then)
        self._bytes_at_sample = (now, self.bytes)

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
        packet = self.cache[seq & _CACHE_MASK]
        if packet is None or (packet[2] << 8 | packet[3]) != seq:
            return None
        return rtp.strip_extensions(packet)

    def _starts_keyframe(self, packet: bytes) -> bool:
        try:
            start, end = rtp.payload_bounds(packet)
        except rtp.RtpError:
            return False
        return self.is_keyframe(packet[start:end])

    def request_keyframe(self, now: float) -> None:
        """Ask the publisher for a keyframe (PLI), at most once per keyframe interval."""
        if self.kind != VIDEO or self.ssrc is None:
            return
        if now - self.keyframe_requested_at < self._keyframe_interval:
            return
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
        )


# (mid ID, mid value, abs-send-time ID, transport-wide-cc ID) as a player negotiated them.
ExtensionLayout = tuple[int, str, int, int]


def extension_layout(spec: TrackSpec) -> ExtensionLayout | None:
    """Which of the extensions the server writes this player agreed to, and with which IDs
    (one-byte form only: IDs 1-14); None when it agreed to none."""
    ids = {uri: ext_id for ext_id, uri in spec.extensions.items() if 1 <= ext_id <= 14}
    mid_id = ids.get(rtp.MID_URI, 0) if 0 < len(spec.mid.encode()) <= 16 else 0
    layout = (
        mid_id,
        spec.mid if mid_id else "",
        ids.get(rtp.ABS_SEND_TIME_URI, 0),
        ids.get(rtp.TRANSPORT_CC_URI, 0),
    )
    return layout if layout != (0, "", 0, 0) else None


def extend_for_player(packet: bytes, layout: ExtensionLayout, now: float) -> tuple[bytearray, int]:
    """The packet with the player's extensions; the offset of the transport-wide sequence
    number (0 if none), which differs per player session and is filled in per send."""
    mid_id, mid, abs_id, transport_id = layout
    elements = []
    if mid_id:
        elements.append((mid_id, mid.encode()))
    if abs_id:
        elements.append((abs_id, rtp.abs_send_time(now)))
    if transport_id:
        elements.append((transport_id, b"\x00\x00"))
    buf, offsets = rtp.add_extensions(packet, elements)
    return buf, offsets[-1] if transport_id else 0


class SubscriberTrack(Vp8Continuity, fastpath.PlayerState):
    """One outgoing track of a player, fed by at most one publisher track at a time.

    With the extension built, the fields the fan-out reads (ssrc, payload_type, offsets,
    VP8 continuity, temporal limit, started, counters, session, extension_layout) live flat
    in its C base; on the Python path they are slots of its own (fastpath.PLAYER_SLOTS)."""

    __slots__ = (
        *fastpath.PLAYER_SLOTS,
        "_last_sr",
        "_packets_at_refill",
        "_protect",
        "_resend_tokens",
        "_resent_at",
        "_resume",
        "_rng",
        "_sendto",
        "choice",
        "fraction_lost",
        "jitter",
        "keyframe_requests",
        "kind",
        "layer_switches",
        "nack_budget_drops",
        "nacks_received",
        "packets_lost",
        "pending",
        "retransmissions",
        "retransmit_misses",
        "rtt",
        "rtx_payload_type",
        "rtx_seq",
        "rtx_ssrc",
        "source",
        "spec",
    )

    def __init__(
        self, session: Transport, spec: TrackSpec, rng: random.Random = ice.SYSTEM_RANDOM
    ) -> None:
        self.session = session
        self.spec = spec
        self.kind = spec.kind
        self._rng = rng
        self.ssrc = rng.getrandbits(32) or 1
        has_rtx = any(c.rtx_payload_type is not None for c in spec.codecs)
        self.rtx_ssrc = (rng.getrandbits(32) or 1) if has_rtx else None
        self.extension_layout = extension_layout(spec)
        self.source: PublisherTrack | None = None
        self.choice = Choice()  # the player's layer wish when the source is simulcast
        self.pending: PublisherTrack | None = None  # the layer it moves to at its next keyframe
        self.layer_switches = 0
        self.temporal_drops = 0
        self.picture_offset = 0  # VP8 continuity (simulcast.Vp8Continuity)
        self.tl0_offset = 0
        self.vp8_after: tuple[int | None, int | None] | None = None
        # The highest VP8 temporal layer sent when even the lowest spatial one is too much.
        self.max_temporal: int | None = None
        self.payload_type = 0
        self.rtx_payload_type: int | None = None
        self.started = False
        self.seq_offset = 0
        self.ts_offset = 0
        self.first_out_seq = 0  # NACKs for numbers before this were sent from another source
        self.rtx_seq = rng.getrandbits(15)
        self.packets = 0
        self.bytes = 0
        self.nacks_received = 0
        self.retransmissions = 0
        self.retransmit_misses = 0
        self.nack_budget_drops = 0  # NACKed packets not resent: over budget, or resent already
        self._resend_tokens = float(RESEND_BURST)
        self._packets_at_refill = 0
        # Per out sequence number slot: (sequence number, when we last resent it).
        self._resent_at: list[tuple[int, float] | None] | None = None
        self.keyframe_requests = 0
        self.fraction_lost = 0.0
        self.packets_lost = 0
        self.jitter = 0
        self.rtt: float | None = None
        self._last_sr: tuple[int, float] | None = None  # (NTP middle 32 bits, sent at)
        # Where the next source continues: (next sequence number, last timestamp, at time).
        self._resume: tuple[int, int, float] | None = None
        self._protect: Callable[[bytes | bytearray], bytes] | None = None
        self._sendto: SendFunction | None = None  # the socket's own sendto: may raise OSError

    def codec_for(self, codec: Codec) -> Codec | None:
        """This player's codec for the publisher's codec, or None if it cannot take it."""
        name = codec.name.lower()
        candidates = [c for c in self.spec.codecs if c.name.lower() == name]
        if not candidates:
            return None
        if name == "h264":
            wanted = codec.fmtp_params.get("profile-level-id", "")[:2].lower()
            for candidate in candidates:
                profile = candidate.fmtp_params.get("profile-level-id", "")[:2].lower()
                if profile == wanted:
                    return candidate
        return candidates[0]

    def attach(self, source: PublisherTrack, codec: Codec, sendto: SendFunction) -> None:
        assert self.session.srtp is not None
        self.source = source
        self.payload_type = codec.payload_type
        self.rtx_payload_type = codec.rtx_payload_type if self.rtx_ssrc is not None else None
        self.started = False
        self._bind(sendto)
        source.subscribers.append(self)

    def _bind(self, sendto: SendFunction) -> None:
        """Send with `sendto` (on the compiled fan-out's socket when it can); SRTP state
        carries over."""
        self._protect = fastpath.bind(self, sendto)
        self._sendto = sendto

    def rebind(self, sendto: SendFunction) -> None:
        """Send the same stream another way (the session moved)."""
        self._bind(sendto)

    def limit_temporal(self, max_temporal: int | None) -> None:
        """Send only VP8 frames of temporal layer <= `max_temporal` (None: all), from a
        simulcast layer; the packets left out are renumbered away (skip_packet)."""
        self.max_temporal = max_temporal

    def skip_packet(self, seq: int) -> None:
        """Leave out packet `seq` of the current source: the numbers after it close the gap,
        and NACKs reach back no further (older numbers now mean other packets). The compiled
        fan-out does the same in C (skip_packet)."""
        self.seq_offset = (self.seq_offset - 1) & 0xFFFF
        self.first_out_seq = (seq + 1 + self.seq_offset) & 0xFFFF
        self.temporal_drops += 1

    def switch_to(self, layer: PublisherTrack, now: float) -> None:
        """Move to another layer of the same m-line at its next keyframe (asked for now);
        the current one keeps flowing until then, so the picture never breaks."""
        if self.pending is layer or (self.pending is None and layer is self.source):
            return
        self._cancel_switch()
        if layer is self.source:
            return
        self.pending = layer
        layer.switching.append(self)
        layer.request_keyframe(now)

    def _cancel_switch(self) -> None:
        if self.pending is not None:
            if self in self.pending.switching:
                self.pending.switching.remove(self)
            self.pending = None

    def move_to(self, layer: PublisherTrack) -> None:
        """At a keyframe of `layer`: leave the current one and start on that keyframe."""
        self.pending = None
        old = self.source
        codec = self.codec_for(layer.codec)
        if codec is None or self._sendto is None:
            return
        if old is not None and old.vp8_layer and self.started:
            last = old.cached(old.last_seq)
            self.leave_layer(vp8_ids(last, rtp.header_length(last)) if last is not None else None)
        self.detach()
        self.attach(layer, codec, self._sendto)
        self.layer_switches += 1

    def detach(self) -> None:
        """Leave the current source, remembering where the sequence and timestamps stood."""
        self._cancel_switch()
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
            next_seq = self._rng.getrandbits(15)
            next_ts = self._rng.getrandbits(31)
        else:
            next_seq, last_ts, at = self._resume
            clock_rate = self.source.codec.clock_rate if self.source else 90000
            next_ts = last_ts + max(1, int((now - at) * clock_rate))
        self.seq_offset = (next_seq - seq) & 0xFFFF
        self.ts_offset = (next_ts - ts) & 0xFFFFFFFF
        self.first_out_seq = next_seq
        self.started = True

    def retransmit(self, sequence_numbers: list[int], now: float, allowance: int) -> int:
        """Answer a player's NACK from the source's cache, as RTX when the player agreed to it,
        within the budget and at most `allowance` packets; returns how many were resent."""
        source = self.source
        self.nacks_received += 1
        if source is None or not self.started or self.session.addr is None:
            return 0
        self._refill()
        interval = (
            RESEND_INTERVAL_DEFAULT if self.rtt is None else max(RESEND_INTERVAL_FLOOR, self.rtt)
        )
        resent_at = self._resent_at
        if resent_at is None:
            resent_at = self._resent_at = [None] * CACHE_SIZE
        sent = 0
        for index, out_seq in enumerate(sequence_numbers):
            if sent >= allowance or self._resend_tokens < 1:
                self.nack_budget_drops += len(sequence_numbers) - index
                break
            slot = out_seq & _CACHE_MASK
            last = resent_at[slot]
            if last is not None and last[0] == out_seq and now - last[1] < interval:
                self.nack_budget_drops += 1  # already on its way: the NACK crossed it
                continue
            if self._resend(source, out_seq):
                resent_at[slot] = (out_seq, now)
                self._resend_tokens -= 1
                sent += 1
        return sent

    def _refill(self) -> None:
        """Earn resend tokens for the packets forwarded since the last NACK."""
        earned = (self.packets - self._packets_at_refill) * RESEND_SHARE
        self._packets_at_refill = self.packets
        self._resend_tokens = min(RESEND_BURST, self._resend_tokens + earned)

    def _resend(self, source: PublisherTrack, out_seq: int) -> bool:
        """Send one cached packet again; False when it is no longer there."""
        from_this_source = (out_seq - self.first_out_seq) & 0xFFFF < 0x8000
        packet = source.cached((out_seq - self.seq_offset) & 0xFFFF) if from_this_source else None
        if packet is None:
            self.retransmit_misses += 1
            return False
        ts = (int.from_bytes(packet[4:8], "big") + self.ts_offset) & 0xFFFFFFFF
        marker = packet[1] & 0x80
        if self.rtx_payload_type is None:
            buf = bytearray(packet)
            _REWRITE.pack_into(buf, 1, marker | self.payload_type, out_seq, ts, self.ssrc)
            vp8_at = rtp.header_length(packet)
        else:
            try:
                start, end = rtp.payload_bounds(packet)
            except rtp.RtpError:
                return False
            header = bytearray(packet[:start])
            header[0] &= 0xDF  # RTX carries no padding of the original
            _REWRITE.pack_into(
                header, 1, marker | self.rtx_payload_type, self.rtx_seq, ts, self.rtx_ssrc
            )
            self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
            buf = header + out_seq.to_bytes(2, "big") + packet[start:end]
            vp8_at = start + 2
        ids = vp8_ids(buf, vp8_at) if source.vp8_layer else None  # a copy of its own: in place
        if ids is not None:
            self.continue_ids(buf, 0, ids)
        self.retransmissions += 1
        try:
            self._sendto(self._protect(buf), self.session.addr)  # type: ignore[misc]
        except (OSError, pylibsrtp.Error):
            self.retransmit_misses += 1
        return True

    def sender_report(self, now: float) -> bytes | None:
        """An SR mapping our rewritten timestamps to the publisher's NTP clock, for A/V sync."""
        source = self.source
        if source is None or not self.started or source.sender_info is None:
            return None
        ntp, rtp_timestamp, received_at = source.sender_info
        elapsed = now - received_at
        ntp_now = ntp + int(elapsed * (1 << 32))
        rtp_now = rtp_timestamp + int(elapsed * source.codec.clock_rate) + self.ts_offset
        self._last_sr = ((ntp_now >> 16) & 0xFFFFFFFF, now)
        return rtp.sender_report(self.ssrc, ntp_now, rtp_now, self.packets, self.bytes)

    def on_report_block(self, block: rtp.ReportBlock, now: float) -> None:
        """What the player says of our stream: loss, jitter, and the round trip from LSR/DLSR."""
        self.fraction_lost = block.fraction_lost / 256
        self.packets_lost = block.cumulative_lost
        self.jitter = block.jitter
        if self._last_sr is not None and block.last_sr == self._last_sr[0]:
            self.rtt = max(0.0, now - self._last_sr[1] - block.delay_since_last_sr / 65536)

    def stats(self) -> OutTrackStats:
        clock_rate = self.spec.codecs[0].clock_rate if self.spec.codecs else 0
        return OutTrackStats(
            kind=self.kind,
            ssrc=self.ssrc,
            packets=self.packets,
            bytes=self.bytes,
            nacks_received=self.nacks_received,
            retransmissions=self.retransmissions,
            retransmit_misses=self.retransmit_misses,
            nack_budget_drops=self.nack_budget_drops,
            plis_received=self.keyframe_requests,
            fraction_lost=self.fraction_lost,
            packets_lost=self.packets_lost,
            rtt=self.rtt,
            started=self.started,
            jitter=self.jitter / clock_rate if self.started and clock_rate else None,
            layer=self._layer_state(),
        )

    def _layer_state(self) -> LayerState | None:
        """The current and target layer and the wish, for a track fed by a simulcast source."""
        source = self.source
        if source is None or source.rid is None:
            return None
        choice = self.choice
        return LayerState(
            layer=source.rid,
            target_layer=self.pending.rid if self.pending is not None else source.rid,
            choice=choice.rid or "auto",
            max_width=choice.max_width,
            max_height=choice.max_height,
            layer_switches=self.layer_switches,
            max_temporal=self.max_temporal,
            temporal_drops=self.temporal_drops,
        )
