"""The player side of a track: one outgoing track of a player, fed by one publisher track.

Each player track has its own SSRC, payload type, sequence numbers and timestamps: the four
header fields are rewritten per player, so a player may join at any moment (it starts on a
keyframe) and a publisher may leave and come back without the player seeing more than a jump.
It reads its source through the Source protocol, so publisher_track may import this module.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol

import pylibsrtp

from sfu.media import Codec, TrackSpec, best_receivable
from sfu.protocol import fastpath, ice
from sfu.protocol.simulcast import Choice, Layer, Vp8Continuity, vp8_ids
from sfu.protocol.svc import ALL_LAYERS, NOT_YET, SvcFilter
from sfu.routing.rewrite import CACHE_MASK, CACHE_SIZE, REWRITE, extension_layout
from sfu.routing.stats import LayerState, OutTrackStats
from sfu.session.transport import SendFunction, Transport
from sfu.wire import rtp
from sfu.wire.vp9 import parse_vp9

# The retransmission budget of a player track, so NACKs cannot make us an amplifier: a token
# bucket filled with this share of the packets we send it (about 15% of its last second),
# holding at most this many; and a sequence number resent at most once per round trip, the
# measured one (above a floor) or a default until a Receiver Report gives one.
RESEND_SHARE = 0.15
RESEND_BURST = 24
RESEND_INTERVAL_FLOOR = 0.02
RESEND_INTERVAL_DEFAULT = 0.1
# At most this many retransmissions for one incoming RTCP datagram, across all its NACK items,
# and this many sequence numbers looked at (a miss or a repeat costs a lookup, not a resend).
MAX_RESENDS_PER_RTCP = 32
MAX_NACKED_PER_RTCP = 128


class Source(Layer, Protocol):
    """What the player side (this module, and the Player choosing layers) reads of the
    publisher track it plays: a publisher_track.PublisherTrack."""

    codec: Codec
    vp8_layer: bool
    payload_rule: int
    last_seq: int
    last_ts: int
    last_time: float
    sender_info: tuple[int, int, float] | None
    subscribers: list[SubscriberTrack]
    switching: list[SubscriberTrack]

    @property
    def layers(self) -> Sequence[Source]: ...
    def cached(self, seq: int) -> bytes | None: ...
    def request_keyframe(self, now: float) -> None: ...


class SubscriberTrack(Vp8Continuity, SvcFilter, fastpath.PlayerState):
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
        "unwrap_red",
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
        self.source: Source | None = None
        self.choice = Choice()  # the player's layer wish when the source is simulcast
        self.pending: Source | None = None  # the layer it moves to at its next keyframe
        self.layer_switches = 0
        self.temporal_drops = 0
        self.picture_offset = 0  # VP8 continuity (simulcast.Vp8Continuity)
        self.tl0_offset = 0
        self.vp8_after: tuple[int | None, int | None] | None = None
        # The highest VP8 temporal layer sent when even the lowest spatial one is too much.
        self.max_temporal: int | None = None
        # VP9 SVC (svc.SvcFilter): the layers wanted, and those sent now.
        self.target_spatial = self.target_temporal = ALL_LAYERS
        self.current_spatial = self.current_temporal = NOT_YET
        self.svc_picture = -1
        self.payload_type = 0
        self.unwrap_red = False  # the source sends RED, this player takes plain Opus
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
        return best_receivable(codec, self.spec.codecs)

    def attach(self, source: Source, codec: Codec, sendto: SendFunction) -> None:
        assert self.session.srtp is not None
        self.source = source
        self.payload_type = codec.payload_type
        self.unwrap_red = source.codec.name.lower() == "red" != codec.name.lower()
        self.rtx_payload_type = codec.rtx_payload_type if self.rtx_ssrc is not None else None
        self.started = False
        self.current_spatial = self.current_temporal = NOT_YET  # until its first keyframe
        self.svc_picture = -1
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

    def switch_to(self, layer: Source, now: float) -> None:
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

    def move_to(self, layer: Source) -> None:
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

    def retransmit(
        self, sequence_numbers: list[int], now: float, allowance: int, unread: int = 0
    ) -> int:
        """Answer a player's NACK from the source's cache, as RTX when the player agreed to it,
        within the budget and at most `allowance` packets; returns how many were resent.
        `unread` more numbers were asked for past the datagram's reading budget: refused."""
        source = self.source
        self.nacks_received += 1
        self.nack_budget_drops += unread
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
            slot = out_seq & CACHE_MASK
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

    def _resend(self, source: Source, out_seq: int) -> bool:
        """Send one cached packet again; False when it is no longer there."""
        from_this_source = (out_seq - self.first_out_seq) & 0xFFFF < 0x8000
        packet = source.cached((out_seq - self.seq_offset) & 0xFFFF) if from_this_source else None
        if packet is None:
            self.retransmit_misses += 1
            return False
        ts = (int.from_bytes(packet[4:8], "big") + self.ts_offset) & 0xFFFFFFFF
        marker = packet[1] & 0x80 or self._svc_marker(source, packet)
        if self.rtx_payload_type is None:
            buf = bytearray(packet)
            REWRITE.pack_into(buf, 1, marker | self.payload_type, out_seq, ts, self.ssrc)
            vp8_at = rtp.header_length(packet)
        else:
            try:
                start, end = rtp.payload_bounds(packet)
            except rtp.RtpError:
                return False
            header = bytearray(packet[:start])
            header[0] &= 0xDF  # RTX carries no padding of the original
            REWRITE.pack_into(
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

    def _svc_marker(self, source: Source, packet: bytes) -> int:
        """0x80 when a resent VP9 packet ends the picture as this player now gets it, as
        the fan-out marked it when it went out at these layers."""
        if source.payload_rule != fastpath.PAYLOAD_VP9_SVC:
            return 0
        descriptor = parse_vp9(packet, rtp.header_length(packet))
        return 0x80 if descriptor is not None and self.svc_marker(descriptor) else 0

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
        """The current and target layers and the wish, for a simulcast or VP9 source."""
        source = self.source
        svc = source is not None and source.payload_rule == fastpath.PAYLOAD_VP9_SVC
        if source is None or (source.rid is None and not svc):
            return None
        choice, now, target = self.choice, self.current_spatial, self.target_spatial
        return LayerState(
            layer=source.rid or "",
            target_layer=(self.pending or source).rid or "",
            choice=choice.rid or "auto",
            max_width=choice.max_width,
            max_height=choice.max_height,
            layer_switches=self.layer_switches,
            max_temporal=self.max_temporal,
            temporal_drops=self.temporal_drops,
            svc=(now, self.current_temporal, target, self.target_temporal) if svc else None,
        )
