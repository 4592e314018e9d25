"""`GET /metrics`: the router's state in the Prometheus text format, read when scraped.

Nothing here runs on the media path: the collector reads the router's stream stats (frozen
values, sfu.routing.stats) at scrape time. Counts that the router keeps per live object (a stream's
packets, a track's NACKs) are turned into counters that never go backwards by remembering,
between scrapes, what objects that have since gone had reached. Session ids and client
addresses are never labels; stream names are, only for the first `--metrics-per-stream` streams.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sfu.io.server import MediaServer
from sfu.routing.router import PLAY, PUBLISH
from sfu.routing.stats import StreamStats
from signaling.observe.metrics import MAX_PER_STREAM, LoopLag, Totals, histogram

RTT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)  # seconds
LOSS_BUCKETS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)  # fraction of packets
JITTER_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1)  # seconds


class RouterCollector(Collector):
    """Reads one media server's router and endpoint each time Prometheus scrapes."""

    def __init__(self, media: MediaServer, lag: LoopLag, per_stream: int = 0) -> None:
        self.media = media
        self.lag = lag
        self.per_stream = min(max(0, per_stream), MAX_PER_STREAM)
        self.stream_totals = Totals(4)
        self.in_track_totals = Totals(3)
        self.out_track_totals = Totals(3)

    def collect(self) -> Iterator[Metric]:
        endpoint = self.media.endpoint
        streams = self.media.router.stream_stats()
        publishers = [s.publisher for s in streams if s.publisher is not None]
        players = [p for s in streams for p in s.players]
        peers = [h for h in (*publishers, *players) if not h.relay]

        sessions = GaugeMetricFamily(
            "litesfu_sessions", "Peer sessions by role and state", labels=["role", "state"]
        )
        by_kind: dict[tuple[str, str], int] = {}
        for role, handlers in ((PUBLISH, publishers), (PLAY, players)):
            for handler in handlers:
                if not handler.relay:
                    key = (role, handler.state)
                    by_kind[key] = by_kind.get(key, 0) + 1
        for (role, state), count in sorted(by_kind.items()):
            sessions.add_metric([role, state], count)
        yield sessions
        relays = GaugeMetricFamily(
            "litesfu_relay_sessions", "Loopback relays between workers", labels=["role"]
        )
        for role, handlers in ((PUBLISH, publishers), (PLAY, players)):
            relays.add_metric([role], sum(1 for h in handlers if h.relay))
        yield relays
        yield GaugeMetricFamily(
            "litesfu_streams", "Streams with a publisher or players", len(streams)
        )
        yield GaugeMetricFamily(
            "litesfu_streams_live",
            "Streams whose publisher sends media",
            len([s for s in streams if s.live]),
        )
        yield GaugeMetricFamily(
            "litesfu_players", "Players (relays left out)", sum(1 for p in players if not p.relay)
        )

        packets_in, bytes_in, packets_out, bytes_out = self.stream_totals.update(
            (s.serial, (s.packets_in, s.bytes_in, s.packets_out, s.bytes_out)) for s in streams
        )
        for name, doc, value in (
            ("litesfu_media_packets_in", "RTP packets received from publishers", packets_in),
            ("litesfu_media_bytes_in", "RTP bytes received from publishers", bytes_in),
            ("litesfu_media_packets_out", "RTP packets forwarded to players", packets_out),
            ("litesfu_media_bytes_out", "RTP bytes forwarded to players", bytes_out),
            (
                "litesfu_udp_datagrams_in",
                "Datagrams the UDP socket received",
                endpoint.datagrams_in,
            ),
            (
                "litesfu_udp_control_datagrams_out",
                "STUN, DTLS and RTCP datagrams sent",
                endpoint.control_datagrams_out,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)

        drops = CounterMetricFamily(
            "litesfu_drops", "Datagrams and packets dropped, by reason", labels=["reason"]
        )
        for reason, count in sorted(endpoint.drops.items()):
            drops.add_metric([reason], count)
        yield drops
        housekeeping = CounterMetricFamily(
            "litesfu_housekeeping_closes",
            "Routine closes, not drops: ICE-TCP connections no session used",
            labels=["reason"],
        )
        if endpoint.tcp is not None:
            for reason, count in sorted(endpoint.tcp.housekeeping.items()):
                housekeeping.add_metric([reason], count)
        yield housekeeping
        stun_failures = sum(c for r, c in endpoint.drops.items() if r.startswith("stun_"))
        yield CounterMetricFamily(
            "litesfu_stun_rejected", "STUN requests refused (the stun_* drops)", value=stun_failures
        )
        yield GaugeMetricFamily(
            "litesfu_dtls_connected",
            "Sessions whose DTLS handshake completed",
            sum(1 for h in peers if h.state == "connected"),
        )

        nacks_sent, recovered, plis_sent = self.in_track_totals.update(
            ((p.serial, i), (t.nacks_sent, t.recovered, t.plis_sent))
            for p in publishers
            for i, t in enumerate(p.tracks)
        )
        peer_players = [p for p in players if not p.relay]
        nacks_received, retransmissions, plis_received = self.out_track_totals.update(
            ((p.serial, i), (t.nacks_received, t.retransmissions, t.plis_received))
            for p in peer_players
            for i, t in enumerate(p.tracks)
        )
        for name, doc, value in (
            ("litesfu_nacks_sent", "NACKs sent to publishers", nacks_sent),
            ("litesfu_nack_recovered", "Lost publisher packets recovered by NACK", recovered),
            ("litesfu_plis_sent", "Keyframe requests (PLI) sent to publishers", plis_sent),
            ("litesfu_nacks_received", "NACKs received from players", nacks_received),
            ("litesfu_retransmissions", "Packets resent to players", retransmissions),
            (
                "litesfu_plis_received",
                "Keyframe requests (PLI) received from players",
                plis_received,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)

        out_tracks = [t for p in peer_players for t in p.tracks]
        rtts = [t.rtt for t in out_tracks if t.rtt is not None]
        losses = [t.fraction_lost for t in out_tracks if t.started]
        jitters = [t.jitter for t in out_tracks if t.jitter is not None]
        yield histogram("litesfu_player_rtt_seconds", "Players' round-trip time", rtts, RTT_BUCKETS)
        yield histogram(
            "litesfu_player_loss_ratio", "Players' reported fraction lost", losses, LOSS_BUCKETS
        )
        yield histogram(
            "litesfu_player_jitter_seconds", "Players' reported jitter", jitters, JITTER_BUCKETS
        )
        yield GaugeMetricFamily(
            "litesfu_event_loop_lag_seconds",
            "Worst lateness of a timer on the event loop since the last scrape",
            self.lag.take_worst(),
        )
        if self.per_stream:
            yield from self.stream_metrics(streams[: self.per_stream])

    def stream_metrics(self, streams: list[StreamStats]) -> Iterator[Metric]:
        """Labelled by stream name, for the first few streams only (the cap is the operator's)."""
        players = GaugeMetricFamily(
            "litesfu_stream_players", "Players of a stream", labels=["stream"]
        )
        rate_in = GaugeMetricFamily(
            "litesfu_stream_bitrate_in", "Bits per second from the publisher", labels=["stream"]
        )
        rate_out = GaugeMetricFamily(
            "litesfu_stream_bitrate_out", "Bits per second to all players", labels=["stream"]
        )
        for stream in streams:
            players.add_metric([stream.name], sum(1 for p in stream.players if not p.relay))
            rate_in.add_metric([stream.name], stream.bitrate_in)
            rate_out.add_metric([stream.name], stream.bitrate_out)
        yield from (players, rate_in, rate_out)
