"""Streams, their publisher and players: who feeds whom, and the RTCP that keeps them healthy.

The router owns the sessions; signaling asks it to publish, play and close, and the UDP endpoint
hands it packets through each session's media handler (a Publisher or a Player here).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sfu import rtp
from sfu.bwe import BandwidthEstimator
from sfu.config import MediaConfig
from sfu.dtls import Certificate
from sfu.media import VIDEO, PeerParams
from sfu.session import Address, PeerSession, SendFunction, SessionState, SessionTable
from sfu.simulcast import TEMPORAL_BACK, Choice, LayerPace, choose, ranked, remb_choice
from sfu.tracks import MAX_RESENDS_PER_RTCP, PublisherTrack, SubscriberTrack
from sfu.twcc import FMT_TRANSPORT_CC, TwccRecorder, parse_feedback

log = logging.getLogger(__name__)

PUBLISH = "publish"
PLAY = "play"


@dataclass(frozen=True)
class EndedSession:
    """What is kept of a session after it ends, so a late DELETE is answered, not refused."""

    stream: str
    role: str
    reason: str


# Ended sessions remembered for late DELETEs: the newest this many.
ENDED_REMEMBERED = 4096


class StreamBusy(Exception):
    """The stream already has a live publisher."""


class Publisher:
    """The media handler of a publishing session: forwards its RTP, gives it RTCP feedback."""

    def __init__(self, router: Router, stream: Stream, session: PeerSession) -> None:
        self.router = router
        self.stream = stream
        self.session = session
        interval = router.config.keyframe_interval
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
        self.by_pt: dict[int, PublisherTrack] = {}
        for group in self.groups:
            self.by_pt.setdefault(group[0].codec.payload_type, group[0])
        # RID header extension ID per simulcast m-line's payload type.
        self.rid_ids: dict[int, int] = {
            group[0].codec.payload_type: ext_id
            for group in self.groups
            for ext_id, uri in group[0].spec.extensions.items()
            if group[0].rid is not None and uri == rtp.RID_URI
        }
        self.unknown_packets = 0
        self.unknown_rid_packets = 0  # simulcast packets with no RID or one never offered
        for track in self.tracks:
            track.send_pli = self._send_pli
            track.send_nack = self._send_nack
        twcc_ids = {
            ext_id
            for spec in session.peer.tracks
            for ext_id, uri in spec.extensions.items()
            if uri == rtp.TRANSPORT_CC_URI and any("transport-cc" in c.rtcp_fb for c in spec.codecs)
        }
        self.twcc_id = min(twcc_ids) if twcc_ids else 0
        self.twcc = TwccRecorder() if self.twcc_id else None

    def _send_pli(self, media_ssrc: int) -> None:
        self.session.send_rtcp(rtp.pli(self.session.rtcp_ssrc, media_ssrc))

    def _send_nack(self, media_ssrc: int, sequence_numbers: list[int]) -> None:
        self.session.send_rtcp(rtp.nack(self.session.rtcp_ssrc, media_ssrc, sequence_numbers))

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
        track.forward(packet, now)

    def _learn_ssrc(self, packet: bytes, ssrc: int, now: float) -> PublisherTrack | None:
        """Map an undeclared SSRC to its track by payload type (one codec per m-line), and to
        its layer by the RID extension on a simulcast m-line."""
        pt = packet[1] & 0x7F
        track = self.by_pt.get(pt)
        if track is None or len(self.by_ssrc) >= 4 * len(self.tracks):
            self.unknown_packets += 1
            return None
        if track.rid is not None:
            track = self._layer_by_rid(packet, track)
            if track is None:
                self.unknown_rid_packets += 1
                self.router.sessions.drops["unknown_rid"] += 1
                return None
        if track.ssrc is not None:
            # The publisher restarted this track with a new SSRC: players resync on a keyframe.
            log.info("stream %s: %s SSRC changed to %d", self.stream.name, track.kind, ssrc)
            self.by_ssrc.pop(track.ssrc, None)
            for sub in list(track.subscribers):
                codec = sub.codec_for(track.codec)
                sub.detach()
                if codec is not None:
                    sub.attach(track, codec, self.router.sendto_for(sub.session))
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
        """Sender Reports give the NTP/RTP mapping passed on to players and our LSR."""
        try:
            for item in rtp.split_rtcp(packet):
                if item.packet_type == rtp.RTCP_SR:
                    track = self.by_ssrc.get(item.ssrc)
                    if track is not None:
                        ntp, rtp_timestamp = rtp.parse_sender_info(item)
                        track.on_sender_report(ntp, rtp_timestamp, now)
        except rtp.RtpError:
            return

    def send_feedback(self, now: float) -> None:
        """Frequent feedback: transport-wide CC, and NACK retries the packet flow did not send."""
        if self.twcc is not None:
            media_ssrc = next((t.ssrc for t in self.tracks if t.ssrc is not None), 0)
            feedback = self.twcc.build(self.session.rtcp_ssrc, media_ssrc)
            if feedback is not None:
                self.session.send_rtcp(feedback)
        for track in self.tracks:
            if track.missing is not None and len(track.missing):
                track.send_due_nacks(now)

    def send_reports(self, now: float) -> None:
        """Receiver Reports, once a second, with the loss and jitter we really saw."""
        blocks = [b for b in (t.report_block(now) for t in self.tracks) if b is not None]
        if blocks:
            self.session.send_rtcp(rtp.receiver_report(self.session.rtcp_ssrc, blocks))

    def snapshot(self) -> dict:
        return {
            "transport": self.session.transport,
            "srtp_errors": self.session.srtp_errors,
            "unknown_ssrc_packets": self.unknown_packets,
            "unknown_rid_packets": self.unknown_rid_packets,
            "transport_feedback_sent": self.twcc.feedback_sent if self.twcc else 0,
        }

    def on_moved(self) -> None:
        """Feedback goes through the session's own send, which follows its address."""

    def on_closed(self) -> None:
        self.stream.publisher_gone(self)


class Player:
    """The media handler of a playing session."""

    def __init__(self, router: Router, stream: Stream, session: PeerSession) -> None:
        self.router = router
        self.stream = stream
        self.session = session
        self.tracks = [SubscriberTrack(session, spec) for spec in session.peer.tracks]
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
                self._resends_left -= track.retransmit(
                    rtp.nack_sequence_numbers(item), now, self._resends_left
                )
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

    def snapshot(self) -> dict:
        session = self.session
        return {
            # No session id: the id is the capability to end or restart the session.
            "relay": not isinstance(session, PeerSession),
            "state": session.state.value,
            "transport": session.transport,
            "codec_mismatch": self.codec_mismatch,
            "remb": self.remb,
            "estimate": round(e) if (e := self.estimate()) is not None else None,
            "congestion": self.bwe.state,
            "overuses": self.bwe.overuses,
            "transport_feedback": self.transport_feedback,
            "srtp_errors": session.srtp_errors,
            "tracks": [t.snapshot() for t in self.tracks],
        }

    def on_moved(self) -> None:
        """The peer's address changed while playing: its tracks send the way the new address
        takes (the other IP family's socket, or a TCP connection)."""
        sendto = self.router.sendto_for(self.session)
        for track in self.tracks:
            if track.source is not None:
                track.rebind(sendto)

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
            groups = [g for g in publisher.groups if g[0].kind == kind]
            sinks = [t for t in player.tracks if t.kind == kind]
            for group, sink in zip(groups, sinks, strict=False):
                source = player.first_layer(group, sink)
                codec = sink.codec_for(source.codec)
                if codec is None:
                    log.warning(
                        "stream %s: player %s cannot receive %s; its %s track stays empty",
                        self.name,
                        player.session.id,
                        source.codec.name,
                        kind,
                    )
                    player.codec_mismatch[kind] = source.codec.name
                    continue
                player.codec_mismatch.pop(kind, None)
                sink.attach(source, codec, self.router.sendto_for(player.session))
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
            "publisher_relay": publisher is not None
            and not isinstance(publisher.session, PeerSession),
            "codecs": {t.kind: t.codec.name for t in publisher.tracks} if publisher else {},
            "players": len(self.players),
            "packets_in": packets_in,
            "bytes_in": bytes_in,
            "packets_out": packets_out,
            "bytes_out": bytes_out,
            "bitrate_in": round(self.rate_in),
            "bitrate_out": round(self.rate_out),
            "tracks": [t.snapshot() for t in publisher.tracks] if publisher else [],
            "publisher_details": publisher.snapshot() if publisher else None,
            "player_sessions": [p.snapshot() for p in self.players],
        }


class Router:
    """Owns sessions and streams; signaling calls publish/play/close, the endpoint feeds packets."""

    def __init__(
        self,
        config: MediaConfig,
        certificate: Certificate,
        send: SendFunction,
        sessions: SessionTable,
        sendto_for: Callable[[Address | None], SendFunction] | None = None,
    ) -> None:
        self.config = config
        self.certificate = certificate
        self.send = send
        # What forwarding to an address sends with: the endpoint's choice of the socket's own
        # sendto (the caller catches its OSError; the compiled fan-out uses its descriptor) or
        # a framing send for ICE-TCP; `send` for everything when there is no endpoint.
        self._sendto_for = sendto_for or (lambda addr: send)
        self.sessions = sessions
        self.streams: dict[str, Stream] = {}
        self.ended: OrderedDict[str, EndedSession] = OrderedDict()

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
        session.on_close = self._session_closed
        return session

    def _session_closed(self, session: PeerSession) -> None:
        self.sessions.remove(session)
        self.ended[session.id] = EndedSession(session.stream, session.role, session.close_reason)
        while len(self.ended) > ENDED_REMEMBERED:
            self.ended.popitem(last=False)

    def _free_stream(self, name: str) -> Stream:
        stream = self._stream(name)
        if stream.publisher is not None:
            raise StreamBusy(f"stream {name} already has a publisher")
        return stream

    def _set_publisher(self, stream: Stream, session: PeerSession) -> Publisher:
        stream.publisher = Publisher(self, stream, session)
        session.handler = stream.publisher
        return stream.publisher

    def sendto_for(self, session: PeerSession) -> SendFunction:
        """What forwards to a session at its current address (UDP of either family, or TCP)."""
        return self._sendto_for(session.addr)

    def publish(self, name: str, peer: PeerParams, now: float) -> PeerSession:
        """A new publishing session for stream `name`; StreamBusy if one is already there."""
        stream = self._free_stream(name)
        session = self._new_session(PUBLISH, name, peer, now)
        self._set_publisher(stream, session)
        return session

    def add_publisher(self, name: str, session: PeerSession) -> Publisher:
        """Make a session created elsewhere (a relay's) the publisher of `name`; StreamBusy if
        one is already there. The caller keeps the session out of the session table."""
        return self._set_publisher(self._free_stream(name), session)

    def play(self, name: str, peer: PeerParams, now: float) -> PeerSession:
        """A new playing session; it may come before the publisher does."""
        session = self._new_session(PLAY, name, peer, now)
        self.add_player(name, session)
        return session

    def add_player(self, name: str, session: PeerSession) -> Player:
        """Make a session a player of `name`: play() for real peers, relays for their own."""
        stream = self._stream(name)
        player = Player(self, stream, session)
        stream.players.add(player)
        session.handler = player
        return player

    def preferred_codecs(self, name: str) -> dict[str, str]:
        """kind -> codec name of the stream's current publisher, to put first in a player answer."""
        stream = self.streams.get(name)
        if stream is None or stream.publisher is None:
            return {}
        return {t.kind: t.codec.name for t in stream.publisher.tracks}

    def layer_rids(self, name: str) -> set[str] | None:
        """The rids the stream's live publisher sends; None when there is no live publisher."""
        stream = self.streams.get(name)
        publisher = stream.live_publisher() if stream is not None else None
        if publisher is None:
            return None
        return {t.rid for t in publisher.tracks if t.rid is not None}

    def set_layer(self, session_id: str, mid: str | None, choice: Choice, now: float) -> None:
        """A player's layer choice (the WHEP layer extension); KeyError for a session that is
        not a live player, LookupError for a mid or rid it cannot have."""
        session = self.sessions.by_id.get(session_id)
        player = session.handler if session is not None else None
        if not isinstance(player, Player):
            raise KeyError(session_id)
        player.set_choice(choice, mid, now)

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
        """Session timers: DTLS retransmission and consent timeouts."""
        timeout, pending_timeout = self.config.session_timeout, self.config.pending_timeout
        for session in list(self.sessions.by_id.values()):
            session.poll(now, timeout, pending_timeout)

    def send_feedback(self, now: float) -> None:
        """Every few tens of ms: transport-wide CC and NACK retries to publishers."""
        for stream in self.streams.values():
            publisher = stream.live_publisher()
            if publisher is not None:
                publisher.send_feedback(now)
                for player in stream.players:
                    if player.adaptive:
                        player.note_sent(now)

    def send_reports(self, now: float) -> None:
        """Once a second: RR to publishers, SR to players, keyframes for waiting players,
        bitrate samples."""
        for stream in list(self.streams.values()):
            stream.sample_rates(now)
            publisher = stream.live_publisher()
            if publisher is None:
                continue
            publisher.send_reports(now)
            for track in publisher.tracks:
                track.sample_bitrate(now)
                if track.switching or (track.subscribers and track.waiting_players()):
                    track.request_keyframe(now)
            for group in publisher.groups:
                group[:] = ranked(group)  # layers keep lowest first as bitrates change
            for player in stream.players:
                if player.session.state is SessionState.CONNECTED:
                    player.send_reports(now)
                    player.adapt(now)

    def resource_counts(self) -> dict[str, int]:
        """How much state the router holds, to spot leaks: all must return to zero when idle."""
        publishers = [s.publisher for s in self.streams.values() if s.publisher is not None]
        players = [p for s in self.streams.values() for p in s.players]
        return {
            "sessions": len(self.sessions),
            "bound_addresses": len(self.sessions.by_addr),
            "streams": len(self.streams),
            "publisher_tracks": sum(len(p.tracks) for p in publishers),
            "player_tracks": sum(len(p.tracks) for p in players),
            "media_packets_out": sum(s.counters()[2] for s in self.streams.values()),
        }

    def close_all(self, reason: str) -> None:
        for session in list(self.sessions.by_id.values()):
            session.close(reason)

    def snapshot(self) -> list[dict]:
        return [stream.snapshot() for stream in sorted(self.streams.values(), key=lambda s: s.name)]

    def session_state(self, session_id: str) -> str | None:
        """The state ("new", "connecting", "connected") of a live session; None once it ended."""
        session = self.sessions.by_id.get(session_id)
        return session.state.value if session is not None else None
