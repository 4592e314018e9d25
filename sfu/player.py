"""A playing session's media handler: its feedback (PLI, NACK, reports, transport-cc, REMB)
and the layer each of its simulcast tracks plays."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfu import rtp
from sfu.bwe import BandwidthEstimator
from sfu.media import VIDEO
from sfu.session import PeerSession, Transport
from sfu.simulcast import TEMPORAL_BACK, Choice, LayerPace, choose, ranked, remb_choice
from sfu.stats import PlayerStats, next_serial
from sfu.tracks import MAX_RESENDS_PER_RTCP, PublisherTrack, SubscriberTrack
from sfu.twcc import FMT_TRANSPORT_CC, parse_feedback

if TYPE_CHECKING:
    from sfu.router import Router
    from sfu.stream import Stream


class Player:
    """The media handler of a playing session."""

    def __init__(self, router: Router, stream: Stream, session: Transport) -> None:
        self.router = router
        self.stream = stream
        self.session = session
        self.serial = next_serial()
        self.tracks = [SubscriberTrack(session, spec, router.rng) for spec in session.peer.tracks]
        self.by_ssrc = {t.ssrc: t for t in self.tracks}
        self.remb: int | None = None
        self.transport_feedback = 0
        self.bwe = BandwidthEstimator()
        self.pace = LayerPace()
        self._resends_left = 0  # of MAX_RESENDS_PER_RTCP, for the datagram being handled
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
        """True when a track plays a simulcast source: its estimate matters."""
        return any(t.source is not None and len(t.source.layers) > 1 for t in self.tracks)

    def note_sent(self, now: float) -> None:
        """Every feedback tick: what was sent so far, the estimator's send-side clock."""
        transport_seq = getattr(self.session, "transport_seq", None)
        if transport_seq is not None:
            self.bwe.note_sent(transport_seq, sum(t.bytes for t in self.tracks), now)

    def adapt(self, now: float) -> None:
        """Move each simulcast track towards the layer its choice and estimate allow: down at
        once, up only as LayerPace lets an automatic choice."""
        estimate = self.estimate()
        remb_only = estimate is not None and not self.bwe.feedback_used
        for track in self.tracks:
            source = track.source
            if source is None or len(source.layers) < 2:
                continue
            current = track.pending or source
            if remb_only and track.choice.auto:
                target = remb_choice(source.layers, track.choice, current, estimate)
            else:
                target = choose(source.layers, track.choice, estimate)
            self._limit_temporal(track, ranked(source.layers)[0], estimate)
            if target is None or target is current:
                continue
            order = ranked(source.layers)
            up = order.index(target) > order.index(current)
            if up and track.choice.auto:
                if not self.pace.allows_upgrade(now):
                    continue
                target = order[order.index(current) + 1]  # one step at a time
            track.switch_to(target, now)
            self.pace.changed(up, now)

    def _limit_temporal(
        self, track: SubscriberTrack, lowest: PublisherTrack, estimate: float | None
    ) -> None:
        """On the lowest layer with an estimate below even its bitrate, keep only its base
        temporal layer (a lower frame rate); all frames again once there is clear room."""
        on_lowest = track.source is lowest and track.pending is None and track.choice.auto
        if on_lowest and estimate is not None and lowest.bitrate > estimate:
            track.limit_temporal(0)
        elif not on_lowest or estimate is None or estimate > TEMPORAL_BACK * lowest.bitrate:
            track.limit_temporal(None)

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
        for track in tracks:
            track.choice = choice
        self.adapt(now)

    def ssrcs(self) -> dict[str, tuple[int, int | None]]:
        """mid -> (media SSRC, RTX SSRC) that the answer announces."""
        return {t.spec.mid: (t.ssrc, t.rtx_ssrc) for t in self.tracks}

    def on_connected(self, now: float) -> None:
        self.stream.player_ready(self, now)

    def on_rtp(self, packet: bytes, now: float) -> None:
        """Players send no media we carry."""

    def on_rtcp(self, packet: bytes, now: float) -> None:
        """Players' feedback: PLI/FIR go to the publisher, NACKs are answered from the cache,
        reports and REMB feed the stats."""
        try:
            packets = rtp.split_rtcp(packet)
        except rtp.RtpError:
            return
        self._resends_left = MAX_RESENDS_PER_RTCP
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
                self.remb = rtp.remb_bitrate(item) or self.remb
                self.bwe.remb = float(self.remb) if self.remb else None
                return
            for ssrc in targets:
                track = self.by_ssrc.get(ssrc)
                if track is not None and track.source is not None:
                    track.keyframe_requests += 1
                    track.source.request_keyframe(now)
            publisher = self.stream.live_publisher()
            if publisher is not None:
                publisher.flush()  # the PLI goes out now, not at the next packet
        elif kind == rtp.RTCP_RTPFB and item.fmt == FMT_TRANSPORT_CC:
            self.transport_feedback += 1
            if self.adaptive:
                try:
                    base, arrivals = parse_feedback(item.body)
                except rtp.RtpError:
                    self.router.sessions.drops["bad_transport_feedback"] += 1
                    return
                self.bwe.on_feedback(base, arrivals, now)
        elif kind == rtp.RTCP_RTPFB and item.fmt == rtp.FMT_NACK:
            track = self.by_ssrc.get(rtp.feedback_media_ssrc(item))
            if track is not None:
                dropped_before = track.nack_budget_drops
                resent = track.retransmit(rtp.nack_sequence_numbers(item), now, self._resends_left)
                self._resends_left -= resent
                self.router.sessions.media_datagrams_out += resent
                dropped = track.nack_budget_drops - dropped_before
                if dropped:
                    self.router.sessions.drops["nack_budget"] += dropped
        elif kind in (rtp.RTCP_RR, rtp.RTCP_SR):
            for block in rtp.report_blocks(item):
                track = self.by_ssrc.get(block.ssrc)
                if track is not None:
                    track.on_report_block(block, now)

    def send_reports(self, now: float) -> None:
        """Sender Reports for every started track, in one compound packet."""
        reports = [r for r in (t.sender_report(now) for t in self.tracks) if r is not None]
        if reports:
            self.session.send_rtcp(b"".join(reports))

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
            srtp_errors=session.srtp_errors,
            tracks=tuple(t.stats() for t in self.tracks),
        )

    def on_moved(self) -> None:
        """The peer's address changed while playing: its tracks send the way the new address
        takes (the other IP family's socket, or a TCP connection)."""
        sendto = self.router.sendto_for(self.session)
        for track in self.tracks:
            if track.source is not None:
                track.rebind(sendto)

    def on_closed(self) -> None:
        self.stream.player_gone(self)
