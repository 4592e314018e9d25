"""Decide what the server accepts from an offer: codecs, feedback, header extensions, transport.

The result is a `PeerParams` for the media plane. Anything the SFU cannot forward untouched is
left out here, so the answer rejects it and the media plane never sees it.
"""

from __future__ import annotations

from collections.abc import Callable

from sfu.media import (
    AUDIO,
    VIDEO,
    Codec,
    DataParams,
    PeerParams,
    TrackSpec,
    best_receivable,
    format_name,
)
from sfu.wire.audio_level import AUDIO_LEVEL_URI
from sfu.wire.rtp import ABS_SEND_TIME_URI, MID_URI, RID_URI, TRANSPORT_CC_URI
from signaling.sdp.formats import (
    SERVER_TAKES,
    fmtp_params,
    is_forwardable,
    offered_names,
    publish_rank,
    red_primary_pt,
)
from signaling.sdp.parse import MAX_ROOM_MEDIA_SECTIONS, MediaSection, Offer
from signaling.sdp.simulcast import SimulcastError, offered_layers

# Header extensions the server reads on a publisher's packets (mid, transport-wide CC for its
# bandwidth feedback, and the audio level a room's speaker detection reads), and those it
# writes afresh for each player with the player's own IDs.
PUBLISH_EXTENSIONS = frozenset({MID_URI, ABS_SEND_TIME_URI, TRANSPORT_CC_URI, AUDIO_LEVEL_URI})
PLAY_EXTENSIONS = frozenset({MID_URI, ABS_SEND_TIME_URI, TRANSPORT_CC_URI})
# Read as well on a simulcast m-line: the RID names the layer of each packet. Publishers send
# no RTX here (the answer accepts none), so the repaired-RID is never needed.
SIMULCAST_EXTENSIONS = PUBLISH_EXTENSIONS | {RID_URI}

# RTCP feedback the server understands, per kind.
ACCEPTED_FEEDBACK = {
    VIDEO: ("nack", "nack pli", "ccm fir", "transport-cc", "goog-remb"),
    AUDIO: ("transport-cc",),
}

_RTP_PROTOS = ("UDP/TLS/RTP/SAVPF", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "RTP/SAVP")
_DATA_PROTOS = ("UDP/DTLS/SCTP", "TCP/DTLS/SCTP")  # RFC 8841; one transport carries either
DATA_FORMAT = "webrtc-datachannel"
NO_LIMIT = 0xFFFFFFFF  # what a=max-message-size:0 (no limit) stands for
_GOOD_SETUP = ("actpass", "active")
_MAX_NAMED = 8  # player formats named in a CodecMismatch
MAX_MEDIA_SECTIONS = 16  # audio/video m-lines per offer; each costs state and answer bytes
ROOM_MEDIA_SECTIONS = MAX_ROOM_MEDIA_SECTIONS  # a room subscriber's slots: 126 others


class NegotiationError(ValueError):
    """An offer we understood but cannot answer; one line, fit for an HTTP 400 body."""


class UnsupportedMedia(NegotiationError):
    """The offer carries nothing the server can forward (HTTP 422)."""


class CodecMismatch(UnsupportedMedia):
    """A player that cannot decode the live publisher's codec for a kind it asks for: a 201
    would give it a track that stays silent or black."""


class BundleRequired(UnsupportedMedia):
    """More than one m-line accepted, but not bundled: the server has one transport per
    session, so a second m-line's checks could never succeed and its media never flow."""


def _rtx_map(section: MediaSection) -> dict[int, int]:
    """Media payload type -> the first offered rtx payload type for it with the same clock.

    One pass over the distinct payload types, so negotiation stays linear in the offer's size.
    """
    rtx_for: dict[int, int] = {}
    for rtx in dict.fromkeys(section.payload_types):
        rtpmap = section.rtpmap.get(rtx)
        if rtpmap is None or rtpmap.name.lower() != "rtx":
            continue
        apt = fmtp_params(section.fmtp.get(rtx, "")).get("apt", "")
        if not apt.isdigit():
            continue
        media = section.rtpmap.get(int(apt))
        if media is not None and media.clock_rate == rtpmap.clock_rate:
            rtx_for.setdefault(int(apt), rtx)
    return rtx_for


def _codec(section: MediaSection, pt: int, rtx: int | None) -> Codec:
    rtpmap = section.rtpmap[pt]
    accepted = ACCEPTED_FEEDBACK.get(section.kind, ())
    return Codec(
        name=rtpmap.name,
        payload_type=pt,
        clock_rate=rtpmap.clock_rate,
        channels=rtpmap.channels,
        fmtp=section.fmtp.get(pt, ""),
        rtcp_fb=tuple(fb for fb in section.feedback_for(pt) if fb in accepted),
        rtx_payload_type=rtx,
    )


def _offered_ssrcs(section: MediaSection) -> tuple[int | None, int | None]:
    """The offerer's media SSRC and RTX SSRC: first SIM layer, its FID pair, else first a=ssrc."""
    groups = section.ssrc_groups
    sim = next((ssrcs for name, ssrcs in groups if name == "SIM"), None)
    fids = [ssrcs for name, ssrcs in groups if name == "FID" and len(ssrcs) >= 2]
    if sim:
        media = sim[0]
    elif fids:
        media = fids[0][0]
    elif section.ssrcs:
        media = next(iter(section.ssrcs))
    else:
        return None, None
    rtx = next((fid[1] for fid in fids if fid[0] == media), None)
    return media, rtx


def _is_carried(section: MediaSection, directions: tuple[str, ...]) -> bool:
    """True when the m-line is RTP over DTLS-SRTP, enabled, and flows the way we need."""
    return (
        section.kind in (AUDIO, VIDEO)
        and section.proto in _RTP_PROTOS
        and (section.port != 0 or section.bundle_only)
        and section.direction in directions
    )


def _layers(section: MediaSection) -> tuple[str, ...]:
    """A video m-line's simulcast rids, when its packets can say which layer they are."""
    if section.kind != VIDEO:
        return ()
    try:
        rids = offered_layers(section)
    except SimulcastError as error:
        raise NegotiationError(str(error)) from None
    if rids and RID_URI not in section.extmap.values():
        raise NegotiationError("a=simulcast needs the rtp-stream-id header extension (a=extmap)")
    return rids


def _data(offer: Offer) -> tuple[MediaSection, DataParams] | None:
    """The offer's first data channel m-line (RFC 8841), if it has one we can carry."""
    for section in offer.media:
        if (
            section.kind == "application"
            and section.proto in _DATA_PROTOS
            and section.fmt == [DATA_FORMAT]
            and (section.port != 0 or section.bundle_only)
        ):
            size = section.max_message_size
            params = DataParams(
                section.effective_mid,
                5000 if section.sctp_port is None else section.sctp_port,
                65536 if size is None else size or NO_LIMIT,
            )
            return section, params
    return None


def _peer(offer: Offer, tracks: list[TrackSpec], sections: list[MediaSection]) -> PeerParams:
    """Check ICE and DTLS parameters of the first accepted m-line and build the PeerParams."""
    if not tracks:
        raise UnsupportedMedia("offer has no audio or video m-line with a codec we support")
    first = sections[0]
    ufrag = first.ice_ufrag or offer.ice_ufrag
    pwd = first.ice_pwd or offer.ice_pwd
    if not ufrag:
        raise NegotiationError("offer has no ice-ufrag")
    if not pwd:
        raise NegotiationError("offer has no ice-pwd")
    fingerprints = first.fingerprints or offer.fingerprints
    if not fingerprints:
        raise NegotiationError("offer has no fingerprint")
    setup = first.setup or offer.setup
    if setup == "passive":
        raise NegotiationError(
            "we are DTLS server (setup:passive); offer setup:passive cannot work"
        )
    if setup is not None and setup not in _GOOD_SETUP:
        raise NegotiationError(f"offer setup {setup[:20]!r} is not actpass or active")
    return PeerParams(ice_ufrag=ufrag, ice_pwd=pwd, fingerprints=list(fingerprints), tracks=tracks)


def _negotiate(
    offer: Offer,
    directions: tuple[str, ...],
    choose: Callable[[MediaSection], list[Codec]],
    extensions: frozenset[str],
    simulcast: bool = False,
    max_media: int = MAX_MEDIA_SECTIONS,
) -> PeerParams:
    media_count = sum(1 for section in offer.media if section.kind in (AUDIO, VIDEO))
    if media_count > max_media:
        raise UnsupportedMedia(
            f"offer has {media_count} audio/video m-lines; the limit is {max_media}"
        )
    tracks: list[TrackSpec] = []
    sections: list[MediaSection] = []
    for section in offer.media:
        if not _is_carried(section, directions):
            continue
        codecs = choose(section)
        if not codecs:
            continue
        rids = _layers(section) if simulcast else ()
        ssrc, rtx_ssrc = _offered_ssrcs(section) if not rids else (None, None)
        wanted = SIMULCAST_EXTENSIONS if rids else extensions
        accepted = {i: uri for i, uri in section.extmap.items() if uri in wanted}
        spec = TrackSpec(
            section.effective_mid, section.kind, codecs, ssrc, rtx_ssrc, accepted, rids
        )
        tracks.append(spec)
        sections.append(section)
    if len(sections) > 1 and offer.bundle_group([s.effective_mid for s in sections]) is None:
        raise BundleRequired(
            "offer must BUNDLE its audio and video (a=group:BUNDLE): this server carries a "
            "session on one transport; use bundle-policy max-bundle"
        )
    peer = _peer(offer, tracks, sections)
    channels = _data(offer)
    mids = [s.effective_mid for s in sections]
    if channels is not None and offer.bundle_group([*mids, channels[1].mid]) is not None:
        peer.data = channels[1]  # data rides the media's transport or is refused
    return peer


def negotiate_publish(offer: Offer) -> PeerParams:
    """Accept each sending audio/video m-line with exactly one codec: the first we forward
    in the offer's order (publish_rank), and when that is RED, the Opus it carries. A
    sending m-line with none is refused (422) with what it offered and what the server
    takes, never answered with that m-line rejected, which would leave the publisher "live"
    without its video or audio."""

    def choose(section: MediaSection) -> list[Codec]:
        pts = [p for p in section.payload_types if is_forwardable(section, p)]
        if not pts:
            raise UnsupportedMedia(
                f"the {section.kind} m-line (mid {section.effective_mid[:16]}) offers "
                f"{offered_names(section)}; this server takes {SERVER_TAKES[section.kind]} "
                f"(send no {section.kind}, or one of those)"
            )
        pt = min(pts, key=lambda p: publish_rank(section, p))  # min keeps the first of a rank
        primary = red_primary_pt(section, pt)
        if primary is not None:  # RED comes with the Opus inside it
            return [_codec(section, pt, None), _codec(section, primary, None)]
        return [_codec(section, pt, None)]

    return _negotiate(offer, ("sendonly", "sendrecv"), choose, PUBLISH_EXTENSIONS, simulcast=True)


def negotiate_play(
    offer: Offer,
    preferred: dict[str, Codec] | None = None,
    max_media: int = MAX_MEDIA_SECTIONS,
) -> PeerParams:
    """Accept each receiving audio/video m-line with every codec we support.

    `preferred` maps a kind to the live publisher's codec; the player codec it goes out as
    (media.best_receivable) goes first, so the player decodes the stream as it is; the rest
    keep the offer's order. Each codec keeps its rtx. A section that takes codecs but none
    that can carry the stream's (another codec, or an H264 profile its decoder lacks) raises
    CodecMismatch, naming both.
    """
    preferred = preferred or {}

    def choose(section: MediaSection) -> list[Codec]:
        pts = [p for p in dict.fromkeys(section.payload_types) if is_forwardable(section, p)]
        rtx_for = _rtx_map(section)
        codecs = [_codec(section, p, rtx_for.get(p)) for p in pts]
        stream = preferred.get(section.kind)
        if not codecs or stream is None:
            return codecs
        first = best_receivable(stream, codecs)
        if first is None:
            offered = ", ".join(dict.fromkeys(format_name(c) for c in codecs[:_MAX_NAMED]))
            raise CodecMismatch(
                f"the stream sends {format_name(stream)} {section.kind}; "
                f"this offer can receive only {offered}"
            )
        return [first, *(codec for codec in codecs if codec is not first)]

    return _negotiate(offer, ("recvonly", "sendrecv"), choose, PLAY_EXTENSIONS, max_media=max_media)


def negotiate_subscribe(offer: Offer) -> PeerParams:
    """A room subscriber's offer: a player's, with a slot (m-line) per kind per other
    participant, up to the parser's cap on a room offer's m-lines; the router bounds them by
    the room's size (sfu.routing.room.max_slots), and the room's data channels (m=application)
    when it offers them."""
    return negotiate_play(offer, max_media=ROOM_MEDIA_SECTIONS)
