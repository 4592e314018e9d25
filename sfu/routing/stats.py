"""What the router tells the control plane, as frozen values: streams, sessions, counts.

Signaling reads the media plane only through these (Router's query methods build them), so a
change inside the router cannot silently break a stats page, a metric or a limit. Fields hold
plain facts in base units (seconds, bits per second); `to_json()` is the one place where they
take the shape and rounding of `/api/v1/streams` and `/api/v1/server`.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field

_serials = itertools.count(1)


def next_serial() -> int:
    """A number no other stream, publisher or player of this process has had: a key that
    lets a reader sum counters over objects that come and go without holding them."""
    return next(_serials)


def _ms(seconds: float | None, digits: int) -> float | None:
    return round(1000 * seconds, digits) if seconds is not None else None


@dataclass(frozen=True)
class InTrackStats:
    """One RTP stream a publisher sends (one layer of a simulcast m-line)."""

    kind: str
    codec: str
    ssrc: int | None
    rid: str | None  # None unless the m-line is simulcast
    width: int  # of the layer, from its keyframes; 0 while unknown or not simulcast
    height: int
    bitrate: float  # bits per second over the last report interval
    packets: int
    bytes: int
    packets_lost: int
    jitter: float  # seconds
    nacks_sent: int
    recovered: int
    rtt: float | None  # seconds, measured by NACK; None for a track without NACK
    plis_sent: int
    send_failures: int
    subscribers: int
    # Packets whose payload could not be read where the server reads it, by what: a VP9
    # descriptor ("vp9_descriptor", every player misses it), a RED payload ("red", players
    # of plain Opus miss it). Only the codec's own key, so other tracks keep their keys.
    payload_drops: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        layer = {"rid": self.rid, "width": self.width, "height": self.height} if self.rid else {}
        drops = {"payload_drops": dict(self.payload_drops)} if self.payload_drops else {}
        return {
            "kind": self.kind,
            "codec": self.codec,
            "ssrc": self.ssrc,
            **layer,
            "bitrate": round(self.bitrate),
            "packets": self.packets,
            "bytes": self.bytes,
            "packets_lost": self.packets_lost,
            "jitter_ms": _ms(self.jitter, 2),
            "nacks_sent": self.nacks_sent,
            "recovered": self.recovered,
            "rtt_ms": _ms(self.rtt, 1),
            "plis_sent": self.plis_sent,
            "send_failures": self.send_failures,
            "subscribers": self.subscribers,
            **drops,
        }


@dataclass(frozen=True)
class PublisherStats:
    """A stream's publisher: a peer's session or a relay's end."""

    serial: int
    state: str  # "new", "connecting", "connected", "closed"
    relay: bool
    transport: str
    srtp_errors: int
    unknown_ssrc_packets: int
    unknown_rid_packets: int
    transport_feedback_sent: int
    tracks: tuple[InTrackStats, ...]

    def to_json(self) -> dict:
        """The `publisher_details` of a stream (its tracks are listed beside it)."""
        return {
            "transport": self.transport,
            "srtp_errors": self.srtp_errors,
            "unknown_ssrc_packets": self.unknown_ssrc_packets,
            "unknown_rid_packets": self.unknown_rid_packets,
            "transport_feedback_sent": self.transport_feedback_sent,
        }


@dataclass(frozen=True)
class LayerState:
    """Which simulcast layer (or VP9 layers) a player's track plays, moves to and asked for."""

    layer: str
    target_layer: str
    choice: str  # a rid, or "auto"
    max_width: int | None
    max_height: int | None
    layer_switches: int
    max_temporal: int | None
    temporal_drops: int
    # Of a VP9 stream: (spatial, temporal) sent now, then the targets; -1 before a keyframe.
    svc: tuple[int, int, int, int] | None = None

    def to_json(self) -> dict:
        """The fields; `svc` only for a VP9 stream, so other tracks keep their keys."""
        data = dataclasses.asdict(self)
        if data["svc"] is None:
            del data["svc"]
        return data


@dataclass(frozen=True)
class OutTrackStats:
    """One track the server sends a player."""

    kind: str
    ssrc: int
    packets: int
    bytes: int
    nacks_received: int
    retransmissions: int
    retransmit_misses: int
    nack_budget_drops: int
    plis_received: int
    fraction_lost: float  # as the player's last report said
    packets_lost: int
    rtt: float | None  # seconds; None until a report answered a Sender Report
    started: bool  # media has flowed to it
    jitter: float | None  # seconds, as the player reported; None before it started
    layer: LayerState | None  # None unless fed by a simulcast layer

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "ssrc": self.ssrc,
            "packets": self.packets,
            "bytes": self.bytes,
            "nacks_received": self.nacks_received,
            "retransmissions": self.retransmissions,
            "retransmit_misses": self.retransmit_misses,
            "nack_budget_drops": self.nack_budget_drops,
            "plis_received": self.plis_received,
            "fraction_lost": round(self.fraction_lost, 4),
            "packets_lost": self.packets_lost,
            "rtt_ms": _ms(self.rtt, 1),
            **(self.layer.to_json() if self.layer is not None else {}),
        }


@dataclass(frozen=True)
class PlayerStats:
    """A stream's player: a peer's session or a relay to another worker or node. No session
    id: the id is the capability to end or restart the session."""

    serial: int
    relay: bool
    state: str
    transport: str
    codec_mismatch: dict[str, str]  # kind -> the stream's codec this player did not offer
    remb: int | None
    estimate: float | None  # bits per second its link carries; None while unknown
    congestion: str
    overuses: int
    transport_feedback: int
    probes: int  # upgrade probes started; failed_probes of them did not fit
    failed_probes: int
    probe_packets: int  # RTX padding sent for them
    probe_bytes: int
    srtp_errors: int
    tracks: tuple[OutTrackStats, ...]

    def to_json(self) -> dict:
        return {
            "relay": self.relay,
            "state": self.state,
            "transport": self.transport,
            "codec_mismatch": dict(self.codec_mismatch),
            "remb": self.remb,
            "estimate": round(self.estimate) if self.estimate is not None else None,
            "congestion": self.congestion,
            "overuses": self.overuses,
            "transport_feedback": self.transport_feedback,
            "probes": self.probes,
            "failed_probes": self.failed_probes,
            "probe_packets": self.probe_packets,
            "probe_bytes": self.probe_bytes,
            "srtp_errors": self.srtp_errors,
            "tracks": [t.to_json() for t in self.tracks],
        }


@dataclass(frozen=True)
class StreamStats:
    """A stream with all it holds, as `/api/v1/streams` lists it."""

    serial: int
    name: str
    live: bool  # its publisher is connected
    packets_in: int  # since the stream appeared, gone sessions included
    bytes_in: int
    packets_out: int
    bytes_out: int
    bitrate_in: float  # bits per second
    bitrate_out: float
    publisher: PublisherStats | None
    players: tuple[PlayerStats, ...]

    @property
    def codecs(self) -> dict[str, str]:
        """kind -> codec name the publisher sends."""
        tracks = self.publisher.tracks if self.publisher is not None else ()
        return {t.kind: t.codec for t in tracks}

    def to_json(self) -> dict:
        publisher = self.publisher
        return {
            "name": self.name,
            "publishing": self.live,
            "publisher_state": publisher.state if publisher else None,
            "publisher_relay": publisher is not None and publisher.relay,
            "codecs": self.codecs,
            "players": len(self.players),
            "packets_in": self.packets_in,
            "bytes_in": self.bytes_in,
            "packets_out": self.packets_out,
            "bytes_out": self.bytes_out,
            "bitrate_in": round(self.bitrate_in),
            "bitrate_out": round(self.bitrate_out),
            "tracks": [t.to_json() for t in publisher.tracks] if publisher else [],
            "publisher_details": publisher.to_json() if publisher else None,
            "player_sessions": [p.to_json() for p in self.players],
        }


@dataclass(frozen=True)
class Layer:
    """One simulcast or VP9 spatial layer a live publisher offers, for WHEP's `layers` event.

    Two Layers are equal when rid, size and activity are: a bitrate that moves is no news."""

    mline: int  # the publisher's m-line (media section) index
    rid: str | None  # None for a spatial layer of a VP9 stream without simulcast
    width: int  # 0 while unknown
    height: int
    bitrate: float = field(compare=False)
    active: bool  # media arrived in the last report interval
    spatial: int | None = None  # a VP9 SVC spatial layer's id (its bitrate is its own)


@dataclass(frozen=True)
class StreamSummary:
    """The little a sampler or a load report needs of a stream, cheap to take often."""

    name: str
    has_publisher: bool  # pending or live
    live: bool
    publisher_relay: bool  # the publisher is a relay's end (fed by another worker or node)
    players: int  # relays to other workers or nodes included
    relay_players: int  # of those, relays
    layers: tuple[Layer, ...]  # empty unless the live publisher sends simulcast

    @property
    def peer_players(self) -> int:
        """Players that are peers, relays left out."""
        return self.players - self.relay_players


@dataclass(frozen=True)
class SessionInfo:
    """A live session of the session table (relays' ends are never there)."""

    id: str
    role: str  # "publish" or "play"
    stream: str
    state: str  # "new", "connecting", "connected"


@dataclass(frozen=True)
class ResourceCounts:
    """How much state the router holds, to spot leaks: all return to zero when idle."""

    sessions: int
    bound_addresses: int
    streams: int
    publisher_tracks: int
    player_tracks: int
    media_packets_out: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
