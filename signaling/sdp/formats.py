"""Which RTP payload formats the server forwards, read from an m-line's rtpmap and fmtp.

One table for publishers and players alike, and the one-line description of it that a 422
gives a publisher whose audio or video none of these fit.
"""

from __future__ import annotations

from sfu.media import AUDIO, VIDEO
from sfu.wire.h264_profile import parse_profile_level_id
from signaling.sdp.parse import MediaSection

# What a refused publisher is told the server takes, per kind.
SERVER_TAKES = {
    AUDIO: "opus/48000/2, or red/48000/2 over it",
    VIDEO: "VP8, VP9 (profile 0 or 2), H264 (packetization-mode 0 or 1), H265 (profile 1 or 2)",
}
_VP9_PROFILES = ("0", "2")  # 8-bit and 10-bit 4:2:0, what browsers send
_H265_PROFILES = ("1", "2")  # Main and Main 10
MAX_RED_BLOCKS = 8  # payload types listed in a RED fmtp
_MAX_NAMES = 8  # formats named in a refusal, so its line stays short
_MAX_NAME = 24  # characters of each


def fmtp_params(fmtp: str) -> dict[str, str]:
    """The `key=value;...` parameters of an a=fmtp, keys lower-cased."""
    params: dict[str, str] = {}
    for item in fmtp.split(";"):
        key, sep, value = item.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip()
    return params


def is_forwardable(section: MediaSection, pt: int) -> bool:
    """True when `pt` on `section` is a format the SFU forwards: opus; VP8; VP9 profile 0
    or 2; H264 in packetization mode 0 or 1 with a readable profile-level-id; H265 Main or
    Main 10 without decoding-order numbers; RED over an Opus format of the m-line."""
    rtpmap = section.rtpmap.get(pt)
    if rtpmap is None:
        return False
    name = rtpmap.name.lower()
    if section.kind == AUDIO:
        if name == "red":
            primary = red_primary_pt(section, pt)
            return primary is not None and is_forwardable(section, primary)
        return name == "opus" and rtpmap.clock_rate == 48000 and rtpmap.channels == 2
    if section.kind != VIDEO or rtpmap.clock_rate != 90000:
        return False
    params = fmtp_params(section.fmtp.get(pt, ""))
    if name == "vp8":
        return True
    if name == "vp9":
        return params.get("profile-id", "0") in _VP9_PROFILES
    if name == "h264":
        return params.get("packetization-mode", "0") in ("0", "1") and (
            parse_profile_level_id(params.get("profile-level-id")) is not None
        )
    if name == "h265":  # one NAL unit stream, no interleaving (sprop-max-don-diff 0)
        return params.get("profile-id", "1") in _H265_PROFILES and params.get(
            "sprop-max-don-diff", "0"
        ) in ("0", "")
    return False


def red_primary_pt(section: MediaSection, pt: int) -> int | None:
    """The payload type a red/48000/2 format carries (RFC 2198 fmtp "111/111": every block
    the same), when it is an Opus one; None for RED over anything else or mixed."""
    rtpmap = section.rtpmap.get(pt)
    if rtpmap is None or (rtpmap.name.lower(), rtpmap.clock_rate, rtpmap.channels) != (
        "red",
        48000,
        2,
    ):
        return None
    blocks = section.fmtp.get(pt, "").strip().split("/")
    if not blocks[0].isdigit() or len(set(blocks)) != 1 or len(blocks) > MAX_RED_BLOCKS:
        return None
    primary = int(blocks[0])
    opus = section.rtpmap.get(primary)
    return primary if opus is not None and opus.name.lower() == "opus" else None


def publish_rank(section: MediaSection, pt: int) -> int:
    """A publisher's formats are taken in its order of preference, except that H264 in
    packetization mode 0 (one NAL unit per packet, so no slice over 1200 bytes) goes last:
    it is taken only where the publisher offers nothing better."""
    rtpmap = section.rtpmap[pt]
    if rtpmap.name.lower() != "h264":
        return 0
    return int(fmtp_params(section.fmtp.get(pt, "")).get("packetization-mode", "0") != "1")


def offered_names(section: MediaSection) -> str:
    """The formats an m-line offers, by rtpmap name, repair formats left out; bounded."""
    names = [
        rtpmap.name[:_MAX_NAME]
        for pt in dict.fromkeys(section.payload_types)
        if (rtpmap := section.rtpmap.get(pt)) is not None
        and rtpmap.name.lower() not in ("rtx", "ulpfec", "flexfec-03")
    ]
    unique = list(dict.fromkeys(names))
    more = ", ..." if len(unique) > _MAX_NAMES else ""
    return ", ".join(unique[:_MAX_NAMES]) + more if unique else "no named format"
