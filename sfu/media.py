"""Negotiated media parameters: the neutral contract between signaling (SDP) and the media plane.

Signaling turns an SDP offer into these plain values; the media plane never sees SDP text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AUDIO = "audio"
VIDEO = "video"


@dataclass(frozen=True)
class Codec:
    """One RTP payload format as negotiated on an m-line."""

    name: str  # as in a=rtpmap, e.g. "opus", "VP8", "H264"
    payload_type: int
    clock_rate: int
    channels: int = 0  # 0 when the rtpmap has no channel count (video)
    fmtp: str = ""  # a=fmtp verbatim, e.g. "packetization-mode=1;profile-level-id=42e01f"
    rtcp_fb: tuple[str, ...] = ()  # accepted a=rtcp-fb values, e.g. ("nack", "nack pli", "ccm fir")
    rtx_payload_type: int | None = None  # the accepted rtx payload type whose apt is this codec

    @property
    def fmtp_params(self) -> dict[str, str]:
        """The fmtp parameters as a dict with lower-case keys."""
        params: dict[str, str] = {}
        for item in self.fmtp.split(";"):
            key, sep, value = item.strip().partition("=")
            if sep:
                params[key.strip().lower()] = value.strip()
        return params


@dataclass
class TrackSpec:
    """One m-line as the server accepted it.

    A publisher's track has exactly one codec; a player's track lists every codec the server may
    send on it, preferred first, so a publisher that arrives later with any of them can be played.
    """

    mid: str
    kind: str  # AUDIO or VIDEO
    codecs: list[Codec]
    ssrc: int | None = None  # the offerer's media SSRC from a=ssrc, when it declared one
    rtx_ssrc: int | None = None  # the offerer's RTX SSRC (a=ssrc-group:FID), when declared
    extensions: dict[int, str] = field(default_factory=dict)  # accepted header extension id -> URI
    rids: tuple[str, ...] = ()  # a publisher's simulcast layers by rid, as offered; () for one


@dataclass(frozen=True)
class DataParams:
    """The peer's m=application (RFC 8841): data channels over SCTP over DTLS."""

    mid: str
    sctp_port: int = 5000
    max_message_size: int = 65536  # the largest message the peer accepts (RFC 8841's default)


@dataclass
class PeerParams:
    """What the media plane needs to know of a remote peer, taken from its offer."""

    ice_ufrag: str
    ice_pwd: str
    fingerprints: list[tuple[str, str]]  # (hash algorithm lower-case, colon hex upper-case)
    tracks: list[TrackSpec]
    data: DataParams | None = None  # None: the peer negotiated no data channels
