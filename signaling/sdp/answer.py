"""Render the SDP answer of an ICE-lite, DTLS-passive server.

Every offered m-line is answered in order (JSEP requires it); the ones negotiation did not accept
are rejected with port 0. Accepted ones carry the server's ICE credentials, certificate
fingerprint and host candidates, so the client can start ICE and DTLS without trickle.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence

from sfu.media import Codec, PeerParams, TrackSpec
from sfu.protocol.ice import candidate_priority
from signaling.sdp.parse import MediaSection, Offer
from signaling.sdp.simulcast import answer_lines

_ANSWER_PROTO = "UDP/TLS/RTP/SAVPF"


def connection_line(candidates: list[ServerCandidate]) -> str:
    """The c= line: the first candidate that is an IP address (an FQDN one is for the browser
    to resolve; RFC 8839 §5.1), or the unspecified address when none is."""
    for candidate in candidates:
        try:
            ip = ipaddress.ip_address(candidate[0])
        except ValueError:
            continue
        return f"c=IN {'IP6' if ip.version == 6 else 'IP4'} {ip}"
    return "c=IN IP4 0.0.0.0"


# An answer's candidate: (address, port) of a host candidate, or (address, port, base address,
# base port) of a server-reflexive one (RFC 8839 raddr/rport: the media socket it maps).
ServerCandidate = tuple[str, int] | tuple[str, int, str, int]


def _kind(candidate: ServerCandidate, port: int) -> str:
    """The candidate line's tail: its type and, for a reflexive one, its base at `port`."""
    if len(candidate) == 2:
        return "typ host"
    return f"typ srflx raddr {candidate[2]} rport {port}"


def candidate_lines(candidates: list[ServerCandidate], tcp_ports: Sequence[int] = ()) -> list[str]:
    """The candidates in order of preference, then end-of-candidates (answers and restarts).

    Each of `tcp_ports` gives each address an RFC 6544 passive TCP candidate too, ranked below
    every UDP one; its foundation differs because its transport does (RFC 8445 §5.1.1.3).
    """
    foundations: dict[tuple[str, str], str] = {}
    lines = []
    for index, candidate in enumerate(candidates):
        ip, port = candidate[0], candidate[1]
        foundation = foundations.setdefault((ip, "udp"), str(len(foundations) + 1))
        priority = candidate_priority(index)
        lines.append(
            f"a=candidate:{foundation} 1 udp {priority} {ip} {port} {_kind(candidate, port)}"
        )
    index = 0
    for tcp_port in tcp_ports:
        for candidate in candidates:
            ip = candidate[0]
            foundation = foundations.setdefault((ip, "tcp"), str(len(foundations) + 1))
            priority = candidate_priority(index, tcp=True)
            index += 1
            lines.append(
                f"a=candidate:{foundation} 1 tcp {priority} {ip} {tcp_port}"
                f" {_kind(candidate, tcp_port)} tcptype passive"
            )
    lines.append("a=end-of-candidates")
    return lines


def _rejected_lines(section: MediaSection) -> list[str]:
    fmt = " ".join(section.fmt) if not section.payload_types else str(section.payload_types[0])
    return [
        f"m={section.kind} 0 {section.proto} {fmt}",
        "c=IN IP4 0.0.0.0",
        f"a=mid:{section.effective_mid}",
        "a=inactive",
    ]


def _codec_lines(codec: Codec) -> list[str]:
    rate = f"{codec.clock_rate}/{codec.channels}" if codec.channels else str(codec.clock_rate)
    lines = [f"a=rtpmap:{codec.payload_type} {codec.name}/{rate}"]
    if codec.fmtp:
        lines.append(f"a=fmtp:{codec.payload_type} {codec.fmtp}")
    lines += [f"a=rtcp-fb:{codec.payload_type} {fb}" for fb in codec.rtcp_fb]
    if codec.rtx_payload_type is not None:
        lines.append(f"a=rtpmap:{codec.rtx_payload_type} rtx/{codec.clock_rate}")
        lines.append(f"a=fmtp:{codec.rtx_payload_type} apt={codec.payload_type}")
    return lines


def _source_lines(
    track: TrackSpec, ssrcs: tuple[int, int | None] | None, cname: str, stream_id: str
) -> list[str]:
    """msid and ssrc lines of a track the server sends, so the player knows its SSRCs."""
    track_id = f"{stream_id}-{track.kind}-{track.mid}"
    lines = [f"a=msid:{stream_id} {track_id}"]
    if ssrcs is None:
        return lines
    media, rtx = ssrcs
    if rtx is not None:
        lines.append(f"a=ssrc-group:FID {media} {rtx}")
    for ssrc in (media, rtx):
        if ssrc is not None:
            lines.append(f"a=ssrc:{ssrc} cname:{cname}")
            lines.append(f"a=ssrc:{ssrc} msid:{stream_id} {track_id}")
    return lines


def render_answer(
    offer: Offer,
    peer: PeerParams,
    *,
    direction: str,
    ice_ufrag: str,
    ice_pwd: str,
    fingerprint: str,
    candidates: list[ServerCandidate],
    tcp_ports: Sequence[int] = (),
    ssrcs: dict[str, tuple[int, int | None]] | None = None,
    cname: str = "litesfu",
    stream_id: str = "litesfu",
    max_message_size: int = 256 * 1024,
) -> str:
    """The answer to `offer` given what negotiation accepted in `peer`.

    `direction` is "recvonly" for a publisher and "sendonly" for a player; `ssrcs` maps a
    player's mid to the (media, rtx) SSRCs the server will send with; `tcp_ports` add passive
    ICE-TCP candidates; `max_message_size` is announced on an accepted data channel m-line.
    Lines end with CRLF.
    """
    if direction not in ("recvonly", "sendonly"):
        raise ValueError(f"answer direction must be recvonly or sendonly, not {direction!r}")
    if not candidates:
        raise ValueError("an answer needs at least one candidate")
    accepted = {track.mid: track for track in peer.tracks}
    first_port = candidates[0][1]
    transport = [
        connection_line(candidates),
        f"a=ice-ufrag:{ice_ufrag}",
        f"a=ice-pwd:{ice_pwd}",
        f"a=fingerprint:sha-256 {fingerprint}",
        "a=setup:passive",
    ]
    candidate_block = candidate_lines(candidates, tcp_ports)
    data_mid = None if peer.data is None else peer.data.mid
    accepted_mids = [
        s.effective_mid
        for s in offer.media
        if s.effective_mid in accepted or s.effective_mid == data_mid
    ]
    # Only a group the offer proposed: adding one it never had would answer for transports
    # that do not exist (negotiation refuses unbundled offers of more than one m-line).
    bundle = accepted_mids if offer.bundle_group(accepted_mids) is not None else []
    lines = [
        "v=0",
        f"o=- {secrets.randbits(63)} 2 IN IP4 127.0.0.1",
        "s=LiteSFU",
        "t=0 0",
    ]
    if bundle:
        lines.append("a=group:BUNDLE " + " ".join(bundle))
    lines.append("a=ice-lite")
    if direction == "sendonly":
        lines.append("a=msid-semantic: WMS *")
    for section in offer.media:
        track = accepted.get(section.effective_mid)
        if section.effective_mid == data_mid:
            lines.append(f"m=application {first_port} {section.proto} webrtc-datachannel")
            lines += [*transport, f"a=mid:{data_mid}", "a=sctp-port:5000"]
            lines.append(f"a=max-message-size:{max_message_size}")
            lines += candidate_block
            continue
        if track is None:
            lines += _rejected_lines(section)
            continue
        pts = []
        for codec in track.codecs:
            pts.append(str(codec.payload_type))
            if codec.rtx_payload_type is not None:
                pts.append(str(codec.rtx_payload_type))
        lines.append(f"m={section.kind} {first_port} {_ANSWER_PROTO} {' '.join(pts)}")
        lines += transport
        lines.append(f"a=mid:{track.mid}")
        lines += [f"a=extmap:{ext_id} {uri}" for ext_id, uri in track.extensions.items()]
        lines += [f"a={direction}", "a=rtcp-mux"]
        if section.rtcp_rsize:
            lines.append("a=rtcp-rsize")
        for codec in track.codecs:
            lines += _codec_lines(codec)
        lines += answer_lines(track.rids)
        if direction == "sendonly":
            lines += _source_lines(track, (ssrcs or {}).get(track.mid), cname, stream_id)
        lines += candidate_block
    return "\r\n".join(lines) + "\r\n"
