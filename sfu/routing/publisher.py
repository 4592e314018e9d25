"""A publishing session's media handler: its RTP goes out to the players, RTCP comes back."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from sfu.media import AUDIO
from sfu.protocol import fastpath
from sfu.protocol.twcc import TwccRecorder
from sfu.routing.context import HandlerContext
from sfu.routing.publisher_track import KeyframeNeeded, PublisherTrack
from sfu.routing.stats import Layer, PublisherStats, next_serial
from sfu.session.peer import PeerSession
from sfu.session.transport import Transport
from sfu.wire import rtp
from sfu.wire.audio_level import AUDIO_LEVEL_URI, audio_level

if TYPE_CHECKING:
    from sfu.routing.subscriber_track import SubscriberTrack

log = logging.getLogger(__name__)

# A layer takes a new SSRC only once its own has been silent this long: a browser that
# restarts a track stops the old SSRC as it starts the new one, while a publisher that sends
# packets under other SSRCs beside its own would otherwise take the layer over at each one.
SSRC_REPLACED_AFTER = 0.25


class PublisherStream(Protocol):
    """What a publisher uses of its stream (a stream.Stream, which imports this module): its
    name for the log, and the calls that link the publisher in and out."""

    name: str

    def publisher_ready(self, now: float) -> None: ...
    def publisher_gone(self, publisher: Publisher) -> None: ...
    def take_slot(self, slot: SubscriberTrack, previous: PublisherStream | None) -> None: ...
    def slot_left(self, slot: SubscriberTrack) -> None: ...


class Publisher:
    """The media handler of a publishing session: forwards its RTP, gives it RTCP feedback."""

    def __init__(
        self, context: HandlerContext, stream: PublisherStream, session: Transport
    ) -> None:
        self.context = context
        self.stream = stream
        self.session = session
        self.serial = next_serial()
        self._table = context.sessions  # where forwarded packets are counted
        interval = context.keyframe_interval
        # One group per m-line: its layers (one track unless the m-line is simulcast).
        self.groups: list[list[PublisherTrack]] = []
        for spec in session.peer.tracks:
            if spec.rids:
                group = [PublisherTrack(spec, interval, rid) for rid in spec.rids]
                for track in group:
                    track.layers = group
            else:
                group = [PublisherTrack(spec, interval)]
            self.groups.append(group)
        self.tracks = [track for group in self.groups for track in group]
        self.by_ssrc: dict[int, PublisherTrack] = {
            t.ssrc: t for t in self.tracks if t.ssrc is not None
        }
        # A new SSRC's m-line: by its MID header extension, else by payload type (one codec
        # per m-line; the first m-line with it when several share one).
        self.by_mid = {group[0].spec.mid: group for group in self.groups}
        self.by_pt: dict[int, list[PublisherTrack]] = {}
        for group in self.groups:
            self.by_pt.setdefault(group[0].codec.payload_type, group)
        self.mid_id = next(
            (i for t in self.tracks for i, uri in t.spec.extensions.items() if uri == rtp.MID_URI),
            0,
        )
        # RID header extension ID per simulcast m-line's payload type.
        self.rid_ids: dict[int, int] = {
            group[0].codec.payload_type: ext_id
            for group in self.groups
            for ext_id, uri in group[0].spec.extensions.items()
            if group[0].rid is not None and uri == rtp.RID_URI
        }
        self.unknown_packets = 0
        self.unknown_rid_packets = 0  # simulcast packets with no RID or one never offered
        twcc_ids = {
            ext_id
            for spec in session.peer.tracks
            for ext_id, uri in spec.extensions.items()
            if uri == rtp.TRANSPORT_CC_URI and any("transport-cc" in c.rtcp_fb for c in spec.codecs)
        }
        self.twcc_id = min(twcc_ids) if twcc_ids else 0
        self.twcc = TwccRecorder() if self.twcc_id else None
        # The RFC 6464 level of each audio packet (dBov, voice bit, arrival) goes here when
        # the publisher is in a room (its speaker detection) and negotiated the extension.
        self.audio_level_id = next(
            (
                i
                for t in self.tracks
                if t.kind == AUDIO
                for i, uri in t.spec.extensions.items()
                if uri == AUDIO_LEVEL_URI
            ),
            0,
        )
        self.on_audio_level: Callable[[int, bool, float], None] | None = None

    def send_requests(self, track: PublisherTrack) -> None:
        """Send what a track asks of the publisher: a PLI per keyframe, a NACK per retry."""
        rtcp_ssrc = self.session.rtcp_ssrc
        for request in track.poll_requests():
            if isinstance(request, KeyframeNeeded):
                self.session.send_rtcp(rtp.pli(rtcp_ssrc, request.ssrc))
            else:
                self.session.send_rtcp(rtp.nack(rtcp_ssrc, request.ssrc, request.seqs))

    def flush(self) -> None:
        """Send every track's requests now (keyframes asked for by players and the router)."""
        for track in self.tracks:
            if track.requests:
                self.send_requests(track)

    def on_connected(self, now: float) -> None:
        self.stream.publisher_ready(now)

    def on_rtp(self, packet: bytes, now: float) -> None:
        if self.twcc is not None:
            value = rtp.find_extension(packet, self.twcc_id)
            if value is not None and len(value) >= 2:
                self.twcc.record(value[0] << 8 | value[1], int(now * 1_000_000))
        ssrc = int.from_bytes(packet[8:12], "big")
        track = self.by_ssrc.get(ssrc)
        if track is None:
            track = self._learn_ssrc(packet, ssrc, now)
            if track is None:
                return
        if self.on_audio_level is not None and track.kind == AUDIO:
            level = audio_level(packet, self.audio_level_id)
            if level is not None:
                self.on_audio_level(level.dbov, level.voice, now)
        self._table.media_datagrams_out += track.forward(packet, now)
        if track.requests:
            self.send_requests(track)

    def ssrc_slot(self, packet: bytes, now: float) -> PublisherTrack | None:
        """The layer a packet's SSRC feeds or may start feeding, from its clear header: the
        session decrypts a packet of a new SSRC, and gives the SSRC a stream, only then."""
        track = self.by_ssrc.get(int.from_bytes(packet[8:12], "big"))
        return track if track is not None else self._vacant_layer(packet, now)

    def _vacant_layer(self, packet: bytes, now: float) -> PublisherTrack | None:
        """The layer a new SSRC may take: its m-line's by MID or payload type, by RID on a
        simulcast m-line, once the layer's own SSRC is silent; None, counted, if none."""
        pt = packet[1] & 0x7F
        mid = rtp.find_extension(packet, self.mid_id)
        if mid:
            group = self.by_mid.get(bytes(mid).decode("ascii", "replace"))
        else:
            group = self.by_pt.get(pt)
        track = group[0] if group is not None and group[0].codec.payload_type == pt else None
        if track is not None and track.rid is not None:
            track = self._layer_by_rid(packet, track)
            if track is None:
                self.unknown_rid_packets += 1
                self.context.sessions.drops["unknown_rid"] += 1
                return None
        if track is None or (
            track.ssrc is not None and now - track.last_time < SSRC_REPLACED_AFTER
        ):
            self.unknown_packets += 1
            self.context.sessions.drops["unknown_ssrc"] += 1
            return None
        return track

    def _learn_ssrc(self, packet: bytes, ssrc: int, now: float) -> PublisherTrack | None:
        """Take a new SSRC on the layer it may feed (_vacant_layer), replacing the old one."""
        track = self._vacant_layer(packet, now)
        if track is None:
            return None
        if track.ssrc is not None:
            # The publisher restarted this track with a new SSRC: players resync on a keyframe.
            log.info("stream %s: %s SSRC changed to %d", self.stream.name, track.kind, ssrc)
            self.by_ssrc.pop(track.ssrc, None)
            for sub in list(track.subscribers):
                codec = sub.codec_for(track.codec)
                sub.detach()
                if codec is not None:
                    sub.attach(track, codec, self.context.sendto_for(sub.session))
        track.ssrc = ssrc
        self.by_ssrc[ssrc] = track
        track.request_keyframe(now)
        return track

    def _layer_by_rid(self, packet: bytes, first: PublisherTrack) -> PublisherTrack | None:
        """The layer of `first`'s group whose rid the packet's RID extension names."""
        value = rtp.find_extension(packet, self.rid_ids.get(first.codec.payload_type, 0))
        if not value:
            return None
        rid = bytes(value).rstrip(b"\x00").decode("ascii", "replace")
        return next((layer for layer in first.layers if layer.rid == rid), None)

    def on_rtcp(self, packet: bytes, now: float) -> None:
        """Sender Reports give the NTP/RTP mapping passed on to players and our LSR; a
        datagram of more than rtp.MAX_RTCP_PACKETS items, or a malformed one, is counted."""
        try:
            for item in rtp.split_rtcp(packet):
                if item.packet_type == rtp.RTCP_SR:
                    track = self.by_ssrc.get(item.ssrc)
                    if track is not None:
                        ntp, rtp_timestamp = rtp.parse_sender_info(item)
                        track.on_sender_report(ntp, rtp_timestamp, now)
        except rtp.TooManyRtcpPackets:
            self.context.sessions.drops["rtcp_packets"] += 1
        except rtp.RtpError:
            self.context.sessions.drops["bad_rtcp"] += 1

    def send_feedback(self, now: float) -> None:
        """Frequent feedback: transport-wide CC, NACK retries the packet flow did not send,
        and keyframe requests that waited for their track's interval to end."""
        if self.twcc is not None:
            media_ssrc = next((t.ssrc for t in self.tracks if t.ssrc is not None), 0)
            feedback = self.twcc.build(self.session.rtcp_ssrc, media_ssrc)
            if feedback is not None:
                self.session.send_rtcp(feedback)
        for track in self.tracks:
            if track.missing is not None and track.missing.pending:
                track.send_due_nacks(now)
            if track.keyframe_pending or track.keyframe_awaited:
                track.send_due_keyframe_request(now)
        self.flush()

    def send_reports(self, now: float) -> None:
        """Receiver Reports, once a second, with the loss and jitter we really saw."""
        blocks = [b for b in (t.report_block(now) for t in self.tracks) if b is not None]
        if blocks:
            self.session.send_rtcp(rtp.receiver_report(self.session.rtcp_ssrc, blocks))

    def stats(self) -> PublisherStats:
        session = self.session
        return PublisherStats(
            serial=self.serial,
            state=session.state.value,
            relay=not isinstance(session, PeerSession),
            transport=session.transport,
            srtp_errors=session.srtp_errors,
            unknown_ssrc_packets=self.unknown_packets,
            unknown_rid_packets=self.unknown_rid_packets,
            transport_feedback_sent=self.twcc.feedback_sent if self.twcc else 0,
            tracks=tuple(t.stats() for t in self.tracks),
        )

    @property
    def layered(self) -> bool:
        """True when it sends layers players choose among: simulcast, or VP9 (SVC)."""
        return any(
            len(group) > 1 or group[0].payload_rule == fastpath.PAYLOAD_VP9_SVC
            for group in self.groups
        )

    def layers(self) -> tuple[Layer, ...]:
        """The layers it offers, in the order of its offer (m-lines, then rids, then a VP9
        stream's spatial layers): `tracks` keeps that order while each group is re-ranked
        by bitrate."""
        mlines = self.session.peer.tracks
        found = []
        for t in self.tracks:
            mline = mlines.index(t.spec)
            if t.rid is not None:
                found.append(Layer(mline, t.rid, t.width, t.height, t.bitrate, t.bitrate > 0))
            if t.payload_rule != fastpath.PAYLOAD_VP9_SVC or len(t.spatial_rates) < 2:
                continue
            for sid, rate in enumerate(t.spatial_rates):
                below = t.spatial_rates[sid - 1] if sid else 0.0
                width, height = t.spatial_sizes[sid] if sid < len(t.spatial_sizes) else (0, 0)
                found.append(Layer(mline, t.rid, width, height, rate - below, rate > below, sid))
        return tuple(found)

    def on_moved(self) -> None:
        """Feedback goes through the session's own send, which follows its address."""

    def on_closed(self) -> None:
        self.stream.publisher_gone(self)
