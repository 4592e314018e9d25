"""A playing session's media handler: its feedback (PLI, NACK, reports, transport-cc, REMB)
and the layer each of its simulcast tracks plays."""

from __future__ import annotations

from typing import Protocol

import pylibsrtp

from sfu.media import VIDEO
from sfu.protocol import fastpath
from sfu.protocol.bwe import BandwidthEstimator
from sfu.protocol.feedback_budget import FeedbackBudget
from sfu.protocol.probe import Probe, padding_packet, probe_rate
from sfu.protocol.remb import RembTotal
from sfu.protocol.simulcast import Choice, LayerPace, choose, ranked, remb_choice
from sfu.protocol.twcc import FMT_TRANSPORT_CC, feedback_range, parse_feedback
from sfu.routing.context import HandlerContext
from sfu.routing.publisher import Publisher
from sfu.routing.publisher_track import PublisherTrack
from sfu.routing.rewrite import extend_for_player
from sfu.routing.stats import PlayerStats, next_serial
from sfu.routing.stream_layers import adapt_svc, is_svc, limit_vp8_temporal
from sfu.routing.subscriber_track import (
    MAX_NACKED_PER_RTCP,
    MAX_RESENDS_PER_RTCP,
    Source,
    SubscriberTrack,
)
from sfu.session.peer import PeerSession
from sfu.session.transport import Transport
from sfu.wire import rtp


class PlayerStream(Protocol):
    """What a player uses of its stream (a stream.Stream, which imports this module): the
    live publisher, and the calls that link the player in and out."""

    def live_publisher(self) -> Publisher | None: ...
    def player_ready(self, player: Player, now: float) -> None: ...
    def player_gone(self, player: Player) -> None: ...


class Player:
    """The media handler of a playing session."""

    def __init__(self, context: HandlerContext, stream: PlayerStream, session: Transport) -> None:
        self.context = context
        self.stream = stream
        self.session = session
        self.serial = next_serial()
        self.tracks = [SubscriberTrack(session, spec, context.rng) for spec in session.peer.tracks]
        self.by_ssrc = {t.ssrc: t for t in self.tracks}
        self.remb: int | None = None
        self.remb_total = RembTotal()  # the REMBs of its streams, summed
        self.transport_feedback = 0
        self.bwe = BandwidthEstimator()
        self.pace = LayerPace()
        self.probe: Probe | None = None  # padding sent before an automatic move up
        self._probing: tuple[SubscriberTrack, Source] | None = None  # the move it tests
        self.probes = 0
        self.failed_probes = 0
        self.probe_packets = 0
        self.probe_bytes = 0
        # For the datagram being handled: resends and NACKed numbers read it has left.
        self._resends_left = self._nacked_left = 0
        self.feedback_budget = FeedbackBudget()  # transport-cc statuses decoded
        # kind -> the stream's codec this player did not offer (it joined before the publisher)
        self.codec_mismatch: dict[str, str] = {}

    def first_layer(self, group: list[PublisherTrack], sink: SubscriberTrack) -> PublisherTrack:
        """The layer a track starts on: its choice among those heard from, else the pinned
        rid, else the first offered (adapt() moves it once layers have been measured)."""
        if len(group) == 1:
            return group[0]
        chosen = choose(group, sink.choice, self.estimate())
        if chosen is None and sink.choice.rid is not None:
            chosen = next((layer for layer in group if layer.rid == sink.choice.rid), None)
        return chosen or group[0]

    def estimate(self) -> float | None:
        """What this player's link carries, bits per second; None while unknown."""
        return self.bwe.estimate

    @property
    def adaptive(self) -> bool:
        """True when a track plays a simulcast or VP9 source: its estimate matters."""
        return any(
            t.source is not None and (len(t.source.layers) > 1 or is_svc(t)) for t in self.tracks
        )

    def note_sent(self, now: float) -> None:
        """Every feedback tick: a running probe's padding, then what was sent so far, the
        estimator's send-side clock."""
        if getattr(self.session, "transport_seq", None) is None:
            return
        if self.probe is not None:
            self._run_probe(self.probe, now)
        sent = sum(t.bytes for t in self.tracks) + self.probe_bytes
        self.bwe.note_sent(self.session.transport_seq, sent, now)

    def adapt(self, now: float) -> None:
        """Move each simulcast track towards the layer its choice and estimate allow: down at
        once, up only as LayerPace lets an automatic choice, and after a probe that shows
        the link carries the step when the player can be probed."""
        estimate = self.estimate()
        remb_only = estimate is not None and not self.bwe.feedback_used
        for track in self.tracks:
            source = track.source
            if is_svc(track):
                adapt_svc(track, estimate, self.pace, now)
            if source is None or len(source.layers) < 2:
                continue
            current = track.pending or source
            if remb_only and track.choice.auto:
                target = remb_choice(source.layers, track.choice, current, estimate)
            else:
                target = choose(source.layers, track.choice, estimate)
            limit_vp8_temporal(track, ranked(source.layers)[0], estimate)
            if target is None or target is current:
                continue
            order = ranked(source.layers)
            up = order.index(target) > order.index(current)
            if up and track.choice.auto:
                if self.probe is not None or not self.pace.allows_upgrade(now):
                    continue
                target = order[order.index(current) + 1]  # one step at a time
                if self._start_probe(track, current, target, now):
                    continue
            elif self._probing is not None and self._probing[0] is track:
                self._stop_probe(failed=not up, now=now)  # down: the link said no already
            track.switch_to(target, now)
            self.pace.changed(up, now)

    def _start_probe(
        self, track: SubscriberTrack, current: Source, target: Source, now: float
    ) -> bool:
        """Begin padding towards `target`'s bitrate; False when this player cannot be probed
        (no RTX, no transport-cc feedback, not playing yet): it steps up unprobed."""
        if not track.started or not self._can_pad(track):
            return False
        rate = probe_rate(target.bitrate, current.bitrate)
        if rate <= 0:
            return False
        self.probe = Probe(target.bitrate, rate, now, self.bwe.overuses)
        self._probing = (track, target)
        self.probes += 1
        return True

    def _can_pad(self, track: SubscriberTrack) -> bool:
        """Whether probe padding can go on `track`'s RTX stream and be measured: RTX and the
        transport-wide number negotiated, feedback coming, and keys to send with."""
        layout = track.extension_layout
        if track.rtx_payload_type is None or track.rtx_ssrc is None or track._protect is None:
            return False
        return layout is not None and bool(layout[3]) and self.bwe.feedback_used

    def _run_probe(self, probe: Probe, now: float) -> None:
        """Judge the probe on the feedback so far: act on it when it held, count a failure
        when it did not, else send the padding now due."""
        track = self._probe_track()
        if track is None:
            self._stop_probe(failed=False, now=now)  # what it tests went or changed: moot
            return
        bwe = self.bwe
        verdict = probe.verdict(now, bwe.overuses, bwe.estimate, bwe.delivered_rate(now))
        if verdict is None:
            self._send_padding(track, probe, now)
            return
        if verdict:
            self._probe_passed(probe, now)
        self._stop_probe(failed=not verdict, now=now)

    def _probe_track(self) -> SubscriberTrack | None:
        """The track the running probe pads on; None once the move it tests is moot."""
        assert self._probing is not None
        track, target = self._probing
        if track.source is None or target not in track.source.layers or not track.started:
            return None
        return track

    def _probe_passed(self, probe: Probe, now: float) -> None:
        """The link carries the step up: take it."""
        assert self._probing is not None
        track, target = self._probing
        track.switch_to(target, now)
        self.pace.changed(True, now)

    def _probe_failed(self, now: float) -> None:
        self.pace.probe_failed(now)

    def _stop_probe(self, *, failed: bool, now: float) -> None:
        self.probe = self._probing = None
        if failed:
            self.failed_probes += 1
            self._probe_failed(now)

    def _send_padding(self, track: SubscriberTrack, probe: Probe, now: float) -> None:
        """The padding-only RTX packets due, each with the next transport-wide number."""
        session, source = self.session, track.source
        addr, layout = session.addr, track.extension_layout
        pt, rtx_ssrc = track.rtx_payload_type, track.rtx_ssrc
        if addr is None or layout is None or pt is None or rtx_ssrc is None:
            return
        if track._protect is None or track._sendto is None:
            return
        # That of the last media sent; a paused room slot's has none, and RTX padding needs none.
        timestamp = (source.last_ts + track.ts_offset) & 0xFFFFFFFF if source is not None else 0
        overhead = len(extend_for_player(padding_packet(pt, 0, 0, 0, 1), layout, now)[0]) - 1
        for padding in probe.paddings(now, overhead):
            plain = padding_packet(pt, track.rtx_seq, timestamp, rtx_ssrc, padding)
            packet, transport_seq_at = extend_for_player(plain, layout, now)
            transport_seq = session.transport_seq
            packet[transport_seq_at : transport_seq_at + 2] = transport_seq.to_bytes(2, "big")
            session.transport_seq = (transport_seq + 1) & 0xFFFF
            track.rtx_seq = (track.rtx_seq + 1) & 0xFFFF
            self.probe_packets += 1
            self.probe_bytes += len(packet)
            try:
                track._sendto(track._protect(packet), addr)
            except (OSError, pylibsrtp.Error):
                self.context.sessions.drops["probe_send"] += 1
                return

    def set_choice(self, choice: Choice, mid: str | None, now: float) -> None:
        """A player's layer wish for its video track `mid` (None: every video track);
        LookupError for a mid it does not have or a rid the live publisher does not send."""
        tracks = [t for t in self.tracks if t.kind == VIDEO and mid in (None, t.spec.mid)]
        if not tracks:
            raise LookupError(f"no video track with mediaId {mid!r}")
        publisher = self.stream.live_publisher()
        if choice.rid is not None and publisher is not None:
            rids = {t.rid for t in publisher.tracks if t.kind == VIDEO}
            if choice.rid not in rids:
                raise LookupError(f"the stream sends no layer with rid {choice.rid!r}")
        svc_wish = (choice.spatial, choice.temporal, choice.max_spatial, choice.max_temporal)
        sends_svc = publisher is None or any(
            t.payload_rule == fastpath.PAYLOAD_VP9_SVC for t in publisher.tracks
        )
        if any(v is not None for v in svc_wish) and not sends_svc:
            raise LookupError("the stream sends no SVC layers (it is not VP9)")
        for track in tracks:
            track.choice = choice
        self.adapt(now)

    def ssrcs(self) -> dict[str, tuple[int, int | None]]:
        """mid -> (media SSRC, RTX SSRC) that the answer announces."""
        return {t.spec.mid: (t.ssrc, t.rtx_ssrc) for t in self.tracks}

    def on_connected(self, now: float) -> None:
        self.stream.player_ready(self, now)

    def ssrc_slot(self, packet: bytes, now: float) -> None:
        """Players send no media we carry: none of their SSRCs is decrypted or given a stream."""
        self.context.sessions.drops["rtp_from_player"] += 1

    def on_rtp(self, packet: bytes, now: float) -> None:
        """Players send no media we carry."""

    def on_rtcp(self, packet: bytes, now: float) -> None:
        """Players' feedback: PLI/FIR go to the publisher, NACKs are answered from the cache,
        reports and REMB feed the stats."""
        try:
            packets = rtp.split_rtcp(packet)
        except rtp.TooManyRtcpPackets:
            self.context.sessions.drops["rtcp_packets"] += 1
            return
        except rtp.RtpError:
            self.context.sessions.drops["bad_rtcp"] += 1
            return
        self._resends_left, self._nacked_left = MAX_RESENDS_PER_RTCP, MAX_NACKED_PER_RTCP
        self.feedback_budget.start_datagram(now)
        for item in packets:
            try:
                self._on_feedback(item, now)
            except rtp.RtpError:
                continue

    def _on_feedback(self, item: rtp.RtcpPacket, now: float) -> None:
        kind = item.packet_type
        if kind == rtp.RTCP_PSFB:
            if item.fmt == rtp.FMT_PLI:
                targets = [rtp.feedback_media_ssrc(item)]
            elif item.fmt == rtp.FMT_FIR:
                targets = rtp.fir_targets(item)
            else:
                bitrate = rtp.remb_bitrate(item)
                if bitrate:
                    self.remb = self.remb_total.update(bitrate, rtp.remb_ssrcs(item), self.by_ssrc)
                self.bwe.remb = float(self.remb) if self.remb else None
                return
            asked = []
            for ssrc in set(targets):  # an FIR may name one SSRC many times
                track = self.by_ssrc.get(ssrc)
                if track is not None and track.source is not None:
                    track.keyframe_requests += 1
                    track.source.request_keyframe(now)
                    asked.append(track)
            self.flush_requests(asked)  # the PLI goes out now, not at the next packet
        elif kind == rtp.RTCP_RTPFB and item.fmt == FMT_TRANSPORT_CC:
            self.transport_feedback += 1
            if self.adaptive:
                self._on_transport_feedback(item.body, now)
        elif kind == rtp.RTCP_RTPFB and item.fmt == rtp.FMT_NACK:
            track = self.by_ssrc.get(rtp.feedback_media_ssrc(item))
            if track is not None:
                self._on_nack(track, item, now)
        elif kind in (rtp.RTCP_RR, rtp.RTCP_SR):
            for block in rtp.report_blocks(item):
                track = self.by_ssrc.get(block.ssrc)
                if track is not None:
                    track.on_report_block(block, now)

    def flush_requests(self, asked: list[SubscriberTrack]) -> None:
        """Send the keyframe requests the tracks `asked` just made: a player's all go to its
        stream's live publisher (a room subscriber's slots each to their own)."""
        publisher = self.stream.live_publisher()
        if publisher is not None:
            publisher.flush()

    def _on_transport_feedback(self, body: bytes, now: float) -> None:
        """Feed the estimator the statuses it can use (packets sent to this player and not
        reported yet), decoding no more than the feedback budget grants; count the rest."""
        drops = self.context.sessions.drops
        try:
            base, count = feedback_range(body)
        except rtp.RtpError:
            drops["bad_transport_feedback"] += 1
            return
        skip, end = self.bwe.usable(base, count, self.session.transport_seq)
        if end - skip < count:
            drops["transport_feedback_unusable"] += count - (end - skip)
        granted = self.feedback_budget.take(end)  # decoding reaches status end - 1
        if granted < end:
            drops["transport_feedback_budget"] += end - max(skip, granted)
        if granted <= skip:
            return
        try:
            first, arrivals = parse_feedback(body, skip, granted)
        except rtp.RtpError:
            drops["bad_transport_feedback"] += 1
            return
        self.bwe.on_feedback(first, arrivals, now)

    def _on_nack(self, track: SubscriberTrack, item: rtp.RtcpPacket, now: float) -> None:
        """Resend what a NACK asks for within the datagram's budgets (numbers read, resends)
        and the track's own; count what is refused."""
        limit = self._nacked_left
        numbers = rtp.nack_sequence_numbers(item, limit)
        self._nacked_left -= len(numbers)
        unread = rtp.nack_count(item) - limit if len(numbers) == limit else 0
        dropped_before = track.nack_budget_drops
        resent = track.retransmit(numbers, now, self._resends_left, unread)
        self._resends_left -= resent
        self.context.sessions.media_datagrams_out += resent
        dropped = track.nack_budget_drops - dropped_before
        if dropped:
            self.context.sessions.drops["nack_budget"] += dropped

    def send_reports(self, now: float) -> None:
        """Sender Reports for every started track, in compound packets of at most
        rtp.MAX_RTCP_PACKETS (what the server reads of one): a room subscriber's 64 or more
        slots made one compound longer than SRTP could protect in a datagram."""
        reports = [r for r in (t.sender_report(now) for t in self.tracks) if r is not None]
        for first in range(0, len(reports), rtp.MAX_RTCP_PACKETS):
            self.session.send_rtcp(b"".join(reports[first : first + rtp.MAX_RTCP_PACKETS]))

    def stats(self) -> PlayerStats:
        session = self.session
        return PlayerStats(
            serial=self.serial,
            relay=not isinstance(session, PeerSession),
            state=session.state.value,
            transport=session.transport,
            codec_mismatch=dict(self.codec_mismatch),
            remb=self.remb,
            estimate=self.estimate(),
            congestion=self.bwe.state,
            overuses=self.bwe.overuses,
            transport_feedback=self.transport_feedback,
            probes=self.probes,
            failed_probes=self.failed_probes,
            probe_packets=self.probe_packets,
            probe_bytes=self.probe_bytes,
            srtp_errors=session.srtp_errors,
            tracks=tuple(t.stats() for t in self.tracks),
        )

    def on_moved(self) -> None:
        """The peer's address changed while playing: its tracks send the way the new address
        takes (the other IP family's socket, or a TCP connection)."""
        sendto = self.context.sendto_for(self.session)
        for track in self.tracks:
            if track.source is not None:
                track.rebind(sendto)

    def on_closed(self) -> None:
        self.stream.player_gone(self)
