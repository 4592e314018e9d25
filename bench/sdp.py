"""The load client's side of offer/answer: write a minimal WebRTC offer, read what the answer says.

The client has no codec and no SDP library, so the offer is the smallest one a WebRTC server
accepts (BUNDLE, ICE credentials, fingerprint, rtcp-mux, one opus and one VP8 m-line) and the
answer parser picks out only the transport and SSRC lines the client needs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from sfu.wire.audio_level import AUDIO_LEVEL_URI
from sfu.wire.rtp import RID_URI, TRANSPORT_CC_URI

AUDIO_PT = 111
VIDEO_PT = 96
VIDEO_RTX_PT = 97
TRANSPORT_CC_ID = 3
RID_ID = 4
AUDIO_LEVEL_ID = 5


class AnswerError(ValueError):
    """An answer that lacks something the client needs to connect."""


@dataclass
class Answer:
    """What the client uses from the server's answer."""

    ice_ufrag: str
    ice_pwd: str
    fingerprint: str
    candidate: tuple[str, int]
    ssrcs: dict[str, int] = field(default_factory=dict)  # mid -> SSRC the server sends with
    kinds: dict[str, str] = field(default_factory=dict)  # mid -> "audio" / "video"


def build_offer(
    ice_ufrag: str,
    ice_pwd: str,
    fingerprint: str,
    *,
    send: bool,
    audio_ssrc: int = 0,
    video_ssrc: int = 0,
    rtx: bool = False,
    transport_cc: bool = False,
    rids: tuple[str, ...] = (),
    kinds: tuple[str, ...] = ("audio", "video"),
    audio_level: bool = False,
    data: bool = False,
) -> str:
    """An offer with one audio (opus) and one video (VP8) m-line, bundled, or an m-line per
    entry of `kinds` (a room subscriber's slots), mids "0", "1", ... in that order.

    A publisher (send=True) offers sendonly with a=ssrc lines so the server can map its
    packets to tracks; a player offers recvonly and learns the server's SSRCs from the answer.
    `rtx` adds a VP8 retransmission format, `transport_cc` the transport-wide sequence
    extension and its feedback (the in-memory tests use both; the load clients neither).
    `rids` makes a publisher's video simulcast: those layers, named by the RID extension.
    `audio_level` offers the RFC 6464 audio level extension on audio. `data` adds a data
    channel m-line (RFC 8841) after them, in the same bundle. A publisher's SSRC goes on the
    first m-line of its kind; a later one of that kind is a spare that sends nothing (a
    page's screen-share m-line before it shares).
    """
    direction = "sendonly" if send else "recvonly"
    stream_id = secrets.token_hex(4)
    lines = [
        "v=0",
        f"o=- {secrets.randbits(62)} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        f"a=group:BUNDLE {' '.join(str(mid) for mid in range(len(kinds) + data))}",
        "a=msid-semantic: WMS *",
    ]
    codecs = {
        "audio": (AUDIO_PT, "opus/48000/2", audio_ssrc, []),
        "video": (VIDEO_PT, "VP8/90000", video_ssrc, ["nack", "nack pli", "ccm fir"]),
    }
    media = [(kind, str(mid), *codecs[kind]) for mid, kind in enumerate(kinds)]
    declared: set[str] = set()  # kinds whose SSRC a publisher's m-line has named
    for kind, mid, pt, rtpmap, ssrc, feedback in media:
        with_rtx = rtx and kind == "video"
        formats = f"{pt} {VIDEO_RTX_PT}" if with_rtx else str(pt)
        lines += [
            f"m={kind} 9 UDP/TLS/RTP/SAVPF {formats}",
            "c=IN IP4 0.0.0.0",
            f"a=ice-ufrag:{ice_ufrag}",
            f"a=ice-pwd:{ice_pwd}",
            "a=ice-options:trickle",
            f"a=fingerprint:sha-256 {fingerprint}",
            "a=setup:active",
            f"a=mid:{mid}",
            f"a={direction}",
            "a=rtcp-mux",
            f"a=rtpmap:{pt} {rtpmap}",
        ]
        lines += [f"a=rtcp-fb:{pt} {fb}" for fb in feedback]
        if transport_cc:
            lines += [
                f"a=extmap:{TRANSPORT_CC_ID} {TRANSPORT_CC_URI}",
                f"a=rtcp-fb:{pt} transport-cc",
            ]
        if audio_level and kind == "audio":
            lines.append(f"a=extmap:{AUDIO_LEVEL_ID} {AUDIO_LEVEL_URI}")
        if with_rtx:
            lines += [f"a=rtpmap:{VIDEO_RTX_PT} rtx/90000", f"a=fmtp:{VIDEO_RTX_PT} apt={pt}"]
        if send and rids and kind == "video":
            lines += [f"a=extmap:{RID_ID} {RID_URI}", f"a=msid:{stream_id} {stream_id}-{kind}"]
            lines += [f"a=rid:{rid} send" for rid in rids]
            lines.append(f"a=simulcast:send {';'.join(rids)}")
        elif send and kind in declared:  # a second m-line of a kind: a silent spare
            lines.append(f"a=msid:{stream_id} {stream_id}-{kind}-{mid}")
        elif send:
            declared.add(kind)
            lines += [
                f"a=msid:{stream_id} {stream_id}-{kind}",
                f"a=ssrc:{ssrc} cname:bench-{stream_id}",
                f"a=ssrc:{ssrc} msid:{stream_id} {stream_id}-{kind}",
            ]
    if data:
        lines += [
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "c=IN IP4 0.0.0.0",
            f"a=ice-ufrag:{ice_ufrag}",
            f"a=ice-pwd:{ice_pwd}",
            f"a=fingerprint:sha-256 {fingerprint}",
            "a=setup:active",
            f"a=mid:{len(kinds)}",
            "a=sctp-port:5000",
            "a=max-message-size:262144",
        ]
    return "\r\n".join(lines) + "\r\n"


def parse_answer(text: str) -> Answer:
    """The first ICE credentials, fingerprint and UDP candidate of the answer, and its SSRCs."""
    values: dict[str, str] = {}
    candidate: tuple[str, int] | None = None
    ssrcs: dict[str, int] = {}
    kinds: dict[str, str] = {}
    kind = ""
    mid = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
            mid = ""
            continue
        if not line.startswith("a="):
            continue
        name, _, value = line[2:].partition(":")
        if name in ("ice-ufrag", "ice-pwd") and name not in values:
            values[name] = value.strip()
        elif name == "fingerprint" and "fingerprint" not in values:
            algorithm, _, digest = value.strip().partition(" ")
            if algorithm.lower() == "sha-256":
                values["fingerprint"] = digest.strip()
        elif name == "mid":
            mid = value.strip()
            kinds[mid] = kind
        elif name == "ssrc" and mid and mid not in ssrcs:
            ssrcs[mid] = int(value.split(" ", 1)[0])
        elif name == "candidate" and candidate is None:
            parts = value.split()
            if len(parts) >= 6 and parts[2].lower() == "udp":
                candidate = (parts[4], int(parts[5]))
    missing = [k for k in ("ice-ufrag", "ice-pwd", "fingerprint") if k not in values]
    if missing or candidate is None:
        raise AnswerError("answer has no " + ", ".join(missing or ["udp candidate"]))
    return Answer(
        values["ice-ufrag"], values["ice-pwd"], values["fingerprint"], candidate, ssrcs, kinds
    )
