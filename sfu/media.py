"""Negotiated media parameters: the neutral contract between signaling (SDP) and the media plane.

Signaling turns an SDP offer into these plain values; the media plane never sees SDP text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sfu.wire.h264_profile import ProfileLevel, decodes, parse_profile_level_id

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


def _h264_profile(codec: Codec) -> ProfileLevel | None:
    return parse_profile_level_id(codec.fmtp_params.get("profile-level-id"))


def format_name(codec: Codec) -> str:
    """The codec as a person reads it in an error: name, and the profile where it matters."""
    name = codec.name.lower()
    params = codec.fmtp_params
    if name == "h264":
        profile = _h264_profile(codec)
        mode = params.get("packetization-mode", "0")
        if profile is None:
            return f"{codec.name} (unreadable profile-level-id, mode {mode})"
        return f"{codec.name} {profile.profile} ({profile.raw}, packetization-mode {mode})"
    if name in ("vp9", "h265"):
        return f"{codec.name} profile {params.get('profile-id', DEFAULT_PROFILE_ID[name])}"
    return codec.name


# The profile-id meant when the fmtp gives none (VP9 RTP payload draft §6, RFC 7798 §7.1).
DEFAULT_PROFILE_ID = {"vp9": "0", "h265": "1"}


def receivable(stream: Codec, receiver: Codec) -> bool:
    """True when a player that negotiated `receiver` can take the packets of a publisher's
    `stream` untouched: same codec, and for H264 a profile its decoder takes (RFC 6184 §8.1)
    in a packetization mode it accepts (mode 1 takes mode 0's single NAL units, not the
    other way round); for VP9 the same profile-id, for H265 the same profile and tier and
    a level it decodes."""
    name = stream.name.lower()
    if receiver.name.lower() != name or receiver.clock_rate != stream.clock_rate:
        return False
    if name == "red":  # the same payload types inside (each side names its own): as sent
        return stream.fmtp.replace(" ", "") == receiver.fmtp.replace(" ", "")
    if name == "h264":
        ours, theirs = stream.fmtp_params, receiver.fmtp_params
        if ours.get("packetization-mode", "0") == "1" != theirs.get("packetization-mode", "0"):
            return False
        sent, taken = _h264_profile(stream), _h264_profile(receiver)
        if sent is None or taken is None:
            return False
        return decodes(taken, sent, theirs.get("level-asymmetry-allowed") == "1")
    if name in DEFAULT_PROFILE_ID:
        default = DEFAULT_PROFILE_ID[name]
        ours, theirs = stream.fmtp_params, receiver.fmtp_params
        if ours.get("profile-id", default) != theirs.get("profile-id", default):
            return False
        return name != "h265" or _h265_fits(ours, theirs)
    return True


def _h265_fits(stream: dict[str, str], receiver: dict[str, str]) -> bool:
    """RFC 7798 §7.1: the same tier, and a level-id no higher than the receiver's (93,
    level 3.1, when not given)."""
    if stream.get("tier-flag", "0") != receiver.get("tier-flag", "0"):
        return False
    sent, taken = stream.get("level-id", "93"), receiver.get("level-id", "93")
    return sent.isdigit() and taken.isdigit() and int(sent) <= int(taken)


def best_receivable(stream: Codec, offered: list[Codec]) -> Codec | None:
    """The player codec `stream` goes out as: one with the very same fmtp first (the player
    then decodes the stream as described), else the first that can take it; for RED audio,
    else the player's Opus, which gets RED's primary block alone."""
    fitting = [codec for codec in offered if receivable(stream, codec)]
    exact = [codec for codec in fitting if _identity(codec) == _identity(stream)]
    found = (exact or fitting or [None])[0]
    primary = red_primary(stream)
    if found is None and primary is not None:
        return best_receivable(Codec("opus", primary, 48000, 2), offered)
    return found


def red_primary(codec: Codec) -> int | None:
    """The payload type RED (RFC 2198) carries, from its fmtp ("111/111"), for a RED
    codec; None for any other, or a RED fmtp that names none."""
    if codec.name.lower() != "red":
        return None
    first = codec.fmtp.split("/")[0].strip()
    return int(first) if first.isdigit() and int(first) < 128 else None


def _identity(codec: Codec) -> tuple[str, ...]:
    """What names a format beyond its codec: its profile and packetization mode."""
    params = codec.fmtp_params
    return tuple(params.get(key, "").lower() for key in _IDENTITY_KEYS)


_IDENTITY_KEYS = ("profile-level-id", "packetization-mode", "profile-id", "level-id")
